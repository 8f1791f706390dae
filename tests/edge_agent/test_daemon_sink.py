"""The daemon's sale sink: commits before acknowledging, and never blocks on a refused sale."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from decimal import Decimal

from drivers.events import FuelSale
from edge_agent.daemon import StationRuntime, deliver_sale
from edge_agent.services.sales import list_sales
from edge_agent.services.station import Station
from tests.support import SHANGHAI


def _sale(key: str, fuelling_point: int) -> FuelSale:
    return FuelSale(
        sale_key=key,
        source="ifsf",
        fuelling_point=fuelling_point,
        nozzle=1,
        grade="92",
        volume=Decimal("20.00"),
        amount=Decimal("150.00"),
        unit_price=Decimal("7.50"),
        ended_at=datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI),
    )


def test_a_sale_is_committed_before_the_sink_returns(station: Station) -> None:
    runtime = StationRuntime(station, [])
    asyncio.run(deliver_sale(runtime, "fdc", _sale("ifsf:fdc:1:7:x", 1)))
    asyncio.run(deliver_sale(runtime, "fdc", _sale("ifsf:fdc:1:7:x", 1)))  # seen again
    assert [sale.pump for sale in list_sales(station, 10)] == [1]
    assert runtime.sales_ingested == {"fdc": 1}


def test_a_sale_the_store_refuses_is_quarantined_not_retried(station: Station) -> None:
    runtime = StationRuntime(station, [])
    asyncio.run(deliver_sale(runtime, "fdc", _sale("ifsf:fdc:0:8:x", 0)))  # no pump 0
    quarantine = station.settings.station.data_dir / "quarantine.jsonl"
    kept = [json.loads(line) for line in quarantine.read_text(encoding="utf-8").splitlines()]
    assert [(k["sale_key"], k["volume"], k["amount"]) for k in kept] == [
        ("ifsf:fdc:0:8:x", "20.00", "150.00")
    ]
    assert "sale.pump" in kept[0]["refused"]
    assert runtime.sales_quarantined == 1
    assert list_sales(station, 10) == []


def test_a_filling_read_back_without_its_nozzle_is_matched_to_the_pump_last_sale(
    station: Station,
) -> None:
    runtime = StationRuntime(station, [])
    recorded = _sale("dart:bus1:50:1:1234.56", 1)
    asyncio.run(deliver_sale(runtime, "bus1", recorded))
    again = FuelSale(
        sale_key="dart:bus1:50:unknown:20.00:150.00",
        source=recorded.source,
        fuelling_point=1,
        nozzle=None,
        grade=None,
        volume=Decimal("20.00"),
        amount=Decimal("150.00"),
        unit_price=None,
        ended_at=recorded.ended_at,
        details={"key_basis": "display", "nozzle_basis": "unknown"},
        identity="last_on_point",
    )
    asyncio.run(deliver_sale(runtime, "bus1", again))  # the same filling, after a restart
    assert len(list_sales(station, 10)) == 1
    other = FuelSale(
        **{
            **again.__dict__,
            "sale_key": "dart:bus1:50:unknown:5.00:37.50",
            "volume": Decimal("5.00"),
            "amount": Decimal("37.50"),
        }
    )
    asyncio.run(deliver_sale(runtime, "bus1", other))  # a different filling is recorded
    newest = list_sales(station, 10)[0]
    assert (newest.litres, newest.grade) == (Decimal("5.000"), "unmapped")
