"""The station daemon: dispenser links feeding the store and the cashier page, in one process.

`run_station` opens the store, starts one task per `[[drivers]]` table, the web page
(uvicorn on `[web]`) and, when `[cloud] url` is set, the sync engine in a thread of its own
(one cycle at a time), and waits for the stop event. A driver hands each completed sale to
`ingest_fuel_sale` in a worker thread and acknowledges it only after the commit returned,
so stopping (or killing) the daemon at any moment loses nothing: an unacknowledged sale is
seen again and recorded once by its key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import uvicorn

from drivers.counters import LinkCounters
from drivers.dart.driver import DartDriver, DartPumpConfig
from drivers.events import FuelSale, PumpStatus, SaleSink, StatusSink
from drivers.ifsf.client import FdcClient
from drivers.links import ByteLink, open_serial

from .errors import ServiceError
from .services.ingest import ingest_fuel_sale
from .services.station import Station, open_station
from .services.sync import build_engine
from .settings import DartDriverSettings, IfsfDriverSettings, StationSettings, driver_name
from .store.lock import AgentLock
from .web.app import build_app
from .web.live import LiveBoard

__all__ = [
    "DriverHandle",
    "StationRuntime",
    "build_drivers",
    "deliver_sale",
    "quarantine_sale",
    "run_station",
]

log = logging.getLogger(__name__)
_RESTART_DELAY_MAX_S = 30.0
_SYNC_HTTP_TIMEOUT_S = 5.0  # a request in flight at shutdown ends within the grace budget


class _Driver(Protocol):
    async def run(self, on_sale: SaleSink, on_status: StatusSink | None = None) -> None: ...


@dataclass
class DriverHandle:
    name: str
    kind: str
    driver: _Driver
    counters: LinkCounters


@dataclass
class StationRuntime:
    """What the running station knows beyond its store: links, their counters, pump states."""

    station: Station
    drivers: list[DriverHandle]
    live: LiveBoard = field(default_factory=LiveBoard)
    sales_ingested: dict[str, int] = field(default_factory=dict)
    sales_quarantined: int = 0
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
    with path.open("a", encoding="utf-8") as sink:
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

    delay = 1.0
    while True:
        try:
            await handle.driver.run(on_sale, on_status)
            log.warning("driver %s returned; it is not restarted", handle.name)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("driver %s crashed; restarting in %.0f s", handle.name, delay)
            await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter
            delay = min(delay * 2, _RESTART_DELAY_MAX_S)


def _start_sync(station: Station, stop: threading.Event) -> threading.Thread | None:
    """Push and pull every `sync_interval_s` in a thread of its own, until `stop` is set."""
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


async def run_station(
    settings: StationSettings,
    stop: asyncio.Event,
    *,
    clock: Callable[[], datetime] | None = None,
    grace_s: float = 8.0,
) -> StationRuntime:
    """Run the station until `stop` is set; then stop the drivers and close the store."""
    lock = AgentLock(settings.station.data_dir)
    lock.acquire()
    try:
        return await _run_locked(settings, stop, clock=clock, grace_s=grace_s)
    finally:
        lock.release()


async def _run_locked(
    settings: StationSettings,
    stop: asyncio.Event,
    *,
    clock: Callable[[], datetime] | None,
    grace_s: float,
) -> StationRuntime:
    station = open_station(settings, clock=clock)
    runtime = StationRuntime(station, build_drivers(settings, station.now))
    tasks = [
        asyncio.create_task(_supervise(runtime, handle), name=f"driver:{handle.name}")
        for handle in runtime.drivers
    ]
    web = uvicorn.Server(
        uvicorn.Config(
            build_app(station, live=runtime.live),
            host=settings.web.host,
            port=settings.web.port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
    )
    web_task = asyncio.create_task(web.serve(), name="web")
    web_task.add_done_callback(lambda _: stop.set())  # the page failing to bind stops us
    sync_stop = threading.Event()
    sync_thread = _start_sync(station, sync_stop)
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
        sync_stop.set()
        web.should_exit = True
        runtime.live.close()  # ends the pages' event streams, or uvicorn waits for them
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s * 0.75)
            for task in pending:
                log.warning("driver task %s did not stop in time", task.get_name())
        await asyncio.wait([web_task], timeout=max(0.1, deadline - time.monotonic()))
        if sync_thread is not None:
            await asyncio.to_thread(sync_thread.join, max(0.1, deadline - time.monotonic()))
            if sync_thread.is_alive():
                log.warning("the sync cycle did not stop in time; it ends with the store")
        runtime.writer.shutdown(wait=True)  # the sale being written finishes first
        station.close()
        log.info("station %s stopped", settings.station.id)
    return runtime
