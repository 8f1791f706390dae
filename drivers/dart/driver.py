"""`DartDriver`: Wayne DART pumps on one RS-485 link, turned into `FuelSale` and `PumpStatus`.

The link is blocking (a half-duplex master must answer within milliseconds), so the driver
runs it in a thread of its own, which never waits for the application: it hands each
finished sale and status change to the event loop (`handoff.LoopHandoff`) and keeps polling.
A sale counts as delivered, and its pump may be reset, only once the application's sink has
returned for it (committed); until then the pump keeps showing it, so nothing is lost if
the agent stops. The link is reopened after `reconnect_delay` when it fails; pump state and
sales in hand-over survive that.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from ..counters import LinkCounters
from ..errors import LinkError
from ..events import Clock, RetryDelay, SaleSink, StatusSink
from ..links import ByteLink
from .channel import Outlet, PumpChannel
from .config import DartPumpConfig
from .handoff import LoopHandoff
from .master import MasterSession, MasterTiming
from .sniffer import SnifferSession

__all__ = ["DartDriver", "DartPumpConfig"]

Mode = Literal["master", "sniffer"]


class DartDriver:
    """Run with `await driver.run(on_sale, on_status)` until cancelled.

    mode="master": the agent is the only controller; it polls, authorizes lifted nozzles
    (authorize="auto") and reads totals after each sale. mode="sniffer": another controller
    owns the bus; the driver only listens. See `drivers.dart.sales` for the sale-key rules.

    `reconnect_delay(n)` is the wait before reopening the link after its n-th failure in a
    row, and before handing a refused sale over again after its n-th refusal (the daemon
    passes `cloud_sync.core.backoff.schedule(...)`). A sale not committed within
    `commit_timeout_s` is counted and logged, and still waited for.
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
        reconnect_delay: RetryDelay,
        commit_timeout_s: float = 15.0,
    ) -> None:
        if mode not in ("master", "sniffer"):
            raise ValueError(f"mode must be 'master' or 'sniffer', not {mode!r}")
        if authorize not in ("auto", "never"):
            raise ValueError(f"authorize must be 'auto' or 'never', not {authorize!r}")
        if commit_timeout_s <= 0:
            raise ValueError("commit_timeout_s must be positive")
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
        self._reconnect_delay = reconnect_delay
        self._commit_timeout_s = commit_timeout_s
        self._logger = logger if logger is not None else logging.getLogger("drivers.dart")

    async def run(self, on_sale: SaleSink, on_status: StatusSink | None = None) -> None:
        loop = asyncio.get_running_loop()
        handoff = LoopHandoff(
            loop,
            on_sale,
            on_status,
            link=self.name,
            logger=self._logger,
            limit=max(64, 4 * len(self._channels)),
        )
        handoff.start()
        stop = threading.Event()
        # The bus gets a thread of its own for its whole life: borrowing one from the loop's
        # shared executor would starve the sinks (and every other bus) on a small machine.
        bus_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"dart-{self.name}")
        worker = loop.run_in_executor(bus_thread, self._work, self._outlet(handoff), stop)
        bus_thread.shutdown(wait=False)  # the running job keeps its thread; nothing else may
        try:
            await asyncio.shield(worker)
        except asyncio.CancelledError:
            stop.set()
            await asyncio.wait({worker})
            raise
        finally:
            await handoff.close()

    def _outlet(self, handoff: LoopHandoff) -> Outlet:
        return Outlet(
            link=self.name,
            mode=self.mode,
            clock=self._clock,
            counters=self.counters,
            logger=self._logger,
            hand_over_sale=handoff.hand_over_sale,
            deliver_status=handoff.show_status,
            retry_delay=self._reconnect_delay,
            commit_timeout_s=self._commit_timeout_s,
        )

    def _work(self, outlet: Outlet, stop: threading.Event) -> None:
        """Open, serve, and on failure reopen after `reconnect_delay` until `stop`."""
        failures = 0
        while not stop.is_set():
            frames_before = self.counters.frames
            self._serve_once(outlet, stop)
            if stop.is_set():
                return
            if self.counters.frames > frames_before:
                failures = 0  # the link worked for a while: start backing off afresh
            failures += 1
            delay = self._reconnect_delay(failures)
            self.counters.bump("reconnects")
            self._logger.info("dart %s: reopening the link in %.1f s", self.name, delay)
            stop.wait(delay)

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
