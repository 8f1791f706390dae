"""Shared pieces of the DART tests: a simulator on a real pty, a driver on its slave side,
and the exactly-once judgement of what the driver emitted against the simulator's truth."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

import serial

from cloud_sync.core.backoff import schedule
from drivers.counters import LinkCounters
from drivers.dart.driver import DartDriver, DartPumpConfig
from drivers.events import FuelSale, PumpStatus
from drivers.links import ByteLink, open_serial

GRADES = {1: "92", 2: "95"}
SaleFacts = tuple[int, int | None, Decimal, Decimal, Decimal | None]


def pump_configs(count: int) -> list[DartPumpConfig]:
    return [DartPumpConfig(0x50 + i, i + 1, GRADES) for i in range(count)]


def slave_factory(path: str) -> Callable[[], ByteLink]:
    """The driver's link: pyserial on the pty's slave (a pty has no parity bit to set)."""
    return lambda: open_serial(path, 9600, parity=serial.PARITY_NONE)


def now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def running(target: Callable[[threading.Event], object]) -> Iterator[threading.Event]:
    """Run `target(stop)` in a thread for the duration of the block."""
    stop = threading.Event()
    thread = threading.Thread(target=target, args=(stop,), daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=10)


class Recorder:
    """The application's side: collects what the driver delivers."""

    def __init__(self) -> None:
        self.sales: list[FuelSale] = []
        self.statuses: list[PumpStatus] = []

    async def on_sale(self, sale: FuelSale) -> None:
        self.sales.append(sale)

    async def on_status(self, status: PumpStatus) -> None:
        self.statuses.append(status)

    @property
    def keys(self) -> set[str]:
        return {sale.sale_key for sale in self.sales}


def make_driver(
    path: str,
    mode: Literal["master", "sniffer"],
    pumps: int,
    counters: LinkCounters,
) -> DartDriver:
    return DartDriver(
        name="bus1",
        link_factory=slave_factory(path),
        pumps=pump_configs(pumps),
        mode=mode,
        clock=now,
        counters=counters,
        reply_timeout_s=0.15,
        cycle_s=0.002,
        reconnect_delay=schedule(base_s=0.05, cap_s=0.5),
    )


@asynccontextmanager
async def driving(
    path: str,
    mode: Literal["master", "sniffer"],
    pumps: int,
    recorder: Recorder,
    counters: LinkCounters | None = None,
) -> AsyncIterator[asyncio.Task[None]]:
    """A driver on the pty's slave feeding `recorder`, running for the block, then cancelled."""
    driver = make_driver(path, mode, pumps, counters or LinkCounters())
    task = asyncio.create_task(driver.run(recorder.on_sale, recorder.on_status))
    try:
        yield task
    finally:
        await stop_task(task)


async def before_and_after_a_restart(
    path: str, mode: Literal["master", "sniffer"], pumps: int
) -> tuple[Recorder, Recorder]:
    """What a driver delivers until it has one sale per pump, and a fresh driver after it."""
    before, after = Recorder(), Recorder()
    async with driving(path, mode, pumps, before):
        await wait_until(lambda: len(before.keys) == pumps, 10, "one sale per pump")
    async with driving(path, mode, pumps, after):
        await wait_until(lambda: len(after.keys) == pumps, 10, "the same sales again")
    return before, after


async def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def stop_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


def facts(sale: FuelSale) -> SaleFacts:
    return (sale.fuelling_point, sale.nozzle, sale.volume, sale.amount, sale.unit_price)


def truth_facts(truth: dict[str, str]) -> SaleFacts:
    return (
        int(truth["fuelling_point"]),
        int(truth["nozzle"]),
        Decimal(truth["volume"]),
        Decimal(truth["amount"]),
        Decimal(truth["unit_price"]),
    )


def assert_exactly_once(sales: Sequence[FuelSale], truth: Sequence[dict[str, str]]) -> None:
    """Every true sale maps to exactly one key; a key never names two different sales.

    Re-emissions under the same key are allowed (the application dedupes by key), and so is
    a re-emission of the pump's last sale marked `identity="last_on_point"` (the application
    matches it against the last sale recorded for that pump, see
    edge_agent/services/ingest.py). A sale
    whose nozzle the pump no longer showed (found completed after a restart, the next
    nozzle already lifted, no price deciding it) is kept with its nozzle unknown: it must
    still match a true sale by fuelling point, volume and amount.
    """
    by_key: dict[str, SaleFacts] = {}
    last_on_pump: dict[int, tuple[Decimal, Decimal]] = {}
    for sale in sales:
        figures = (sale.volume, sale.amount)
        if sale.identity == "last_on_point" and last_on_pump.get(sale.fuelling_point) == figures:
            continue  # the application's rule: the pump's last sale, seen again (ingest.py)
        last_on_pump[sale.fuelling_point] = figures
        seen = by_key.setdefault(sale.sale_key, facts(sale))
        assert seen == facts(sale), f"{sale.sale_key} names two sales: {seen} / {facts(sale)}"
        if sale.details.get("nozzle_basis") == "unknown":
            assert sale.nozzle is None
            assert sale.grade is None
            assert sale.identity == "last_on_point"
            assert sale.details["key_basis"] == "display"
        else:
            assert sale.details["key_basis"] == "totals"
            assert sale.identity == "key"
            assert sale.grade == GRADES[sale.nozzle or 0]
    expected = Counter(truth_facts(t) for t in truth)
    emitted: Counter[SaleFacts] = Counter()
    for found in by_key.values():
        named = found
        if found[1] is None:  # nozzle unknown: name the true sale it is
            fp, _, litres, yuan, _ = found
            named = next((t for t in expected if (t[0], t[2], t[3]) == (fp, litres, yuan)), found)
        emitted[named] += 1
    assert emitted == expected, f"missing {expected - emitted}, extra {emitted - expected}"
    for sale in sales:  # exact decimals, not just equal values
        if sale.nozzle is None:
            continue
        match = next(t for t in truth if truth_facts(t) == facts(sale))
        assert str(sale.volume) == match["volume"]
        assert str(sale.amount) == match["amount"]
        assert str(sale.unit_price) == match["unit_price"]
