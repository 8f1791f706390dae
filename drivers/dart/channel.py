"""The driver's side of one pump (config, tracker, timers) and the outlet all findings go to.

Sessions (master or listener) decide which frames belong to a pump; a `PumpChannel` decodes
them, feeds its tracker and hands status changes and finished sales to the `Outlet`, which
counts, logs (rate limited) and calls the application's sinks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..counters import LinkCounters
from ..errors import CrcError, FramingError, MalformedMessage
from ..events import Clock, FuelSale, PumpStatus
from .config import DartPumpConfig
from .framer import Frame
from .messages import FromPump, decode_from_pump
from .pump import BoardUpdate, PumpTracker
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
    """Counts, logs and delivers; `deliver_sale` returns True once the application has it."""

    link: str
    mode: str
    clock: Clock
    counters: LinkCounters
    logger: logging.Logger
    deliver_sale: Callable[[FuelSale], bool]
    deliver_status: Callable[[PumpStatus], None]
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


class PumpChannel:
    """One configured pump: decodes its blocks, tracks it, publishes what changed."""

    def __init__(self, config: DartPumpConfig) -> None:
        self.config = config
        self.tracker = PumpTracker(config.decimals, tuple(config.nozzles))
        self.totals_tries = 0
        self.info_tries = 0
        self.sale_open_since: float | None = None  # monotonic time the open sale appeared
        self._dropped_seen = 0

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
        tracker = self.tracker
        if not tracker.sale_open:
            self.sale_open_since = None
            self.totals_tries = self.info_tries = 0
            return
        if self.sale_open_since is None:
            self.sale_open_since = time.monotonic()
        filling = tracker.ready_sale()
        if filling is None:
            return
        sale = build_sale(
            link=outlet.link,
            address=self.address,
            fuelling_point=self.config.fuelling_point,
            grades=self.config.nozzles,
            filling=filling,
            mode=outlet.mode,
        )
        if outlet.deliver_sale(sale):
            tracker.acknowledge()
            outlet.counters.bump("sales")
            self.sale_open_since = None
            self.totals_tries = self.info_tries = 0

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
