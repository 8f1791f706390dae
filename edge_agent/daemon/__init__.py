"""The station daemon: dispenser links feeding the store and the cashier page, in one process.

`run_station` checks the store's integrity, opens it, starts one task per `[[drivers]]`
table, the web page (uvicorn on `[web]`), the nightly jobs (APScheduler) and, when
`[cloud] url` is set, the sync engine in a thread of its own, tells systemd it is ready, and
waits for the stop event. A driver hands each completed sale to `ingest_fuel_sale` on the
store's writer thread and acknowledges it only after the commit returned, so stopping (or
killing) the daemon at any moment loses nothing: an unacknowledged sale is seen again and
recorded once by its key. Every retry (a driver's reconnect, a crashed driver's restart,
the sync engine's next try) follows `cloud_sync.core.backoff`: exponential, capped, full jitter.

systemd (`Type=notify`): `READY=1` once the store is open and the page listens,
`WATCHDOG=1` from the event loop itself (a stuck loop stops the pings and systemd restarts
the process), `STATUS=` with links, backlog and last cloud contact, `STOPPING=1` on the way
out.

The package, by concern: `runtime` (the driver handles and what the running station knows),
`supervisor` (drivers built from settings, the sale sink, restarts), `web` (the page's socket,
TLS check and uvicorn server), `systemd` (watchdog and status line); this module starts and
stops them in order.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime

from ..jobs import build_scheduler
from ..notify import Notifier
from ..services.backup import check_store_on_start
from ..services.reads import refuse_open_data_dir
from ..services.station import Station, open_station
from ..services.sync import build_engine
from ..settings import StationSettings
from ..store.lock import AgentLock
from .runtime import DriverHandle, StationRuntime, health_probe
from .supervisor import build_drivers, deliver_sale, quarantine_sale, supervise
from .systemd import Heartbeat
from .web import announce_ready, build_web_server, check_tls_files, listen

__all__ = [
    "DriverHandle",
    "StationRuntime",
    "build_drivers",
    "check_tls_files",
    "deliver_sale",
    "health_probe",
    "listen",
    "quarantine_sale",
    "run_station",
]

log = logging.getLogger(__name__)
_SYNC_HTTP_TIMEOUT_S = 5.0  # a request in flight at shutdown ends within the grace budget


def _start_sync(station: Station, stop: threading.Event) -> threading.Thread | None:
    """Push and pull every `sync_interval_s` in a thread of its own, until `stop` is set.

    Sync is deliberately not an APScheduler interval job. The engine's `run_forever` keeps
    state between cycles (consecutive failures drive its exponential backoff with jitter,
    and a long outage raises an alert), a cycle drains the whole backlog and may run far
    longer than the interval after a day offline, and every wait is a `stop.wait` that
    shutdown interrupts at once. An interval job would restart the backoff at every run,
    be skipped (`max_instances`) or coalesced while a long cycle runs, and sleep where
    the daemon cannot wake it.
    """
    cloud = station.settings.cloud
    if not cloud.url:
        log.info("no [cloud] url: this station does not sync")
        return None
    engine = build_engine(station, timeout=_SYNC_HTTP_TIMEOUT_S)
    thread = threading.Thread(
        target=engine.run_forever,
        args=(stop, float(cloud.sync_interval_s)),
        name="sync",
        daemon=True,
    )
    thread.start()
    log.info("syncing with %s every %d s", cloud.url, cloud.sync_interval_s)
    return thread


# --- the daemon ------------------------------------------------------------------------------


async def _cancel_until_done(
    tasks: list[asyncio.Task[None]], timeout: float
) -> set[asyncio.Task[None]]:
    """Cancel the tasks, and cancel again those still running; return any left after `timeout`.

    One `cancel()` is not always enough on Python 3.11: `asyncio.wait_for` swallows a
    cancellation that races its inner result (a driver waiting for the next FDC message
    while one arrives), and the task carries on as if never asked to stop. The first wait
    is long enough for a polite log-off; after that the request is repeated every 0.25 s.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = {task for task in tasks if not task.done()}
    wait_s = 1.5
    first = True
    while pending:
        for task in pending:
            if not first:
                log.info("task %s is still running: asking it again to stop", task.get_name())
            task.cancel()
        first = False
        left = deadline - loop.time()
        if left <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(wait_s, left))
        wait_s = 0.25
    return pending


async def run_station(
    settings: StationSettings,
    stop: asyncio.Event,
    *,
    clock: Callable[[], datetime] | None = None,
    grace_s: float = 8.0,
    notifier: Notifier | None = None,
) -> StationRuntime:
    """Run the station until `stop` is set; then stop the drivers and close the store.

    Raises, before starting anything: `StoreError` when the data folder is open to other
    users, `ServiceError('store.corrupt', …)` when the store fails its integrity check,
    `ServiceError('web.port', …)` when the page's port is taken and `ServiceError('web.tls',
    …)` when the certificate cannot be loaded. Raises RuntimeError when the web server
    stopped without being asked (so `edge run` exits non-zero and systemd restarts it).
    """
    refuse_open_data_dir(settings.station.data_dir)
    notify = notifier if notifier is not None else Notifier.from_environment()
    lock = AgentLock(settings.station.data_dir)
    lock.acquire()
    try:
        return await _run_locked(settings, stop, clock=clock, grace_s=grace_s, notifier=notify)
    finally:
        lock.release()
        notify.close()


async def _run_locked(
    settings: StationSettings,
    stop: asyncio.Event,
    *,
    clock: Callable[[], datetime] | None,
    grace_s: float,
    notifier: Notifier,
) -> StationRuntime:
    await asyncio.to_thread(check_store_on_start, settings)
    check_tls_files(settings)
    listener = listen(settings.web.host, settings.web.port)
    try:
        station = open_station(settings, clock=clock)
    except BaseException:
        listener.close()
        raise
    try:
        return await _serve(settings, stop, station, listener, grace_s=grace_s, notifier=notifier)
    finally:
        listener.close()


async def _serve(
    settings: StationSettings,
    stop: asyncio.Event,
    station: Station,
    listener: socket.socket,
    *,
    grace_s: float,
    notifier: Notifier,
) -> StationRuntime:
    runtime = StationRuntime(station, build_drivers(settings, station.now))
    for handle in runtime.drivers:
        handle.task = asyncio.create_task(supervise(runtime, handle), name=f"driver:{handle.name}")
    tasks = [handle.task for handle in runtime.drivers if handle.task is not None]
    web = build_web_server(station, runtime)
    web_task = asyncio.create_task(web.serve(sockets=[listener]), name="web")
    web_failed: list[bool] = []

    def web_ended(_: asyncio.Task[None]) -> None:
        if not stop.is_set():
            web_failed.append(True)
        stop.set()  # the page failing stops us, and the exit status says so

    web_task.add_done_callback(web_ended)
    sync_stop = threading.Event()
    runtime.sync_thread = _start_sync(station, sync_stop)
    scheduler = build_scheduler(station)
    scheduler.start()
    log.info(
        "nightly jobs: %s",
        ", ".join(f"{job.id} at {job.next_run_time.isoformat()}" for job in scheduler.get_jobs()),
    )
    heartbeat = Heartbeat(runtime, notifier)
    background = [
        asyncio.create_task(heartbeat.run(), name="heartbeat"),
        asyncio.create_task(announce_ready(web, web_task, notifier, settings), name="ready"),
    ]
    log.info(
        "station %s running with %d driver(s): %s",
        settings.station.id,
        len(tasks),
        ", ".join(handle.name for handle in runtime.drivers) or "none",
    )
    try:
        await stop.wait()
    finally:
        deadline = time.monotonic() + grace_s  # one budget for the whole shutdown
        notifier.stopping("stopping: finishing the sale in progress")
        await _cancel_until_done(background, 1.0)
        await heartbeat.close()
        scheduler.shutdown(wait=False)  # a job already running finishes its transaction
        sync_stop.set()
        web.should_exit = True
        runtime.live.close()  # ends the pages' event streams, or uvicorn waits for them
        for task in await _cancel_until_done(tasks, grace_s * 0.75):
            log.warning("driver task %s did not stop in time", task.get_name())
        await asyncio.wait([web_task], timeout=max(0.1, deadline - time.monotonic()))
        if runtime.sync_thread is not None:
            await asyncio.to_thread(runtime.sync_thread.join, max(0.1, deadline - time.monotonic()))
            if runtime.sync_thread.is_alive():
                log.warning("the sync cycle did not stop in time; it ends with the store")
        runtime.writer.shutdown(wait=True)  # the sale being written finishes first
        station.close()  # waits for a transaction in progress (a job's, say) to commit
        log.info("station %s stopped", settings.station.id)
    if web_failed:
        raise RuntimeError("the web server stopped by itself; exiting so systemd restarts us")
    return runtime
