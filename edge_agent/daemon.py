"""The station daemon: dispenser links feeding the store and the cashier page, in one process.

`run_station` checks the store's integrity, opens it, starts one task per `[[drivers]]`
table, the web page (uvicorn on `[web]`), the nightly jobs (APScheduler) and, when
`[cloud] url` is set, the sync engine in a thread of its own, tells systemd it is ready, and
waits for the stop event. A driver hands each completed sale to `ingest_fuel_sale` on the
store's writer thread and acknowledges it only after the commit returned, so stopping (or
killing) the daemon at any moment loses nothing: an unacknowledged sale is seen again and
recorded once by its key. Every retry (a driver's reconnect, a crashed driver's restart,
the sync engine's next try) follows `cloud_sync.backoff`: exponential, capped, full jitter.

systemd (`Type=notify`): `READY=1` once the store is open and the page listens,
`WATCHDOG=1` from the event loop itself (a stuck loop stops the pings and systemd restarts
the process), `STATUS=` with links, backlog and last cloud contact, `STOPPING=1` on the way
out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import uvicorn

from cloud_sync.backoff import full_jitter, schedule
from drivers.counters import LinkCounters
from drivers.dart.driver import DartDriver, DartPumpConfig
from drivers.events import FuelSale, PumpStatus, SaleSink, StatusSink
from drivers.ifsf.client import FdcClient
from drivers.links import ByteLink, open_serial

from .errors import ServiceError
from .jobs import build_scheduler
from .notify import Notifier
from .services.backup import check_store_on_start
from .services.ingest import ingest_fuel_sale
from .services.station import Station, open_station
from .services.sync import build_engine
from .settings import DartDriverSettings, IfsfDriverSettings, StationSettings, driver_name
from .store.database import ensure_private_dir
from .store.files import private_file
from .store.lock import AgentLock
from .store.outbox import outbox_backlog
from .store.sync import get_sync_state
from .web.app import build_app
from .web.health import DriverHealth, HealthProbe, RuntimeHealth
from .web.live import LiveBoard

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
_RESTART_DELAY_BASE_S = 1.0  # a crashed driver is restarted after full jitter up to ...
_RESTART_DELAY_MAX_S = 30.0  # ... doubling to this; a run this long starts the count afresh
_RECONNECT_BASE_S = 0.5  # a link that failed is reopened after full jitter up to ...
_RECONNECT_CAP_S = 30.0  # ... doubling to this
_SYNC_HTTP_TIMEOUT_S = 5.0  # a request in flight at shutdown ends within the grace budget
_TICK_WITHOUT_WATCHDOG_S = 10.0  # STATUS refresh when systemd asks for no watchdog pings
_STATUS_MIN_PERIOD_S = 2.0  # the backlog query holds the store lock: not more often than this
_LINK_QUIET_S = 15.0  # a DART bus with no frame for this long counts as disconnected


class _Driver(Protocol):
    async def run(self, on_sale: SaleSink, on_status: StatusSink | None = None) -> None: ...


@dataclass
class DriverHandle:
    name: str
    kind: str
    driver: _Driver
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


def quarantine_sale(runtime: StationRuntime, sale: FuelSale, error: ServiceError) -> None:
    """Append a sale the store refused to `quarantine.jsonl` (fsynced) and log it loudly."""
    record = {
        "sale_key": sale.sale_key,
        "source": sale.source,
        "fuelling_point": sale.fuelling_point,
        "nozzle": sale.nozzle,
        "grade": sale.grade,
        "volume": str(sale.volume),
        "amount": str(sale.amount),
        "unit_price": None if sale.unit_price is None else str(sale.unit_price),
        "ended_at": sale.ended_at.isoformat(),
        "details": dict(sale.details),
        "refused": f"{error.code}: {error}",
    }
    path = runtime.station.settings.station.data_dir / "quarantine.jsonl"
    with private_file(path, "a") as sink:
        sink.write(json.dumps(record, ensure_ascii=False) + "\n")
        sink.flush()
        os.fsync(sink.fileno())
    runtime.sales_quarantined += 1
    log.error("sale %s refused by the store (%s); kept in %s", sale.sale_key, error, path)


def _serial_factory(url: str, baudrate: int) -> Callable[[], ByteLink]:
    def open_link() -> ByteLink:
        return open_serial(url, baudrate)

    return open_link


def build_drivers(settings: StationSettings, clock: Callable[[], datetime]) -> list[DriverHandle]:
    """One driver per `[[drivers]]` table, named as its sale keys will be."""
    handles: list[DriverHandle] = []
    for index, config in enumerate(settings.drivers):
        name = driver_name(config, index)
        counters = LinkCounters()
        driver: _Driver
        if isinstance(config, DartDriverSettings):
            driver = DartDriver(
                name=name,
                link_factory=_serial_factory(config.port, config.baudrate),
                pumps=[
                    DartPumpConfig(
                        address=pump.address,
                        fuelling_point=pump.fuelling_point,
                        nozzles=dict(pump.nozzles),
                        volume_decimals=pump.volume_decimals,
                        amount_decimals=pump.amount_decimals,
                        price_decimals=pump.price_decimals,
                    )
                    for pump in config.pumps
                ],
                mode=config.mode,
                authorize=config.authorize,
                clock=clock,
                counters=counters,
                logger=logging.getLogger(f"drivers.{name}"),
                reconnect_delay=schedule(base_s=_RECONNECT_BASE_S, cap_s=_RECONNECT_CAP_S),
            )
        else:
            assert isinstance(config, IfsfDriverSettings)
            driver = FdcClient(
                name=name,
                host=config.host,
                port=config.port,
                header=config.header,
                passphrase=config.passphrase,
                products=dict(config.products),
                zone=settings.zone,
                interface_version=config.interface_version,
                application_sender=config.application_sender,
                workstation_id=config.workstation_id,
                counters=counters,
                clock=clock,
                logger=logging.getLogger(f"drivers.{name}"),
                reconnect_delay=schedule(base_s=_RECONNECT_BASE_S, cap_s=_RECONNECT_CAP_S),
            )
        handles.append(DriverHandle(name, config.kind, driver, counters))
    return handles


async def deliver_sale(runtime: StationRuntime, link: str, sale: FuelSale) -> None:
    """A driver's sink: commit the sale (on the store's own thread) before returning.

    A sale the store refuses (an impossible pump number or quantity) is kept in the
    quarantine file and acknowledged: retrying it would block its pump or link for ever.
    """
    loop = asyncio.get_running_loop()
    try:
        outcome = await loop.run_in_executor(
            runtime.writer, ingest_fuel_sale, runtime.station, sale
        )
    except ServiceError as exc:
        await loop.run_in_executor(runtime.writer, quarantine_sale, runtime, sale, exc)
        return
    if outcome.created:
        runtime.sales_ingested[link] = runtime.sales_ingested.get(link, 0) + 1
        runtime.live.sale_recorded(outcome.sale.sale_id)
        log.info(
            "sale %s: fuelling point %s nozzle %s %s L %s yuan",
            outcome.sale.sale_id,
            sale.fuelling_point,
            sale.nozzle,
            sale.volume,
            sale.amount,
        )


async def _supervise(runtime: StationRuntime, handle: DriverHandle) -> None:
    """Run a driver for ever; an unexpected crash restarts it after a growing delay."""

    async def on_sale(sale: FuelSale) -> None:
        await deliver_sale(runtime, handle.name, sale)

    async def on_status(status: PumpStatus) -> None:
        runtime.live.update_pump(status)

    crashes = 0
    while True:
        started = time.monotonic()
        try:
            await handle.driver.run(on_sale, on_status)
            log.warning("driver %s returned; it is not restarted", handle.name)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            ran_a_while = time.monotonic() - started >= _RESTART_DELAY_MAX_S
            crashes = 1 if ran_a_while else crashes + 1
            delay = full_jitter(crashes, base_s=_RESTART_DELAY_BASE_S, cap_s=_RESTART_DELAY_MAX_S)
            log.exception("driver %s crashed; restarting in %.1f s", handle.name, delay)
            await asyncio.sleep(delay)


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


# --- health and systemd ----------------------------------------------------------------------


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


@dataclass(frozen=True)
class _SyncFacts:
    pending: int
    oldest: str | None
    last_contact: str | None


def _read_sync_facts(station: Station) -> _SyncFacts:
    """The backlog and the last cloud contact; a store read: call it from a worker thread."""
    with station.store.read() as tx:
        pending, oldest = outbox_backlog(tx)
        return _SyncFacts(pending, oldest, get_sync_state(tx).last_contact)


def _status_line(runtime: StationRuntime, facts: _SyncFacts) -> str:
    """One line for `systemctl status`: links up, sales, backlog, last cloud contact."""
    station = runtime.station
    now = time.monotonic()
    up = sum(handle.connected(now) for handle in runtime.drivers)
    parts = [
        f"links {up}/{len(runtime.drivers)} up",
        f"{sum(runtime.sales_ingested.values())} sales since start",
    ]
    if facts.oldest is None:
        parts.append(f"backlog {facts.pending}")
    else:
        age = int((station.now() - datetime.fromisoformat(facts.oldest)).total_seconds())
        parts.append(f"backlog {facts.pending} (oldest {max(0, age)} s)")
    if station.settings.cloud.url:
        parts.append(f"last cloud contact {facts.last_contact or 'never'}")
    else:
        parts.append("no cloud configured")
    return "; ".join(parts)


class _Heartbeat:
    """`WATCHDOG=1` every half watchdog period from the loop, and a fresh `STATUS=`.

    The ping is sent by the loop itself, so a blocked or dead loop stops it and systemd
    restarts the process. The status needs a store read, which runs in a worker thread;
    the ping never waits for it.
    """

    def __init__(self, runtime: StationRuntime, notifier: Notifier) -> None:
        self._runtime = runtime
        self._notifier = notifier
        self._refresh: asyncio.Future[_SyncFacts] | None = None
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
                self._refresh = loop.run_in_executor(None, _read_sync_facts, self._runtime.station)
                self._refresh.add_done_callback(self._send_status)
            await asyncio.sleep(interval)

    def _send_status(self, done: asyncio.Future[_SyncFacts]) -> None:
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


def listen(host: str, port: int) -> socket.socket:
    """Bind the page's socket before anything starts: a taken port is one clear refusal."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ServiceError("web.host", f"web: cannot listen on {host}:{port}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(128)
        sock.set_inheritable(True)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise ServiceError(
            "web.port", f"web.port: cannot listen on {host}:{port}: {reason}"
        ) from exc
    return sock


def check_tls_files(settings: StationSettings) -> None:
    """Load `[web] tls_cert`/`tls_key` once now, so a bad file is a refusal, not a crash."""
    web = settings.web
    if web.tls_cert is None or web.tls_key is None:
        return
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            web.tls_cert, web.tls_key
        )
    except (OSError, ssl.SSLError) as exc:
        raise ServiceError(
            "web.tls", f"web.tls_cert/tls_key: cannot load {web.tls_cert}, {web.tls_key}: {exc}"
        ) from exc


async def _announce_ready(
    web: uvicorn.Server, web_task: asyncio.Task[None], notifier: Notifier, settings: StationSettings
) -> None:
    """`READY=1` once uvicorn has bound its socket (the store is already open)."""
    while not web.started:
        if web_task.done():
            return
        await asyncio.sleep(0.02)
    scheme = "https" if settings.web.tls else "http"
    notifier.ready(f"listening on {scheme}://{settings.web.host}:{settings.web.port}")
    log.info(
        "station %s ready: cashier page on %s://%s:%d",
        settings.station.id,
        scheme,
        settings.web.host,
        settings.web.port,
    )


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
    ensure_private_dir(settings.station.data_dir)
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
        handle.task = asyncio.create_task(_supervise(runtime, handle), name=f"driver:{handle.name}")
    tasks = [handle.task for handle in runtime.drivers if handle.task is not None]
    web_settings = settings.web
    web = uvicorn.Server(
        uvicorn.Config(
            build_app(
                station,
                live=runtime.live,
                probe=health_probe(runtime),
                secure_cookies=web_settings.tls,
            ),
            host=web_settings.host,
            port=web_settings.port,
            log_level="warning",
            log_config=None,  # uvicorn's records go through our (JSON, redacting) handler
            lifespan="off",
            timeout_graceful_shutdown=2,
            # X-Forwarded-For/-Proto only from configured proxies: uvicorn's default trusts
            # them from 127.0.0.1, so any local page could pick the address the login
            # limiter counts.
            proxy_headers=bool(web_settings.trusted_proxies),
            forwarded_allow_ips=list(web_settings.trusted_proxies) or None,
            server_header=False,
            ssl_certfile=web_settings.tls_cert,
            ssl_keyfile=web_settings.tls_key,
        )
    )
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
    heartbeat = _Heartbeat(runtime, notifier)
    background = [
        asyncio.create_task(heartbeat.run(), name="heartbeat"),
        asyncio.create_task(_announce_ready(web, web_task, notifier, settings), name="ready"),
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
