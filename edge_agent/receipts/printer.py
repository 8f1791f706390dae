"""Receipt printers: a network printer (raw TCP, port 9100) or one on a serial line.

One job at a time per printer (a lock), a connection per job (a printer restarted between
receipts is found again), and a bounded wait: a printer that is off or out of paper costs
the cashier `timeout_s` at most, never a hung till.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from typing import Protocol

import serial

from ..settings import PrinterSettings

__all__ = ["Printer", "PrinterError", "SerialPrinter", "TcpPrinter", "open_printer"]


class PrinterError(Exception):
    """The printer could not take the job (unreachable, refused, timed out)."""


class Printer(Protocol):
    def send(self, job: bytes) -> None: ...


@dataclass
class TcpPrinter:
    host: str
    port: int = 9100
    timeout_s: float = 5.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def send(self, job: bytes) -> None:
        with self._lock:
            try:
                with socket.create_connection((self.host, self.port), self.timeout_s) as conn:
                    conn.settimeout(self.timeout_s)
                    conn.sendall(job)
                    conn.shutdown(socket.SHUT_WR)
            except OSError as exc:
                raise PrinterError(f"printer {self.host}:{self.port}: {exc}") from exc


@dataclass
class SerialPrinter:
    device: str  # /dev/ttyUSB1, or any pyserial URL
    baudrate: int = 9600
    timeout_s: float = 5.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def send(self, job: bytes) -> None:
        with self._lock:
            try:
                with serial.serial_for_url(
                    self.device,
                    baudrate=self.baudrate,
                    timeout=self.timeout_s,
                    write_timeout=self.timeout_s,
                ) as port:
                    port.write(job)
                    port.flush()
            except (OSError, serial.SerialException, ValueError) as exc:
                raise PrinterError(f"printer {self.device}: {exc}") from exc


def open_printer(settings: PrinterSettings) -> Printer | None:
    """The configured printer (nothing is opened yet); None when there is none."""
    if settings.kind == "tcp":
        return TcpPrinter(settings.host, settings.port, float(settings.timeout_s))
    if settings.kind == "serial":
        return SerialPrinter(settings.device, settings.baudrate, float(settings.timeout_s))
    return None
