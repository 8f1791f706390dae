"""Bounds on signing in: attempts per name and per address, and password hashes at once.

`LoginLimiter.reserve` counts an attempt BEFORE its password is checked, under a lock, so a
burst of parallel guesses is cut at the limit whatever order the checks finish in. A wrong
password keeps its slot; a right one gives back that name's slots from that address. The
tables forget keys whose attempts aged out and never hold more than `max_keys` keys, so a
flood of invented names cannot grow memory without bound.

`HashSlots` (cloud_sync.core.hash_slots, shared with the station's cashier page) lets at most
`size` argon2 hashes run at once; a sign-in finding every slot busy is refused at once.

The limiter follows the station's cashier page but bounds its tables by evicting the oldest
keys, and has no `retry_after`; the cloud never imports the station.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from cloud_sync.core.hash_slots import HashSlots

__all__ = ["HashSlots", "LoginLimiter"]

_Table = dict[str, deque[tuple[float, str]]]


@dataclass
class LoginLimiter:
    per_name: int = 5
    per_address: int = 20
    window_s: float = 900.0
    max_keys: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _by_name: _Table = field(default_factory=dict)
    _by_address: _Table = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reserve(self, name: str, address: str) -> float:
        """Take an attempt's slot: 0 when taken, else the seconds until one frees up."""
        now = self.clock()
        with self._lock:
            by_name = self._recent(self._by_name, name, now)
            by_address = self._recent(self._by_address, address, now)
            waits = []
            if len(by_name) >= self.per_name:
                waits.append(by_name[0][0] + self.window_s - now)
            if len(by_address) >= self.per_address:
                waits.append(by_address[0][0] + self.window_s - now)
            if waits:
                return max(1.0, *waits)
            self._bound(now)
            self._by_name.setdefault(name, by_name).append((now, address))
            self._by_address.setdefault(address, by_address).append((now, name))
            return 0.0

    def release(self, name: str, address: str) -> None:
        """Give back the newest slot of (name, address): its password was never checked."""
        with self._lock:
            for table, key, other in (
                (self._by_name, name, address),
                (self._by_address, address, name),
            ):
                entries = table.get(key)
                for index in range(len(entries or ()) - 1, -1, -1):
                    assert entries is not None
                    if entries[index][1] == other:
                        del entries[index]
                        break

    def succeeded(self, name: str, address: str) -> None:
        """A right password: forget this name's attempts from this address."""
        with self._lock:
            for table, key, other in (
                (self._by_name, name, address),
                (self._by_address, address, name),
            ):
                entries = table.get(key)
                if entries:
                    table[key] = deque(e for e in entries if e[1] != other)

    def attempts(self) -> int:
        """Attempts counted in the window, all names together."""
        now = self.clock()
        with self._lock:
            return sum(
                sum(1 for at, _ in entries if now - at <= self.window_s)
                for entries in self._by_name.values()
            )

    def keys(self) -> int:
        with self._lock:
            return len(self._by_name) + len(self._by_address)

    def _recent(self, table: _Table, key: str, now: float) -> deque[tuple[float, str]]:
        entries = table.get(key)
        if entries is None:
            return deque()
        while entries and now - entries[0][0] > self.window_s:
            entries.popleft()
        return entries

    def _bound(self, now: float) -> None:
        """Keep each table under `max_keys`: drop aged-out keys, then the oldest ones."""
        for table in (self._by_name, self._by_address):
            if len(table) < self.max_keys:
                continue
            for key in list(table):
                if not self._recent(table, key, now):
                    del table[key]
            while len(table) >= self.max_keys:
                oldest = min(table, key=lambda k: table[k][-1][0])
                del table[oldest]
