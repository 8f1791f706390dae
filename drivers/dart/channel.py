"""The driver's side of one pump (config, tracker, timers) and the outlet all findings go to.

Sessions (master or listener) decide which frames belong to a pump; a `PumpChannel` decodes
them, feeds its tracker and hands status changes and finished sales to the `Outlet`, which
counts, logs (rate limited) and passes them on to the application without waiting for it.

A finished sale is handed over once and followed on every round (`publish`): the pump keeps
it (the master does not reset it) until the application says it is committed; a refused
sale is handed over again after `Outlet.retry_delay`; one that is not committed within
`Outlet.commit_timeout_s` is counted (`commit_timeouts`) and logged, and still waited for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from ..counters import LinkCounters
from ..errors import CrcError, FramingError, MalformedMessage
from ..events import Clock, FuelSale, PumpStatus
from .config import DartPumpConfig
from .framer import Frame
from .messages import FromPump, decode_from_pump
from .pump import BoardUpdate, CompletedFilling, PumpTracker
from .sales import build_sale

__all__ = ["Outlet", "PumpChannel"]


class _Throttle:
    """At most one log line per `interval_s` per topic; says how many it held back."""

    def __init__(self, interval_s: float) -> None:
        self._interval = interval_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def allow(self, topic: str) -> int | None:
        now = time.monotonic()
        if now - self._last.get(topic, -self._interval) < self._interval:
            self._held[topic] = self._held.get(topic, 0) + 1
            return None
        self._last[topic] = now
        return self._held.pop(topic, 0)


@dataclass
class Outlet:
    """Counts, logs and hands over; neither hand-over waits for the application.

    `hand_over_sale` returns a future that completes once the application has committed the
    sale (or fails if it did not); `retry_delay(n)` is how long to wait before handing a
    sale over again after its n-th failure.
    """

    link: str
    mode: str
    clock: Clock
    counters: LinkCounters
    logger: logging.Logger
    hand_over_sale: Callable[[FuelSale], Future[None]]
    deliver_status: Callable[[PumpStatus], None]
    retry_delay: Callable[[int], float]
    commit_timeout_s: float = 15.0
    _throttle: _Throttle = field(default_factory=lambda: _Throttle(10.0))

    def framing_problem(self, error: FramingError) -> None:
        self.counters.bump("crc_errors" if isinstance(error, CrcError) else "framing_errors")
        self.counters.bump("resyncs")
        self.warn("framing", f"{type(error).__name__}: {error}")

    def malformed(self, error: MalformedMessage, frame: Frame) -> None:
        self.counters.bump("malformed")
        self.warn("malformed", f"block from 0x{frame.address:02X} skipped: {error}")

    def timeout(self, address: int) -> None:
        self.counters.bump("timeouts")
        self.warn(f"timeout-{address:02X}", f"no answer from 0x{address:02X}")

    def warn(self, topic: str, message: str) -> None:
        held = self._throttle.allow(topic)
        if held is None:
            return
        more = f" (+{held} similar)" if held else ""
        self.logger.warning(
            "dart %s: %s%s; counters %s", self.link, message, more, self.counters.snapshot()
        )


@dataclass
class _Delivery:
    """A finished sale handed to the application and not yet known to be committed."""

    filling: CompletedFilling
    sale: FuelSale
    future: Future[None] | None  # None: refused, waiting until `retry_at` to go again
    since: float  # monotonic time of the last hand-over
    failures: int = 0
    retry_at: float = 0.0
    timeouts: int = 0  # commit timeouts reported for the current hand-over


class PumpChannel:
    """One configured pump: decodes its blocks, tracks it, publishes what changed."""

    def __init__(self, config: DartPumpConfig) -> None:
        self.config = config
        self.tracker = PumpTracker(config.decimals, tuple(config.nozzles))
        self.totals_tries = 0
        self.info_tries = 0
        self.sale_open_since: float | None = None  # monotonic time the open sale appeared
        self._dropped_seen = 0
        self._deliveries: list[_Delivery] = []  # survive a reopened link, like the tracker

    @property
    def deliveries(self) -> int:
        """Sales handed over whose commit has not been confirmed yet."""
        return len(self._deliveries)

    @property
    def address(self) -> int:
        return self.config.address

    def absorb(self, frame: Frame, outlet: Outlet) -> None:
        """A block the pump sent: decode it all or not at all, then update and publish."""
        decimals = self.config.decimals
        try:
            messages: list[FromPump] = [
                decode_from_pump(trans, data, decimals) for trans, data in frame.transactions
            ]
        except MalformedMessage as exc:
            outlet.malformed(exc, frame)
            return
        update = self.tracker.observe(messages, outlet.clock())
        self.publish(outlet, update)

    def mark_offline(self, outlet: Outlet) -> None:
        self.publish(outlet, self.tracker.mark_offline())

    def publish(self, outlet: Outlet, update: BoardUpdate | None = None) -> None:
        if update is not None:
            outlet.deliver_status(self._status(update, outlet))
        self._note_drops(outlet)
        self._follow_deliveries(outlet)
        tracker = self.tracker
        if not tracker.sale_open:
            self.sale_open_since = None
            self.totals_tries = self.info_tries = 0
            return
        if self.sale_open_since is None:
            self.sale_open_since = time.monotonic()
        filling = tracker.ready_sale()
        if filling is None or any(d.filling.ticket is filling.ticket for d in self._deliveries):
            return  # nothing ready, or already handed over
        sale = build_sale(
            link=outlet.link,
            address=self.address,
            fuelling_point=self.config.fuelling_point,
            grades=self.config.nozzles,
            filling=filling,
            mode=outlet.mode,
        )
        self._deliveries.append(
            _Delivery(filling, sale, outlet.hand_over_sale(sale), time.monotonic())
        )
        self._follow_deliveries(outlet)  # a sink that answered at once is settled now

    def _follow_deliveries(self, outlet: Outlet) -> None:
        """Acknowledge what was committed, hand refused sales over again, report stalls."""
        now = time.monotonic()
        for delivery in list(self._deliveries):
            future = delivery.future
            if future is None:
                if now >= delivery.retry_at:
                    outlet.counters.bump("commit_retries")
                    delivery.future = outlet.hand_over_sale(delivery.sale)
                    delivery.since, delivery.timeouts = now, 0
                continue
            if not future.done():
                waited = now - delivery.since
                if waited >= outlet.commit_timeout_s * (delivery.timeouts + 1):
                    delivery.timeouts += 1
                    outlet.counters.bump("commit_timeouts")
                    outlet.logger.warning(
                        "dart %s: sale %s not committed after %.0f s; the pump keeps it "
                        "until it is",
                        outlet.link,
                        delivery.sale.sale_key,
                        waited,
                    )
                continue
            error = "cancelled" if future.cancelled() else future.exception()
            if error is not None:
                delivery.failures += 1
                delivery.future = None
                wait = outlet.retry_delay(delivery.failures)
                delivery.retry_at = now + wait
                outlet.logger.warning(
                    "dart %s: sale %s not committed (%s); handing it over again in %.1f s",
                    outlet.link,
                    delivery.sale.sale_key,
                    error,
                    wait,
                )
                continue
            self._deliveries.remove(delivery)
            self.tracker.acknowledge(delivery.filling)  # only now may the pump be reset
            outlet.counters.bump("sales")

    def totals_overdue(self, wait_s: float) -> bool:
        since = self.sale_open_since
        return since is not None and time.monotonic() - since > wait_s

    def _status(self, update: BoardUpdate, outlet: Outlet) -> PumpStatus:
        return PumpStatus(
            source="dart",
            fuelling_point=self.config.fuelling_point,
            state=update.state,
            nozzle=update.nozzle,
            at=outlet.clock(),
            volume=update.volume,
            amount=update.amount,
        )

    def _note_drops(self, outlet: Outlet) -> None:
        dropped = self.tracker.dropped
        for reason in dropped[self._dropped_seen :]:
            outlet.logger.warning(
                "dart %s: fuelling point %d: %s", outlet.link, self.config.fuelling_point, reason
            )
        self._dropped_seen = len(dropped)
