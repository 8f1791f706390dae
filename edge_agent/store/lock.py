"""One syncing process per data directory.

`edge run` holds this lock for its whole life and `edge sync` takes it for one cycle, so two
engines never push, rewind or move the changes cursor of one store at the same time, and an
enrolment (which re-keys members) never happens behind a running daemon's back. The lock is
an advisory `flock`: the kernel releases it when the process dies, even after kill -9.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from .database import StoreError

__all__ = ["AgentLock", "AgentLockHeld"]

LOCK_FILE = "agent.lock"


class AgentLockHeld(StoreError):
    """Another loyalpump process works on this data directory; worth retrying later."""


class AgentLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock now or raise StoreError naming the holder's pid."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "another process"
            os.close(fd)
            raise AgentLockHeld(
                f"{self.path.parent} is in use by loyalpump (pid {holder}): `edge run` syncs "
                "by itself; see `loyalpump edge status`"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode("ascii"))
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> AgentLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
