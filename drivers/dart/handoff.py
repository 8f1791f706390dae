"""From the DART bus thread to the application's sinks on the event loop, without waiting.

The bus thread must answer pumps within milliseconds, so it never waits for the application.
`LoopHandoff.hand_over_sale` puts a sale on a queue of the loop (`call_soon_threadsafe`) and
returns a `concurrent.futures.Future` at once; a consumer task on the loop awaits the
application's sale sink for one sale at a time, in order, and settles that future: a result
once the sink returned (the sale is committed), the sink's exception otherwise. The bus
thread looks at the future on its next round and only then lets the pump be reset (see
`channel.PumpChannel`). Status changes take a queue and a consumer of their own, so a slow
commit never holds the pump board back.

Bounded: at most `limit` sales wait at once (a stuck store holds no more in memory; a sale
refused for that reason stays on its pump and is offered again), and a status beyond `limit`
is dropped and logged (the board catches up with the next change).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future

from ..errors import DriverError
from ..events import FuelSale, PumpStatus, SaleSink, StatusSink

__all__ = ["HandoffClosed", "LoopHandoff"]


class HandoffClosed(DriverError):
    """The sale was not handed over: the queue is full, or the driver is stopping."""


class LoopHandoff:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_sale: SaleSink,
        on_status: StatusSink | None,
        *,
        link: str,
        logger: logging.Logger,
        limit: int = 64,
    ) -> None:
        self._loop = loop
        self._on_sale = on_sale
        self._on_status = on_status
        self._link = link
        self._log = logger
        self._limit = limit
        self._sales: asyncio.Queue[tuple[FuelSale, Future[None]]] = asyncio.Queue()
        self._statuses: asyncio.Queue[PumpStatus] = asyncio.Queue()
        self._lock = threading.Lock()
        self._sales_waiting = 0
        self._statuses_waiting = 0
        self._tasks: list[asyncio.Task[None]] = []

    # -- the loop's side ----------------------------------------------------------------

    def start(self) -> None:
        """Start the consumers (call on the loop)."""
        self._tasks = [
            self._loop.create_task(self._commit_sales(), name=f"dart-{self._link}-sales"),
            self._loop.create_task(self._show_statuses(), name=f"dart-{self._link}-status"),
        ]

    async def close(self) -> None:
        """Stop the consumers; a sale not yet committed stays unacknowledged on its pump."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        while not self._sales.empty():
            _, future = self._sales.get_nowait()
            _settle(future, HandoffClosed("the driver stopped before the sale was committed"))

    async def _commit_sales(self) -> None:
        while True:
            sale, future = await self._sales.get()
            try:
                await self._on_sale(sale)
            except asyncio.CancelledError:
                _settle(future, HandoffClosed("the driver stopped during the commit"))
                raise
            except Exception as exc:
                self._log.exception(
                    "dart %s: the application refused sale %s", self._link, sale.sale_key
                )
                _settle(future, exc)
            else:
                _settle(future, None)

    async def _show_statuses(self) -> None:
        while True:
            status = await self._statuses.get()
            with self._lock:
                self._statuses_waiting -= 1
            if self._on_status is None:
                continue
            try:
                await self._on_status(status)
            except Exception:
                self._log.exception("dart %s: the application refused a pump status", self._link)

    # -- the bus thread's side -----------------------------------------------------------

    def hand_over_sale(self, sale: FuelSale) -> Future[None]:
        """Queue `sale` for the sink; never blocks. The future says when it is committed."""
        future: Future[None] = Future()
        with self._lock:
            if self._sales_waiting >= self._limit:
                future.set_exception(HandoffClosed(f"{self._limit} sales already wait"))
                return future
            self._sales_waiting += 1
        future.add_done_callback(self._sale_settled)
        try:
            self._loop.call_soon_threadsafe(self._sales.put_nowait, (sale, future))
        except RuntimeError:  # the loop is closed: the driver is going away
            _settle(future, HandoffClosed("the event loop is closed"))
        return future

    def show_status(self, status: PumpStatus) -> None:
        """Queue a pump status for the board; never blocks, drops it beyond the limit."""
        with self._lock:
            if self._statuses_waiting >= self._limit:
                dropped = True
            else:
                dropped = False
                self._statuses_waiting += 1
        if dropped:
            self._log.warning(
                "dart %s: %d pump statuses already wait; fuelling point %d %s not shown",
                self._link,
                self._limit,
                status.fuelling_point,
                status.state,
            )
            return
        try:
            self._loop.call_soon_threadsafe(self._statuses.put_nowait, status)
        except RuntimeError:
            with self._lock:
                self._statuses_waiting -= 1

    def _sale_settled(self, _: Future[None]) -> None:
        with self._lock:
            self._sales_waiting -= 1


def _settle(future: Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
