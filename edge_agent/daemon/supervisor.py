"""The driver supervisor: one driver per `[[drivers]]` table, its sales committed before they
are acknowledged, a refused sale quarantined, a crashed driver restarted after a backoff."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from datetime import datetime

from cloud_sync.core.backoff import full_jitter, schedule
from drivers.counters import LinkCounters
from drivers.dart.driver import DartDriver, DartPumpConfig
from drivers.events import FuelSale, PumpStatus
from drivers.ifsf.client import FdcClient
from drivers.links import ByteLink, open_serial

from ..errors import ServiceError
from ..services.ingest import ingest_fuel_sale
from ..settings import DartDriverSettings, IfsfDriverSettings, StationSettings, driver_name
from ..store.files import private_file
from .runtime import Driver, DriverHandle, StationRuntime

__all__ = ["build_drivers", "deliver_sale", "quarantine_sale", "supervise"]

log = logging.getLogger(__name__)
_RESTART_DELAY_BASE_S = 1.0  # a crashed driver is restarted after full jitter up to ...
_RESTART_DELAY_MAX_S = 30.0  # ... doubling to this; a run this long starts the count afresh
_RECONNECT_BASE_S = 0.5  # a link that failed is reopened after full jitter up to ...
_RECONNECT_CAP_S = 30.0  # ... doubling to this


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
        driver: Driver
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


async def supervise(runtime: StationRuntime, handle: DriverHandle) -> None:
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
