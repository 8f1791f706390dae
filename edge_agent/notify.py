"""A tiny `sd_notify` client: tell systemd the daemon is ready, alive, busy, or stopping.

systemd hands a `Type=notify` service the path of a datagram socket in `NOTIFY_SOCKET`
(a file path, or an abstract name written with a leading `@`) and, with `WatchdogSec=`, the
expected ping period in `WATCHDOG_USEC`. Outside systemd both are unset and every call here
does nothing, so the same daemon runs in a terminal, a test or a unit without a flag.

Sends never block: a full or vanished socket drops the message, because a stuck notifier
must not stall the event loop whose liveness the watchdog is meant to prove.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Mapping

__all__ = ["Notifier"]

log = logging.getLogger(__name__)


class Notifier:
    """Sends `KEY=value` lines to systemd's notification socket (a no-op without one)."""

    def __init__(self, address: str | None, *, watchdog_usec: int | None = None) -> None:
        self.address = address or None
        self.watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        self._socket: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """Read `NOTIFY_SOCKET` and `WATCHDOG_USEC` (honouring `WATCHDOG_PID` if set)."""
        env = os.environ if environ is None else environ
        usec: int | None = None
        raw = env.get("WATCHDOG_USEC", "").strip()
        watchdog_pid = env.get("WATCHDOG_PID", "").strip()
        if raw and (not watchdog_pid or watchdog_pid == str(os.getpid())):
            try:
                usec = int(raw)
            except ValueError:
                log.warning("WATCHDOG_USEC=%r is not a number; no watchdog pings", raw)
        return cls(env.get("NOTIFY_SOCKET", "").strip() or None, watchdog_usec=usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """Half the watchdog period, as sd_watchdog_enabled(3) advises; None without one."""
        return None if self.watchdog_usec is None else self.watchdog_usec / 2_000_000

    def _target(self) -> str | bytes:
        assert self.address is not None
        if self.address.startswith("@"):
            return b"\0" + self.address[1:].encode()  # Linux abstract namespace
        return self.address

    def send(self, **fields: str | int) -> bool:
        """Send one datagram of `KEY=value` lines; True if it left, False if dropped or off."""
        if self.address is None:
            return False
        text = "\n".join(f"{key}={_one_line(str(value))}" for key, value in fields.items())
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.setblocking(False)
            self._socket.sendto(text.encode("utf-8"), self._target())
        except OSError as exc:
            if not self._warned:  # once: a missing socket would otherwise log every tick
                log.warning("cannot notify systemd at %s: %s", self.address, exc)
                self._warned = True
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send(READY=1, **({"STATUS": status} if status else {}))

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1) if self.watchdog_usec is not None else False

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def stopping(self, status: str | None = None) -> bool:
        return self.send(STOPPING=1, **({"STATUS": status} if status else {}))

    def close(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
            self._socket = None


def _one_line(value: str) -> str:
    return " ".join(value.split())
