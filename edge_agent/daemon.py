"""The station daemon: every configured dispenser link feeding the store, in one process.

`run_station` opens the store, starts one task per `[[drivers]]` table and waits for the
stop event. A driver hands each completed sale to `ingest_fuel_sale` in a worker thread and
acknowledges it only after the commit returned, so stopping (or killing) the daemon at any
moment loses nothing: an unacknowledged sale is seen again and recorded once by its key.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from drivers.counters import LinkCounters
from drivers.dart.driver import DartDriver, DartPumpConfig
from drivers.events import FuelSale, PumpStatus, SaleSink, StatusSink
from drivers.ifsf.client import FdcClient
from drivers.links import ByteLink, open_serial

from .services.ingest import ingest_fuel_sale
from .services.station import Station, open_station
from .settings import DartDriverSettings, IfsfDriverSettings, StationSettings, driver_name

__all__ = ["DriverHandle", "StationRuntime", "build_drivers", "run_station"]

log = logging.getLogger(__name__)
_RESTART_DELAY_MAX_S = 30.0


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
    pumps: dict[tuple[str, int], PumpStatus] = field(default_factory=dict)
    sales_ingested: dict[str, int] = field(default_factory=dict)


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


async def _supervise(runtime: StationRuntime, handle: DriverHandle) -> None:
    """Run a driver for ever; an unexpected crash restarts it after a growing delay."""

    async def on_sale(sale: FuelSale) -> None:
        outcome = await asyncio.to_thread(ingest_fuel_sale, runtime.station, sale)
        if outcome.created:
            runtime.sales_ingested[handle.name] = runtime.sales_ingested.get(handle.name, 0) + 1
            log.info(
                "sale %s: fuelling point %s nozzle %s %s L %s yuan",
                outcome.sale.sale_id,
                sale.fuelling_point,
                sale.nozzle,
                sale.volume,
                sale.amount,
            )

    async def on_status(status: PumpStatus) -> None:
        runtime.pumps[(handle.name, status.fuelling_point)] = status

    delay = 1.0
    while True:
        try:
            await handle.driver.run(on_sale, on_status)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("driver %s crashed; restarting in %.0f s", handle.name, delay)
            await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter
            delay = min(delay * 2, _RESTART_DELAY_MAX_S)


async def run_station(
    settings: StationSettings,
    stop: asyncio.Event,
    *,
    clock: Callable[[], datetime] | None = None,
    grace_s: float = 8.0,
) -> StationRuntime:
    """Run the station until `stop` is set; then stop the drivers and close the store."""
    station = open_station(settings, clock=clock)
    runtime = StationRuntime(station, build_drivers(settings, station.now))
    tasks = [
        asyncio.create_task(_supervise(runtime, handle), name=f"driver:{handle.name}")
        for handle in runtime.drivers
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
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                log.warning("driver task %s did not stop within %.0f s", task.get_name(), grace_s)
        station.close()
        log.info("station %s stopped", settings.station.id)
    return runtime
