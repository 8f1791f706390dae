"""The live pumps board: the latest state of each pump and change notices for the SSE stream.

Drivers report pump states on the event loop; the cashier's browsers listen on
`/api/v1/events`. Notices are coalesced per subscriber (a slow browser gets "pumps" once,
not a backlog of every state change) so a busy forecourt never grows memory.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable

from drivers.events import PumpStatus

__all__ = ["LiveBoard"]


class _Subscriber:
    """One listening browser: the event names it has not seen yet, in first-seen order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: dict[str, None] = {}
        self.wake = asyncio.Event()
        self.closed = False

    def push(self, name: str) -> None:
        self.pending[name] = None
        self.wake.set()

    def close(self) -> None:
        self.closed = True
        self.wake.set()


class LiveBoard:
    """Pump states plus change notifications; safe to update from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pumps: dict[tuple[int, str], PumpStatus] = {}
        self._subscribers: set[_Subscriber] = set()
        self._last_sale: str | None = None

    def update_pump(self, status: PumpStatus) -> None:
        with self._lock:
            self._pumps[(status.fuelling_point, status.source)] = status
        self._notify("pumps")

    def sale_recorded(self, sale_id: str) -> None:
        with self._lock:
            self._last_sale = sale_id
        self._notify("sale")

    @property
    def last_sale(self) -> str | None:
        return self._last_sale

    def pumps(self) -> list[PumpStatus]:
        """Every pump's latest state, by fuelling point."""
        with self._lock:
            return [self._pumps[key] for key in sorted(self._pumps)]

    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    async def subscribe(self) -> AsyncGenerator[str, None]:
        """Yield "pumps" / "sale" as they happen, until closed or the consumer stops."""
        subscriber = _Subscriber(asyncio.get_running_loop())
        with self._lock:
            self._subscribers.add(subscriber)
        try:
            while True:
                await subscriber.wake.wait()
                subscriber.wake.clear()
                if subscriber.closed:
                    return
                names = list(subscriber.pending)
                subscriber.pending.clear()
                for name in names:
                    yield name
        finally:
            with self._lock:
                self._subscribers.discard(subscriber)

    def close(self) -> None:
        """End every subscription, so open event streams let the web server stop promptly."""
        for subscriber in self._snapshot():
            self._call(subscriber, subscriber.close)

    def _snapshot(self) -> list[_Subscriber]:
        with self._lock:
            return list(self._subscribers)

    def _notify(self, name: str) -> None:
        for subscriber in self._snapshot():
            self._call(subscriber, subscriber.push, name)

    @staticmethod
    def _call(subscriber: _Subscriber, method: Callable[..., None], *args: str) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is subscriber.loop:
            method(*args)
        elif not subscriber.loop.is_closed():
            subscriber.loop.call_soon_threadsafe(method, *args)
