"""At most `size` password or PIN hashes at once, for the station's cashier login and the
HQ console's login alike; a login finding every slot busy is refused at once.

argon2 is memory-hard by design (19 MiB per hash), so the number of hashes in flight, not
the number of requests, bounds a process's memory. Slots are taken without waiting: a queue
of waiting logins would only hold memory and connections longer. The hashes run on `size`
threads of their own, not the shared pool: the C allocator keeps a hash's memory in the
arena of the thread that ran it, so few threads also bound what stays allocated after a
burst.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["HashSlots"]

_T = TypeVar("_T")


@dataclass
class HashSlots:
    size: int = 2
    thread_name: str = "hash"
    _semaphore: threading.Semaphore = field(init=False)
    _executor: ThreadPoolExecutor | None = field(init=False, default=None)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    busy: int = 0
    most_busy: int = 0  # the most hashes ever in flight together (tests, metrics)

    def __post_init__(self) -> None:
        self._semaphore = threading.BoundedSemaphore(self.size)

    def try_acquire(self) -> bool:
        if not self._semaphore.acquire(blocking=False):
            return False
        with self._lock:
            self.busy += 1
            self.most_busy = max(self.most_busy, self.busy)
        return True

    def release(self) -> None:
        with self._lock:
            self.busy -= 1
        self._semaphore.release()

    async def run(self, work: Callable[..., _T], *args: Any) -> _T:
        """Run `work(*args)` on the hashing threads (hold a slot first)."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.size, thread_name_prefix=self.thread_name)
            executor = self._executor
        return await asyncio.get_running_loop().run_in_executor(executor, work, *args)
