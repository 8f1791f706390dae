"""Sale keys and FuelSale fields built from a completed filling."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from drivers.dart.config import DartPumpConfig
from drivers.dart.messages import PumpState
from drivers.dart.pump import CompletedFilling
from drivers.dart.sales import build_sale, fingerprint_key, totals_key

AT = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def filling(nozzle: int = 2, total: Decimal | None = Decimal("352359.81")) -> CompletedFilling:
    return CompletedFilling(
        nozzle=nozzle,
        volume=Decimal("11.96"),
        amount=Decimal("100.00"),
        unit_price=Decimal("8.36"),
        completed_at=AT,
        final_state=PumpState.MAX_REACHED,
        seen_live=True,
        volume_total=total,
    )


def test_totals_key_and_fields() -> None:
    sale = build_sale(
        link="bus1", address=0x51, fuelling_point=2, grades={1: "92", 2: "95"},
        filling=filling(), mode="master",
    )  # fmt: skip
    assert sale.sale_key == "dart:bus1:51:2:352359.81"
    assert sale.sale_key == totals_key("bus1", 0x51, 2, Decimal("352359.81"))
    assert (sale.source, sale.fuelling_point, sale.nozzle, sale.grade) == ("dart", 2, 2, "95")
    assert (sale.volume, sale.amount, sale.unit_price) == (
        Decimal("11.96"),
        Decimal("100.00"),
        Decimal("8.36"),
    )
    assert sale.ended_at == AT
    assert sale.details["key_basis"] == "totals"
    assert sale.details["volume_total"] == "352359.81"
    assert sale.details["dart_status"] == "6"


def test_fingerprint_key_is_flagged() -> None:
    sale = build_sale(
        link="bus1", address=0x50, fuelling_point=1, grades={}, filling=filling(1, None),
        mode="sniffer",
    )  # fmt: skip
    assert sale.sale_key == fingerprint_key(
        "bus1", 0x50, 1, Decimal("11.96"), Decimal("100.00"), AT
    )
    assert sale.sale_key == "dart:bus1:50:1:fp:11.96:100.00:2026-11-23T09:30:00+00:00"
    assert sale.details["key_basis"] == "fingerprint"
    assert sale.grade is None and "no grade" in sale.details["grade"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"address": 0x4F},
        {"address": 0x70},
        {"fuelling_point": 0},
        {"nozzles": {16: "92"}},
        {"volume_decimals": 9},
    ],
)
def test_pump_config_refuses_nonsense(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {"address": 0x50, "fuelling_point": 1, "nozzles": {1: "92"}}
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        DartPumpConfig(**(base | kwargs))  # type: ignore[arg-type]
