"""The bus thread's hand-over to the loop: never blocks, bounded, settles every future."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future
from decimal import Decimal

import pytest

from drivers.dart.handoff import HandoffClosed, LoopHandoff
from drivers.events import FuelSale, PumpStatus
from tests.drivers.dart.dart_harness import now, wait_until


def _sale(n: int) -> FuelSale:
    return FuelSale(
        sale_key=f"k{n}", source="dart", fuelling_point=1, nozzle=1, grade="92",
        volume=Decimal("10.00"), amount=Decimal("78.50"), unit_price=Decimal("7.85"),
        ended_at=now(),
    )  # fmt: skip


def test_sales_are_committed_in_order_and_a_full_queue_refuses_at_once() -> None:
    asyncio.run(_bounded())


async def _bounded() -> None:
    release = asyncio.Event()
    committed: list[str] = []

    async def on_sale(sale: FuelSale) -> None:
        await release.wait()
        committed.append(sale.sale_key)

    handoff = LoopHandoff(
        asyncio.get_running_loop(),
        on_sale,
        None,
        link="bus1",
        logger=logging.getLogger("t"),
        limit=3,
    )
    handoff.start()
    futures: list[Future[None]] = []

    def bus_thread() -> None:  # hands four sales over without ever waiting
        futures.extend(handoff.hand_over_sale(_sale(n)) for n in range(4))

    thread = threading.Thread(target=bus_thread)
    thread.start()
    await asyncio.to_thread(thread.join, 5)
    assert len(futures) == 4
    with pytest.raises(HandoffClosed, match="3 sales already wait"):
        futures[3].result(timeout=0)  # refused at once: it stays on its pump
    assert not any(f.done() for f in futures[:3])
    release.set()
    await wait_until(lambda: all(f.done() for f in futures), 5, "the commits")
    assert committed == ["k0", "k1", "k2"]
    assert [f.result() for f in futures[:3]] == [None, None, None]
    await asyncio.wait_for(asyncio.wrap_future(handoff.hand_over_sale(_sale(9))), 5)  # room again
    await handoff.close()


def test_a_refused_sale_fails_its_future_and_stopping_settles_the_rest() -> None:
    asyncio.run(_refused_then_stopped())


async def _refused_then_stopped() -> None:
    statuses: list[str] = []

    async def on_sale(sale: FuelSale) -> None:
        if sale.sale_key == "k0":
            raise RuntimeError("store is busy")
        await asyncio.sleep(60)

    async def on_status(status: PumpStatus) -> None:
        statuses.append(status.state)

    handoff = LoopHandoff(
        asyncio.get_running_loop(), on_sale, on_status, link="bus1", logger=logging.getLogger("t")
    )
    handoff.start()
    refused, stuck, queued = (handoff.hand_over_sale(_sale(n)) for n in range(3))
    handoff.show_status(PumpStatus("dart", 1, "idle", None, now()))
    await wait_until(lambda: refused.done() and statuses == ["idle"], 5, "the refusal")
    assert isinstance(refused.exception(), RuntimeError)
    await handoff.close()
    for future in (stuck, queued):  # never left pending: the bus thread is not kept waiting
        assert isinstance(future.exception(timeout=0), HandoffClosed)
