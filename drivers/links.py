"""Byte links: a serial port (pyserial, any of its URL forms), TCP, or an in-memory pipe.

Links are blocking with a read timeout, which suits a half-duplex RS-485 master that must
answer within milliseconds; the asyncio application runs each serial driver in a thread.
"""

from __future__ import annotations

import contextlib
import os
import socket
import termios
import threading
import time
from collections import deque
from typing import Protocol

import serial

from .errors import LinkClosed, LinkError

__all__ = ["ByteLink", "PipeLink", "SerialLink", "TcpLink", "open_serial"]


class ByteLink(Protocol):
    def read(self, max_bytes: int, timeout: float) -> bytes:
        """Up to `max_bytes`; b"" when nothing arrived within `timeout` seconds."""
        ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class SerialLink:
    """A pyserial port; `url` may be a device path or any pyserial URL (socket://, loop://)."""

    def __init__(self, port: serial.SerialBase) -> None:
        self._port = port
        self._timeout: float | None = None

    def read(self, max_bytes: int, timeout: float) -> bytes:
        try:
            if timeout != self._timeout:  # each change reprograms the port (tcsetattr)
                self._port.timeout = timeout
                self._timeout = timeout
            first = bytes(self._port.read(1))
            if not first:
                return b""
            waiting = min(int(getattr(self._port, "in_waiting", 0)), max_bytes - 1)
            return first + (bytes(self._port.read(waiting)) if waiting > 0 else b"")
        except (serial.SerialException, OSError, termios.error) as exc:
            raise LinkError(f"serial read failed: {exc}") from exc

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
            self._port.flush()
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"serial write failed: {exc}") from exc

    def close(self) -> None:
        with contextlib.suppress(serial.SerialException, OSError):
            self._port.close()


def _is_pseudo_terminal(url: str) -> bool:
    return os.path.realpath(url).startswith("/dev/pts/")


def open_serial(url: str, baudrate: int, *, parity: str = serial.PARITY_ODD) -> SerialLink:
    """Open a DART line: 8 data bits, odd parity, 1 stop bit by default.

    A pseudo-terminal (a simulator's line) carries bytes, not bits: Linux refuses a parity
    setting on it, so parity is left off there.
    """
    if parity != serial.PARITY_NONE and _is_pseudo_terminal(url):
        parity = serial.PARITY_NONE
    try:
        port = serial.serial_for_url(
            url,
            baudrate=baudrate,
            bytesize=serial.EIGHTBITS,
            parity=parity,
            stopbits=serial.STOPBITS_ONE,
            timeout=0.05,
            exclusive=None,
        )
    except (serial.SerialException, OSError, ValueError, termios.error) as exc:
        raise LinkError(f"cannot open {url}: {exc}") from exc
    return SerialLink(port)


class TcpLink:
    """A blocking TCP connection with the same read/write shape as a serial port."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    @classmethod
    def connect(cls, host: str, port: int, timeout: float = 5.0) -> TcpLink:
        try:
            return cls(socket.create_connection((host, port), timeout=timeout))
        except OSError as exc:
            raise LinkError(f"cannot connect to {host}:{port}: {exc}") from exc

    def read(self, max_bytes: int, timeout: float) -> bytes:
        self._sock.settimeout(timeout)
        try:
            data = self._sock.recv(max_bytes)
        except TimeoutError:
            return b""
        except OSError as exc:
            raise LinkError(f"tcp read failed: {exc}") from exc
        if not data:
            raise LinkClosed("peer closed the connection")
        return data

    def write(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise LinkError(f"tcp write failed: {exc}") from exc

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


class PipeLink:
    """One end of an in-memory, thread-safe byte pipe: `PipeLink.pair()` for tests."""

    def __init__(
        self,
        inbox: deque[bytes],
        outbox: deque[bytes],
        cond: threading.Condition,
        state: dict[str, bool],
    ) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self._cond = cond
        self._state = state  # shared by both ends: closing either end closes the pipe

    @classmethod
    def pair(cls) -> tuple[PipeLink, PipeLink]:
        cond = threading.Condition()
        state = {"closed": False}
        a_to_b: deque[bytes] = deque()
        b_to_a: deque[bytes] = deque()
        return cls(b_to_a, a_to_b, cond, state), cls(a_to_b, b_to_a, cond, state)

    @property
    def closed(self) -> bool:
        return self._state["closed"]

    def read(self, max_bytes: int, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._inbox:
                if self.closed:
                    raise LinkClosed("pipe closed")
                left = deadline - time.monotonic()
                if left <= 0:
                    return b""
                self._cond.wait(left)
            chunk = self._inbox.popleft()
            if len(chunk) > max_bytes:
                self._inbox.appendleft(chunk[max_bytes:])
                chunk = chunk[:max_bytes]
            return chunk

    def write(self, data: bytes) -> None:
        with self._cond:
            if self.closed:
                raise LinkClosed("pipe closed")
            self._outbox.append(bytes(data))
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._state["closed"] = True
            self._cond.notify_all()
