"""A job the service runs every so often in a thread of its own (lot expiry and partition
upkeep, the replica heartbeat): a failing run is the next run's to retry, never fatal."""

from __future__ import annotations

import threading

__all__ = ["PeriodicJob"]


class PeriodicJob:
    """Call `run_once` at `start`, then every `every_s`, until `stop`.

    `run_once` catches and logs its own failures: each job knows what a failure means to
    its readers (the heartbeat logs once per outage, expiry every time).
    """

    def __init__(self, name: str, every_s: float) -> None:
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def run_once(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self._every_s)
