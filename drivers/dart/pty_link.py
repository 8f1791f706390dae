"""A pseudo-terminal pair: the simulator talks on the master side, a driver opens the slave.

The slave device path (e.g. /dev/pts/5) is what a field engineer puts in station.toml to run
the agent against the simulator without any hardware. Nobody holds the slave open here, so
the master side can tell whether a driver is attached (`peer_connected`); bytes written
while none is are dropped, as on a bus where nobody listens.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import time
import tty

from ..errors import LinkClosed, LinkError
from ..links import ByteLink

__all__ = ["PtyLink", "open_pty"]


class PtyLink:
    """The master side of a pty as a ByteLink."""

    def __init__(self, master_fd: int, write_timeout_s: float = 1.0) -> None:
        self._master = master_fd
        self._write_timeout = write_timeout_s
        self._closed = False
        self._poller = select.poll()
        self._poller.register(master_fd, select.POLLIN | select.POLLOUT)
        os.set_blocking(master_fd, False)

    @property
    def peer_connected(self) -> bool:
        """True while some process has the slave side open."""
        if self._closed:
            return False
        return not any(events & select.POLLHUP for _, events in self._poller.poll(0))

    def read(self, max_bytes: int, timeout: float) -> bytes:
        if self._closed:
            raise LinkClosed("pty closed")
        try:
            ready, _, _ = select.select([self._master], [], [], max(0.0, timeout))
            return os.read(self._master, max_bytes) if ready else b""
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise LinkError(f"pty read failed: {exc}") from exc
        time.sleep(max(0.0, timeout))  # EIO: nobody has the slave open, nothing to read
        return b""

    def write(self, data: bytes) -> None:
        if self._closed:
            raise LinkClosed("pty closed")
        if not self.peer_connected:
            return  # nobody listens: the bytes are lost, as on a wire
        view = memoryview(data)
        deadline = time.monotonic() + self._write_timeout
        try:
            while view and time.monotonic() < deadline:
                _, ready, _ = select.select([], [self._master], [], deadline - time.monotonic())
                if ready:
                    with contextlib.suppress(BlockingIOError):
                        view = view[os.write(self._master, view) :]
        except OSError as exc:
            raise LinkError(f"pty write failed: {exc}") from exc

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):
                os.close(self._master)


def open_pty() -> tuple[ByteLink, str]:
    """A new pty in raw mode: the link over its master side and the slave's device path."""
    master_fd, slave_fd = os.openpty()
    try:
        tty.setraw(slave_fd)
        path = os.ttyname(slave_fd)
    finally:
        os.close(slave_fd)
    return PtyLink(master_fd), path
