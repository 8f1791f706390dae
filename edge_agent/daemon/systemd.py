"""The systemd glue (`Type=notify`): `WATCHDOG=1` from the event loop and a `STATUS=` line with
links, sales, backlog and last cloud contact."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from ..notify import Notifier
from ..services.reads import SyncFacts, sync_facts
from .runtime import StationRuntime

__all__ = ["Heartbeat"]

log = logging.getLogger(__name__)
_TICK_WITHOUT_WATCHDOG_S = 10.0  # STATUS refresh when systemd asks for no watchdog pings
_STATUS_MIN_PERIOD_S = 2.0  # the backlog query holds the store lock: not more often than this


def _status_line(runtime: StationRuntime, facts: SyncFacts) -> str:
    """One line for `systemctl status`: links up, sales, backlog, last cloud contact."""
    station = runtime.station
    now = time.monotonic()
    up = sum(handle.connected(now) for handle in runtime.drivers)
    parts = [
        f"links {up}/{len(runtime.drivers)} up",
        f"{sum(runtime.sales_ingested.values())} sales since start",
    ]
    if facts.oldest_created_at is None:
        parts.append(f"backlog {facts.pending}")
    else:
        age = int((station.now() - datetime.fromisoformat(facts.oldest_created_at)).total_seconds())
        parts.append(f"backlog {facts.pending} (oldest {max(0, age)} s)")
    if station.settings.cloud.url:
        parts.append(f"last cloud contact {facts.last_contact or 'never'}")
    else:
        parts.append("no cloud configured")
    return "; ".join(parts)


class Heartbeat:
    """`WATCHDOG=1` every half watchdog period from the loop, and a fresh `STATUS=`.

    The ping is sent by the loop itself, so a blocked or dead loop stops it and systemd
    restarts the process. The status needs a store read, which runs in a worker thread;
    the ping never waits for it.
    """

    def __init__(self, runtime: StationRuntime, notifier: Notifier) -> None:
        self._runtime = runtime
        self._notifier = notifier
        self._refresh: asyncio.Future[SyncFacts] | None = None
        self._refreshed_at = float("-inf")
        self._closing = False

    async def run(self) -> None:
        interval = self._notifier.watchdog_interval_s or _TICK_WITHOUT_WATCHDOG_S
        loop = asyncio.get_running_loop()
        while True:
            self._notifier.watchdog()
            now = time.monotonic()
            for handle in self._runtime.drivers:
                handle.observe(now)
            if (
                self._notifier.enabled
                and self._refresh is None
                and now - self._refreshed_at >= _STATUS_MIN_PERIOD_S
            ):
                self._refreshed_at = now
                self._refresh = loop.run_in_executor(None, sync_facts, self._runtime.station)
                self._refresh.add_done_callback(self._send_status)
            await asyncio.sleep(interval)

    def _send_status(self, done: asyncio.Future[SyncFacts]) -> None:
        self._refresh = None
        if done.cancelled() or self._closing:
            return
        error = done.exception()
        if error is not None:
            log.warning("cannot read the backlog for systemd's status line: %s", error)
            return
        self._notifier.status(_status_line(self._runtime, done.result()))

    async def close(self) -> None:
        """Stop sending; wait (briefly) for a status read so it ends before the store."""
        self._closing = True
        if self._refresh is not None:
            await asyncio.wait([self._refresh], timeout=2.0)
