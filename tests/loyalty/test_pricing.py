"""Pricing a sale: the contract's and the field's examples, then properties."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from functools import reduce
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_sync.core.pricing import (
    PointsReceipt,
    SaleFacts,
    applicable_bonus,
    price_sale,
    receipt_from_dict,
)
from cloud_sync.core.ruleset import RuleSet
from cloud_sync.core.ruleset.parser import parse_ruleset, parse_ruleset_json

RULESETS = Path(__file__).resolve().parents[2] / "config" / "rulesets"
SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY = datetime(2026, 12, 7, 10, 0, tzinfo=SHANGHAI)
TUESDAY = datetime(2026, 12, 8, 10, 0, tzinfo=SHANGHAI)


def sample_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((RULESETS / "sample.json").read_text(encoding="utf-8"))
    return copy.deepcopy(doc)


SAMPLE = parse_ruleset_json((RULESETS / "sample.json").read_bytes())
FIELD = parse_ruleset_json((RULESETS / "field-examples.json").read_bytes())


def sale(grade: str, litres: str, amount: str = "0", at: datetime = MONDAY) -> SaleFacts:
    return SaleFacts(grade=grade, litres=Decimal(litres), amount=Decimal(amount), ended_at=at)


def half_up(rs: RuleSet) -> RuleSet:
    doc = copy.deepcopy(dict(rs.document))
    doc["rounding"] = "half_up"
    return parse_ruleset(doc)


def product(values: list[Decimal]) -> Decimal:
    return reduce(lambda a, b: a * b, values, Decimal(1))


# --------------------------------------------------------------------------- examples


def test_92_forty_litres_standard_earns_forty() -> None:
    receipt = price_sale(FIELD, sale("92", "40.00", "300.00"), "standard")
    assert receipt.points == 40
    assert receipt.exact == Decimal(40)
    assert receipt.ruleset_version == 1
    assert receipt.tier == "standard"
    assert receipt.bonus_name is None
    assert receipt.discount_fen == 0
    assert [s.code for s in receipt.steps] == ["base", "tier", "bonus", "rounding"]
    assert [s.factor for s in receipt.steps] == [Decimal(40), Decimal(1), Decimal(1), Decimal(1)]
    assert [s.value for s in receipt.steps] == [Decimal(40)] * 4


def test_diesel_one_point_per_two_litres_floor_and_half_up() -> None:
    floor = price_sale(FIELD, sale("0", "41"), "standard")
    assert floor.exact == Decimal("20.5")
    assert floor.points == 20
    assert floor.rounding == "floor"
    up = price_sale(half_up(FIELD), sale("0", "41"), "standard")
    assert up.exact == Decimal("20.5")
    assert up.points == 21
    assert up.rounding == "half_up"
    assert up.steps[-1].value == Decimal(21)


def test_gold_on_tuesday_member_day() -> None:
    receipt = price_sale(SAMPLE, sale("92", "40", "300", TUESDAY), "gold")
    assert receipt.points == 120
    assert receipt.bonus_name == "周二会员日"
    assert [(s.code, s.factor, s.value) for s in receipt.steps] == [
        ("base", Decimal(40), Decimal(40)),
        ("tier", Decimal("1.5"), Decimal(60)),
        ("bonus", Decimal(2), Decimal(120)),
        ("rounding", Decimal(1), Decimal(120)),
    ]
    assert receipt.discount_per_litre == Decimal("0.20")
    assert receipt.discount_fen == 800


def test_new_year_date_bonus() -> None:
    new_year = datetime(2027, 1, 1, 9, 30, tzinfo=SHANGHAI)  # a Friday
    receipt = price_sale(SAMPLE, sale("95", "33.33", "260.00", new_year), "standard")
    assert receipt.bonus_name == "元旦"
    assert receipt.exact == Decimal("66.66")
    assert receipt.points == 66
    day_before = datetime(2026, 12, 31, 23, 59, tzinfo=SHANGHAI)
    assert price_sale(SAMPLE, sale("95", "33.33", "0", day_before), "standard").points == 33


def test_bonus_judged_in_shanghai_not_in_utc() -> None:
    late_monday_utc = datetime(2026, 12, 7, 20, 0, tzinfo=UTC)  # Tuesday 04:00 in Shanghai
    receipt = price_sale(SAMPLE, sale("92", "40", "0", late_monday_utc), "standard")
    assert receipt.bonus_name == "周二会员日"
    assert receipt.points == 80
    monday_evening_utc = datetime(2026, 12, 7, 15, 59, tzinfo=UTC)  # Monday 23:59 in Shanghai
    assert price_sale(SAMPLE, sale("92", "40", "0", monday_evening_utc), "standard").points == 40
    # Tuesday 23:00 UTC is already Wednesday in Shanghai: no member day.
    tuesday_late_utc = datetime(2026, 12, 8, 23, 0, tzinfo=UTC)
    assert applicable_bonus(SAMPLE, tuesday_late_utc, Decimal(0)) is None


def test_largest_applicable_bonus_wins() -> None:
    doc = sample_doc()
    doc["bonuses"].append(
        {"name": "三倍", "weekdays": [2], "dates": ["2026-12-08"], "multiplier": "3"}
    )
    doc["bonuses"].append({"name": "also two", "weekdays": [2], "multiplier": "2"})
    rs = parse_ruleset(doc)
    assert price_sale(rs, sale("92", "10", "0", TUESDAY), "standard").bonus_name == "三倍"
    next_tuesday = datetime(2026, 12, 15, 10, 0, tzinfo=SHANGHAI)
    # Two bonuses tie at x2: the first listed names the receipt.
    assert (
        price_sale(rs, sale("92", "10", "0", next_tuesday), "standard").bonus_name == "周二会员日"
    )


def test_amount_threshold_and_time_window_bonuses() -> None:
    doc = sample_doc()
    doc["bonuses"] = [
        {"name": "满300", "min_amount": "300", "multiplier": "1.5"},
        {"name": "夜间", "start_time": "22:00", "end_time": "06:00", "multiplier": "1.2"},
    ]
    rs = parse_ruleset(doc)
    assert price_sale(rs, sale("92", "40", "300.00"), "standard").points == 60
    assert price_sale(rs, sale("92", "40", "299.99"), "standard").points == 40
    night = datetime(2026, 12, 7, 23, 15, tzinfo=SHANGHAI)
    receipt = price_sale(rs, sale("92", "40", "100", night), "standard")
    assert receipt.bonus_name == "夜间"
    assert receipt.exact == Decimal("48.0")
    assert receipt.points == 48


def test_per_yuan_grade() -> None:
    doc = sample_doc()
    doc["grades"]["CNG"] = {"name": "天然气"}
    doc["earn"].append({"grade": "CNG", "points_per_yuan": "0.1"})
    rs = parse_ruleset(doc)
    receipt = price_sale(rs, sale("CNG", "50.00", "215.50"), "gold")
    assert receipt.steps[0].value == Decimal("21.550")
    assert receipt.exact == Decimal("32.3250")
    assert receipt.points == 32
    assert "yuan" in receipt.steps[0].description


def test_grade_without_earn_rule_earns_zero() -> None:
    doc = sample_doc()
    doc["grades"]["98"] = {"name": "98#汽油"}
    rs = parse_ruleset(doc)
    receipt = price_sale(rs, sale("98", "40", "320", TUESDAY), "silver")
    assert receipt.points == 0
    assert receipt.exact == 0
    assert "no earn rule" in receipt.steps[0].description
    assert receipt.discount_fen == 400  # the tier's price discount still applies
    unknown = price_sale(SAMPLE, sale("E10", "40", "320"), "standard")
    assert unknown.points == 0
    assert "'E10'" in unknown.steps[0].description


def test_discount_is_half_up_to_fen_and_capped_by_amount() -> None:
    assert price_sale(SAMPLE, sale("92", "33.33", "250"), "silver").discount_fen == 333
    assert price_sale(SAMPLE, sale("92", "33.35", "250"), "silver").discount_fen == 334
    assert price_sale(SAMPLE, sale("92", "33.35", "250"), "gold").discount_fen == 667
    assert price_sale(SAMPLE, sale("92", "10", "1.00"), "gold").discount_fen == 100


def test_bad_inputs() -> None:
    with pytest.raises(KeyError, match="platinum"):
        price_sale(SAMPLE, sale("92", "40"), "platinum")
    with pytest.raises(ValueError, match="negative"):
        price_sale(SAMPLE, sale("92", "-1"), "standard")
    with pytest.raises(ValueError, match="negative"):
        price_sale(SAMPLE, sale("92", "1", "-1"), "standard")
    with pytest.raises(TypeError, match="Decimal"):
        price_sale(SAMPLE, SaleFacts("92", 40.0, Decimal(1), MONDAY), "standard")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone-aware"):
        price_sale(SAMPLE, sale("92", "40", "0", datetime(2026, 12, 8, 10)), "standard")


def test_result_ignores_callers_decimal_context() -> None:
    expected = price_sale(SAMPLE, sale("0", "123.45", "900.00", TUESDAY), "gold")
    with localcontext() as ctx:
        ctx.prec = 3
        assert price_sale(SAMPLE, sale("0", "123.45", "900.00", TUESDAY), "gold") == expected
    assert expected.exact == Decimal("185.1750")


def test_receipt_round_trip_and_json() -> None:
    receipt = price_sale(SAMPLE, sale("0", "41.27", "300", TUESDAY), "gold")
    data = receipt.to_dict()
    text = json.dumps(data, ensure_ascii=False)
    assert receipt_from_dict(json.loads(text)) == receipt
    assert data["exact"] == "61.9050"
    assert data["points"] == 61
    assert data["steps"][1] == {
        "code": "tier",
        "description": "tier 金卡 (gold) × 1.5",
        "factor": "1.5",
        "value": "30.9525",
    }


def test_receipt_from_dict_refuses_bad_data() -> None:
    good = price_sale(SAMPLE, sale("92", "40"), "standard").to_dict()
    for key in ("points", "exact", "steps"):
        bad = dict(good)
        del bad[key]
        with pytest.raises(ValueError, match=key):
            receipt_from_dict(bad)
    with pytest.raises(ValueError, match="exact"):
        receipt_from_dict({**good, "exact": "lots"})
    with pytest.raises(ValueError, match="points"):
        receipt_from_dict({**good, "points": True})
    with pytest.raises(ValueError, match="rounding"):
        receipt_from_dict({**good, "rounding": "ceil"})
    assert receipt_from_dict({**good, "future_field": 1}) == receipt_from_dict(good)


# --------------------------------------------------------------------------- properties

decimals_2dp = st.integers(min_value=0, max_value=200_000).map(lambda n: Decimal(n).scaleb(-2))
moments = st.datetimes(
    min_value=datetime(2026, 1, 1),
    max_value=datetime(2030, 12, 31),
    timezones=st.sampled_from([SHANGHAI, UTC, ZoneInfo("America/New_York")]),
)


@st.composite
def rulesets(draw: st.DrawFn) -> RuleSet:
    """Sample-shaped rule sets with random rates, multipliers, bonuses and rounding."""
    doc = sample_doc()
    rate = st.integers(min_value=0, max_value=500).map(lambda n: str(Decimal(n).scaleb(-2)))
    mult = st.integers(min_value=1, max_value=50).map(lambda n: str(Decimal(n).scaleb(-1)))
    boost = st.integers(min_value=10, max_value=50).map(lambda n: str(Decimal(n).scaleb(-1)))
    doc["earn"] = [
        {"grade": "92", "points_per_litre": draw(rate)},
        {"grade": "95", "points_per_yuan": draw(rate)},
        {"grade": "0", "points_per_litre": draw(rate)},
    ]
    for tier in doc["tiers"]:
        tier["multiplier"] = draw(mult)
    doc["bonuses"] = [
        {
            "name": "weekday",
            "weekdays": draw(st.lists(st.integers(1, 7), min_size=1)),
            "multiplier": draw(boost),
        },
        {"name": "big spender", "min_amount": "300", "multiplier": draw(boost)},
        {"name": "window", "start_time": "07:00", "end_time": "09:30", "multiplier": draw(boost)},
    ]
    doc["rounding"] = draw(st.sampled_from(["floor", "half_up"]))
    return parse_ruleset(doc)


grades = st.sampled_from(["92", "95", "0", "98"])
tiers = st.sampled_from(["standard", "silver", "gold"])
prices = st.sampled_from([Decimal("6.95"), Decimal("7.48"), Decimal("8.10")])


@settings(max_examples=200, deadline=None)
@given(rulesets(), grades, tiers, prices, decimals_2dp, decimals_2dp, moments)
def test_more_litres_never_earn_fewer_points(
    rs: RuleSet,
    grade: str,
    tier: str,
    price: Decimal,
    a: Decimal,
    b: Decimal,
    at: datetime,
) -> None:
    low, high = sorted((a, b))
    small = price_sale(rs, SaleFacts(grade, low, low * price, at), tier)
    large = price_sale(rs, SaleFacts(grade, high, high * price, at), tier)
    assert small.points <= large.points
    assert small.discount_fen <= large.discount_fen


@settings(max_examples=200, deadline=None)
@given(rulesets(), grades, tiers, decimals_2dp, decimals_2dp, moments)
def test_receipt_arithmetic(
    rs: RuleSet, grade: str, tier: str, litres: Decimal, amount: Decimal, at: datetime
) -> None:
    receipt = price_sale(rs, SaleFacts(grade, litres, amount, at), tier)
    assert product([s.factor for s in receipt.steps]) == receipt.exact
    assert receipt.steps[-1].value == receipt.points
    assert receipt.steps[-2].value == receipt.exact
    assert isinstance(receipt.points, int)
    if rs.rounding == "floor":
        assert receipt.points <= receipt.exact < receipt.points + 1
    else:
        assert abs(receipt.exact - receipt.points) <= Decimal("0.5")
        assert receipt.exact - receipt.points < Decimal("0.5")
    assert receipt_from_dict(receipt.to_dict()) == receipt
    assert receipt_from_dict(json.loads(json.dumps(receipt.to_dict()))) == receipt


def test_receipt_is_frozen() -> None:
    receipt: PointsReceipt = price_sale(SAMPLE, sale("92", "1"), "standard")
    with pytest.raises(AttributeError):
        receipt.points = 2  # type: ignore[misc]
