"""`DartDriver`: Wayne DART pumps on one RS-485 link, turned into `FuelSale` and `PumpStatus`.

The link is blocking (a half-duplex master must answer within milliseconds), so the driver
runs it in a worker thread and calls the application's async sinks back on the event loop,
waiting for each to return: a sale counts as delivered only once the sink has committed it.
The link is reopened with exponential backoff when it fails; pump state survives that.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from ..counters import LinkCounters
from ..errors import LinkError
from ..events import Clock, FuelSale, PumpStatus, SaleSink, StatusSink
from ..links import ByteLink
from .channel import Outlet, PumpChannel
from .config import DartPumpConfig
from .master import MasterSession, MasterTiming
from .sniffer import SnifferSession

__all__ = ["DartDriver", "DartPumpConfig"]

Mode = Literal["master", "sniffer"]


class DartDriver:
    """Run with `await driver.run(on_sale, on_status)` until cancelled.

    mode="master": the agent is the only controller; it polls, authorizes lifted nozzles
    (authorize="auto") and reads totals after each sale. mode="sniffer": another controller
    owns the bus; the driver only listens. See `drivers.dart.sales` for the sale-key rules.
    """

    def __init__(
        self,
        *,
        name: str,
        link_factory: Callable[[], ByteLink],
        pumps: Sequence[DartPumpConfig],
        mode: Mode,
        authorize: Literal["auto", "never"] = "auto",
        clock: Clock,
        counters: LinkCounters | None = None,
        reply_timeout_s: float = 0.025,
        logger: logging.Logger | None = None,
        cycle_s: float = 0.05,
        totals_wait_s: float = 30.0,
        backoff_s: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        if mode not in ("master", "sniffer"):
            raise ValueError(f"mode must be 'master' or 'sniffer', not {mode!r}")
        if authorize not in ("auto", "never"):
            raise ValueError(f"authorize must be 'auto' or 'never', not {authorize!r}")
        if not pumps:
            raise ValueError("a DART link needs at least one pump")
        for label, values in (
            ("address", [p.address for p in pumps]),
            ("fuelling_point", [p.fuelling_point for p in pumps]),
        ):
            if len(set(values)) != len(values):
                raise ValueError(f"two pumps on link {name!r} share a {label}")
        self.name = name
        self.mode: Mode = mode
        self.counters = counters if counters is not None else LinkCounters()
        self._link_factory = link_factory
        self._channels = [PumpChannel(config) for config in pumps]
        self._authorize = authorize == "auto"
        self._clock = clock
        self._timing = MasterTiming(reply_timeout_s=reply_timeout_s, cycle_s=cycle_s)
        self._totals_wait_s = totals_wait_s
        self._backoff = backoff_s
        self._logger = logger if logger is not None else logging.getLogger("drivers.dart")

    async def run(self, on_sale: SaleSink, on_status: StatusSink | None = None) -> None:
        loop = asyncio.get_running_loop()
        stop = threading.Event()
        # The bus gets a thread of its own for its whole life: borrowing one from the loop's
        # shared executor would starve the sinks (and every other bus) on a small machine.
        bus_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"dart-{self.name}")
        worker = loop.run_in_executor(
            bus_thread, self._work, self._outlet(loop, on_sale, on_status), stop
        )
        bus_thread.shutdown(wait=False)  # the running job keeps its thread; nothing else may
        try:
            await asyncio.shield(worker)
        except asyncio.CancelledError:
            stop.set()
            await asyncio.wait({worker})
            raise

    def _outlet(
        self, loop: asyncio.AbstractEventLoop, on_sale: SaleSink, on_status: StatusSink | None
    ) -> Outlet:
        def deliver_sale(sale: FuelSale) -> bool:
            return self._call_back(loop, on_sale(sale), f"sale {sale.sale_key}")

        def deliver_status(status: PumpStatus) -> None:
            if on_status is not None:
                self._call_back(loop, on_status(status), "pump status")

        return Outlet(
            link=self.name,
            mode=self.mode,
            clock=self._clock,
            counters=self.counters,
            logger=self._logger,
            deliver_sale=deliver_sale,
            deliver_status=deliver_status,
        )

    def _call_back(self, loop: asyncio.AbstractEventLoop, call: Awaitable[None], what: str) -> bool:
        """Run an application sink on its loop and wait for it; False if it failed."""

        async def wrapped() -> None:
            await call

        try:
            asyncio.run_coroutine_threadsafe(wrapped(), loop).result()
        except Exception:
            self._logger.exception("dart %s: the application refused %s", self.name, what)
            return False
        return True

    def _work(self, outlet: Outlet, stop: threading.Event) -> None:
        """Open, serve, and on failure reopen with exponential backoff until `stop`."""
        first, largest = self._backoff
        delay = first
        while not stop.is_set():
            frames_before = self.counters.frames
            self._serve_once(outlet, stop)
            if stop.is_set():
                return
            if self.counters.frames > frames_before:
                delay = first  # the link worked for a while: start backing off afresh
            self.counters.bump("reconnects")
            self._logger.info("dart %s: reopening the link in %.1f s", self.name, delay)
            stop.wait(delay)
            delay = min(delay * 2, largest)

    def _serve_once(self, outlet: Outlet, stop: threading.Event) -> None:
        try:
            link = self._link_factory()
        except Exception as exc:  # LinkError, or whatever a port driver lets escape
            self._logger.warning("dart %s: cannot open the link: %s", self.name, exc)
            return
        try:
            if self.mode == "master":
                MasterSession(
                    link, self._channels, outlet, timing=self._timing, authorize=self._authorize
                ).run(stop)
            else:
                SnifferSession(link, self._channels, outlet, totals_wait_s=self._totals_wait_s).run(
                    stop
                )
        except LinkError as exc:
            self._logger.warning("dart %s: link failed: %s", self.name, exc)
        except Exception:
            # A bug must not take the forecourt down: log it loudly and start over.
            self._logger.exception("dart %s: unexpected error, reopening the link", self.name)
        finally:
            link.close()
