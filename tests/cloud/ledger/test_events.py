"""The typed sync events: one model and one handler per kind, 0.6's names read, bounds kept."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from cloud_sync.cloud.ledger.handlers import HANDLERS
from cloud_sync.core.events import (
    EVENT_MODELS,
    MemberTierChanged,
    PointsAdjusted,
    SaleRecorded,
    payload_fault,
)

AT = "2026-03-02T10:00:00+08:00"


def test_every_kind_has_one_model_and_one_handler() -> None:
    assert HANDLERS.keys() == EVENT_MODELS.keys()
    assert all(model.kind == kind for kind, model in EVENT_MODELS.items())


def test_0_6_names_are_read_and_the_new_ones_written() -> None:
    sale = SaleRecorded.model_validate(
        {
            "sale_id": "s1",
            "source": "dart",
            "pump": 3,
            "grade": "92",
            "litres": "40",
            "amount": "300.5",
            "ended_at": AT,
            "points": 0,
            "status": "recorded",  # a view field 0.6 sent along: ignored
        }
    )
    assert sale.fuelling_point == 3
    written = sale.payload()
    assert (written["fuelling_point"], written["litres"], written["amount"]) == (
        3,
        "40.00",
        "300.50",
    )
    assert "pump" not in written and "status" not in written
    tier = MemberTierChanged.model_validate({"member_id": "m", "from": "", "to": "silver"})
    assert (tier.tier, tier.previous_tier) == ("silver", "")
    assert tier.payload()["tier"] == "silver"  # what a 0.6 cloud reads first


def test_an_adjustment_without_expiry_keeps_the_key_absent() -> None:
    at = datetime.fromisoformat(AT)
    assert "expires_at" not in PointsAdjusted(member_id="m", points=-5, at=at).payload()
    granted = PointsAdjusted(member_id="m", points=5, at=at, expires_at=None)
    assert granted.payload()["expires_at"] is None
    assert PointsAdjusted.model_validate(granted.payload()).expiry_declared


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"litres": 1.5}, "payload.invalid", "litres"),  # never a float
        ({"litres": "1e9"}, "payload.invalid", "litres"),
        ({"points": True}, "payload.invalid", "points"),
        ({"ended_at": "2026-03-02T10:00:00"}, "payload.invalid", "ended_at"),
        ({"grade": "9" * 33}, "payload.invalid", "grade"),
        ({"sale_id": None}, "payload.invalid", "sale_id"),
    ],
)
def test_faults_name_the_field(change: dict[str, object], code: str, field: str) -> None:
    payload: dict[str, object] = {
        "sale_id": "s1",
        "source": "dart",
        "grade": "92",
        "litres": Decimal("40"),
        "amount": "300",
        "ended_at": AT,
        "points": 0,
    } | change
    with pytest.raises(ValidationError) as caught:
        SaleRecorded.model_validate(payload)
    found_code, detail = payload_fault("sale.recorded", caught.value)
    assert found_code == code and repr(field) in detail
