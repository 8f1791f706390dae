"""What the running station knows beyond its store: its driver handles, counters, pump states."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from drivers.counters import LinkCounters
from drivers.events import SaleSink, StatusSink

from ..services.station import Station
from ..web.health import DriverHealth, HealthProbe, RuntimeHealth
from ..web.live import LiveBoard

__all__ = ["Driver", "DriverHandle", "StationRuntime", "health_probe"]

_LINK_QUIET_S = 15.0  # a DART bus with no frame for this long counts as disconnected


class Driver(Protocol):
    async def run(self, on_sale: SaleSink, on_status: StatusSink | None = None) -> None: ...


@dataclass
class DriverHandle:
    name: str
    kind: str
    driver: Driver
    counters: LinkCounters
    task: asyncio.Task[None] | None = None
    _frames_seen: int = 0
    _frames_at: float | None = None  # monotonic time the frame counter last moved

    def observe(self, now: float) -> None:
        """Note whether frames moved since the last look (called on the event loop)."""
        frames = self.counters.frames
        if frames != self._frames_seen:
            self._frames_seen, self._frames_at = frames, now

    def connected(self, now: float | None = None) -> bool:
        """The driver task runs and its link is up.

        An FDC client says so itself (`logged_on`: connected and logged on). A DART bus has
        no session to ask, but a master polls every pump several times a second and a
        sniffer hears that traffic, so the link is up while frames keep arriving.
        """
        if self.task is None or self.task.done():
            return False
        logged_on = getattr(self.driver, "logged_on", None)
        if isinstance(logged_on, bool):
            return logged_on
        now = time.monotonic() if now is None else now
        self.observe(now)
        return self._frames_at is not None and now - self._frames_at < _LINK_QUIET_S


@dataclass
class StationRuntime:
    """What the running station knows beyond its store: links, their counters, pump states."""

    station: Station
    drivers: list[DriverHandle]
    live: LiveBoard = field(default_factory=LiveBoard)
    sales_ingested: dict[str, int] = field(default_factory=dict)
    sales_quarantined: int = 0
    sync_thread: threading.Thread | None = None
    writer: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
    )  # one thread writes the store: sales never wait behind other work for a thread


def health_probe(runtime: StationRuntime) -> HealthProbe:
    """What /healthz and /metrics learn from the running daemon (links, sync thread)."""

    def probe() -> RuntimeHealth:
        now = time.monotonic()
        thread = runtime.sync_thread
        return RuntimeHealth(
            drivers=tuple(
                DriverHealth(
                    name=handle.name,
                    kind=handle.kind,
                    connected=handle.connected(now),
                    sales=runtime.sales_ingested.get(handle.name, 0),
                    counters=handle.counters.snapshot(),
                )
                for handle in runtime.drivers
            ),
            sync_thread_alive=thread is not None and thread.is_alive(),
        )

    return probe
