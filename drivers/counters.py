"""Per-link counters: what an operator reads on /metrics to see a flaky cable or a bad FDC."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

__all__ = ["LinkCounters"]


@dataclass
class LinkCounters:
    """Monotonic counters, safe to bump from a driver thread and read from another."""

    frames: int = 0
    crc_errors: int = 0
    framing_errors: int = 0
    malformed: int = 0
    timeouts: int = 0
    resyncs: int = 0
    reconnects: int = 0
    sales: int = 0
    commit_timeouts: int = 0  # DART: a handed-over sale not committed in time (still waited for)
    commit_retries: int = 0  # DART: a sale the application refused, handed over again
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def bump(self, name: str, by: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + by)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                name: int(getattr(self, name))
                for name in (
                    "frames",
                    "crc_errors",
                    "framing_errors",
                    "malformed",
                    "timeouts",
                    "resyncs",
                    "reconnects",
                    "sales",
                    "commit_timeouts",
                    "commit_retries",
                )
            }
