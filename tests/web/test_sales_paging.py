"""GET /api/v1/sales pages the whole list: a till reads a shift with no sale missed or doubled."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient

from edge_agent.services.sales import SaleInput, record_sale
from edge_agent.services.station import Station
from tests.support import FakeClock
from tests.web.conftest import refused


class Dispenser:
    """Sales as the pumps report them: each ends `at` (default: now) on the station clock."""

    def __init__(self, station: Station, clock: FakeClock) -> None:
        self.station = station
        self.clock = clock
        self.count = 0

    def sale(self, *, ago_s: float = 0, pump: int = 1) -> str:
        self.count += 1
        sale = SaleInput(
            source="dart",
            pump=pump,
            nozzle=1,
            grade="92",
            litres=Decimal("10.00"),
            amount=Decimal("75.00"),
            ended_at=self.clock() - timedelta(seconds=ago_s),
            source_key=f"dart:paging:{self.count}",
        )
        return record_sale(self.station, sale).sale.sale_id


def walk(client: TestClient, limit: int, between_pages: Any = None, **first: str) -> list[str]:
    """Every sale id from the first page to `next = None`; `between_pages()` runs after each."""
    seen: list[str] = []
    params: dict[str, Any] = {"limit": limit, **first}
    while True:
        answer = client.get("/api/v1/sales", params=params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert len(body["sales"]) <= limit
        seen.extend(sale["sale_id"] for sale in body["sales"])
        if body["next"] is None:
            return seen
        assert body["next"] == body["sales"][-1]["sale_id"]
        if between_pages is not None:
            between_pages()
        params = {"limit": limit, "before": body["next"]}


def test_a_shift_is_read_whole_while_new_sales_arrive(
    cashier: TestClient, station: Station, clock: FakeClock
) -> None:
    pumps = Dispenser(station, clock)
    shift = [pumps.sale(ago_s=3600 - 60 * i, pump=1 + i % 4) for i in range(37)]
    # two sales ending in the same millisecond: the stored order breaks the tie
    twins = [pumps.sale(ago_s=5), pumps.sale(ago_s=5)]
    before_walk = shift + twins
    arrived: list[str] = []

    def more_sales() -> None:
        clock.advance(seconds=30)
        arrived.append(pumps.sale())

    seen = walk(cashier, 5, more_sales)
    assert len(seen) == len(set(seen)), "a sale was read twice"
    assert set(before_walk) <= set(seen), "a sale stored before the walk was missed"
    assert set(seen) - set(before_walk) <= set(arrived)
    assert seen[-len(shift) :] == list(reversed(shift))  # newest first
    assert arrived and seen[0] not in arrived  # the arrivals sort before the cursor


def test_a_page_is_the_same_whatever_arrives_after_its_cursor(
    cashier: TestClient, station: Station, clock: FakeClock
) -> None:
    pumps = Dispenser(station, clock)
    ids = [pumps.sale(ago_s=600 - i) for i in range(10)]
    first = cashier.get("/api/v1/sales", params={"limit": 4}).json()
    assert [s["sale_id"] for s in first["sales"]] == ids[::-1][:4]
    again = {"limit": 4, "before": first["next"]}
    second = cashier.get("/api/v1/sales", params=again).json()
    clock.advance(minutes=1)
    pumps.sale()
    assert cashier.get("/api/v1/sales", params=again).json() == second
    assert [s["sale_id"] for s in second["sales"]] == ids[::-1][4:8]


def test_before_time_starts_at_a_moment(
    cashier: TestClient, station: Station, clock: FakeClock
) -> None:
    pumps = Dispenser(station, clock)
    old = [pumps.sale(ago_s=7200 + i) for i in range(3)]
    recent = [pumps.sale(ago_s=60 + i) for i in range(3)]
    moment = (clock() - timedelta(hours=1)).isoformat()
    seen = walk(cashier, 2, before_time=moment)
    assert sorted(seen) == sorted(old)
    assert not set(recent) & set(seen)
    naive = (clock().astimezone(station.zone) - timedelta(hours=1)).replace(tzinfo=None)
    local = cashier.get("/api/v1/sales", params={"before_time": naive.isoformat()}).json()
    assert sorted(s["sale_id"] for s in local["sales"]) == sorted(old)  # station time


def test_cursors_are_checked(cashier: TestClient, station: Station, clock: FakeClock) -> None:
    sale_id = Dispenser(station, clock).sale()
    both = {"before": sale_id, "before_time": clock().isoformat()}
    refused(cashier.get("/api/v1/sales", params=both), 422, "sales.cursor")
    refused(cashier.get("/api/v1/sales", params={"before": "nope"}), 404, "sale.not_found")
    refused(cashier.get("/api/v1/sales", params={"before_time": "soon"}), 422, "request.invalid")
    last = cashier.get("/api/v1/sales", params={"before": sale_id}).json()
    assert last == {"sales": [], "next": None}
