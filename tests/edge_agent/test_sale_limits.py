"""The manual-sale sanity limits as properties of the pure check (services/sale_limits.py).

A typed sale inside every limit is never refused; outside one it is refused with that
limit's code and the numbers that explain it (rendered in both languages without a gap).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.error_codes import CATALOGUE
from edge_agent.reasons import REASONS, render
from edge_agent.sale_limit_settings import GradeBand, SaleLimitsSettings
from edge_agent.services.sale_limits import (
    FIELD_OF,
    ManualSaleFacts,
    Refusal,
    StationFacts,
    check_manual_sale,
    price_band,
)
from edge_agent.web.i18n import MESSAGES
from tests.support import SHANGHAI

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=SHANGHAI)
GRADES = {"92": "92号汽油", "95": "95号汽油", "0": "0号柴油"}
DEFAULTS = SaleLimitsSettings()
CENT = Decimal("0.01")


def facts(recent: Decimal | None = None, grades: dict[str, str] | None = GRADES) -> StationFacts:
    return StationFacts(now=NOW, grades=grades, ruleset_version=3, recent_price=recent)


def sale(
    litres: str | int | Decimal = "40",
    amount: str | int | Decimal = "300.00",
    *,
    grade: str = "92",
    unit_price: str | Decimal | None = None,
    ended_at: datetime = NOW,
    pump: int = 1,
    nozzle: int | None = None,
) -> ManualSaleFacts:
    return ManualSaleFacts(
        pump=pump,
        nozzle=nozzle,
        grade=grade,
        litres=Decimal(litres),
        amount=Decimal(amount),
        unit_price=None if unit_price is None else Decimal(unit_price),
        ended_at=ended_at,
    )


def codes(refusals: tuple[Refusal, ...]) -> list[str]:
    return [r.code for r in refusals]


# --- strategies ----------------------------------------------------------------------------

prices = st.decimals(min_value="1.00", max_value="20.00", places=2)
recent_prices = st.decimals(min_value="2.00", max_value="15.00", places=2)
litres_ok = st.decimals(min_value="0.01", max_value="200", places=2)
in_window = st.integers(min_value=-7 * 86400, max_value=300).map(
    lambda s: NOW + timedelta(seconds=s)
)


@st.composite
def limits(draw: st.DrawFn) -> SaleLimitsSettings:
    low = draw(st.decimals(min_value="0.50", max_value="5.00", places=2))
    high = draw(st.decimals(min_value="6.00", max_value="40.00", places=2))
    return SaleLimitsSettings(
        max_litres=draw(st.integers(1, 30_000)),
        price_min=str(low),
        price_max=str(high),
        price_tolerance_pct=draw(st.integers(1, 100)),
        clock_skew_s=draw(st.integers(0, 3600)),
        max_age_days=draw(st.integers(1, 30)),
    )


# --- properties ----------------------------------------------------------------------------


@given(litres=litres_ok, price=prices, at=in_window, grade=st.sampled_from(sorted(GRADES)))
def test_a_sale_inside_every_limit_is_never_refused(
    litres: Decimal, price: Decimal, at: datetime, grade: str
) -> None:
    amount = (litres * price).quantize(CENT, rounding=ROUND_HALF_UP)
    typed = sale(litres, amount, grade=grade, unit_price=price, ended_at=at)
    assert check_manual_sale(typed, facts(), DEFAULTS) == ()


@given(
    litres=st.one_of(
        st.decimals(min_value="-1000", max_value="0", places=3),
        st.decimals(min_value="200.001", max_value="100000", places=3),
    ),
    amount=st.decimals(min_value="0", max_value="100000", places=2),
)
def test_litres_outside_the_limit_are_refused_and_nothing_else_is_judged_on_them(
    litres: Decimal, amount: Decimal
) -> None:
    refusals = check_manual_sale(sale(litres, amount, unit_price="7.50"), facts(), DEFAULTS)
    assert codes(refusals) == ["sale.litres_range"]
    assert refusals[0].params["max"] == "200"


@given(config=limits(), litres=st.decimals(min_value="0.001", max_value="30000", places=3))
def test_the_litres_limit_is_the_configured_one(
    config: SaleLimitsSettings, litres: Decimal
) -> None:
    amount = (litres * config.low).quantize(CENT, rounding=ROUND_HALF_UP)
    refusals = check_manual_sale(sale(litres, amount, unit_price=config.low), facts(), config)
    assert ("sale.litres_range" in codes(refusals)) == (litres > config.max_litres)


@given(recent=recent_prices, price=st.decimals(min_value="0.01", max_value="50.00", places=2))
def test_a_price_is_judged_by_the_grades_recent_price_within_the_stations_band(
    recent: Decimal, price: Decimal
) -> None:
    litres = Decimal(40)
    amount = litres * price
    refusals = check_manual_sale(sale(litres, amount), facts(recent), DEFAULTS)
    within_recent = abs(price - recent) <= recent * Decimal("0.30")
    within_station = DEFAULTS.low <= price <= DEFAULTS.high
    assert (refusals == ()) == (within_recent and within_station) or (
        # the band's bounds are rounded inwards to the fen: a price less than a fen from
        # the exact bound may be refused, never one further inside
        abs(abs(price - recent) - recent * Decimal("0.30")) < CENT
    )
    if refusals:
        assert codes(refusals) == ["sale.price_recent"]
        params = refusals[0].params
        assert Decimal(params["low"]) <= recent <= Decimal(params["high"])
        assert params["recent"] == f"{recent:.2f}" and params["pct"] == "30"


@given(price=st.decimals(min_value="0.01", max_value="50.00", places=2))
def test_without_a_recent_price_the_stations_band_decides(price: Decimal) -> None:
    refusals = check_manual_sale(sale(10, price * 10), facts(None), DEFAULTS)
    if Decimal("1.00") <= price <= Decimal("20.00"):
        assert refusals == ()
    else:
        assert codes(refusals) == ["sale.price_band"]
        assert (refusals[0].params["low"], refusals[0].params["high"]) == ("1.00", "20.00")


@given(recent=recent_prices, price=st.decimals(min_value="0.01", max_value="50.00", places=2))
def test_a_grades_configured_band_replaces_the_recent_price(
    recent: Decimal, price: Decimal
) -> None:
    config = SaleLimitsSettings(grades={"92": GradeBand(price_min="6.50", price_max="9.50")})
    refusals = check_manual_sale(sale(10, price * 10), facts(recent), config)
    assert (refusals == ()) == (Decimal("6.50") <= price <= Decimal("9.50"))
    if refusals:
        assert codes(refusals) == ["sale.price_band"]


@given(
    litres=litres_ok,
    price=st.decimals(min_value="5.00", max_value="9.00", places=2),
    off_by_fen=st.integers(-5000, 5000),
)
def test_the_amount_is_litres_times_price_within_a_fen_a_litre(
    litres: Decimal, price: Decimal, off_by_fen: int
) -> None:
    amount = (litres * price).quantize(CENT, rounding=ROUND_HALF_UP) + off_by_fen * CENT
    if amount <= 0:
        return
    refusals = check_manual_sale(sale(litres, amount, unit_price=price), facts(), DEFAULTS)
    tolerance = max(litres * CENT, CENT)
    mismatch = abs(amount - litres * price) > tolerance
    assert ("sale.amount_mismatch" in codes(refusals)) == mismatch


@given(offset=st.integers(min_value=-40 * 86400, max_value=40 * 86400), config=limits())
def test_the_end_time_lies_between_max_age_and_clock_skew(
    offset: int, config: SaleLimitsSettings
) -> None:
    at = NOW + timedelta(seconds=offset)
    price = config.low
    refusals = check_manual_sale(sale(1, price, unit_price=price, ended_at=at), facts(), config)
    time_codes = [c for c in codes(refusals) if c.startswith("sale.ended_")]
    if offset > config.clock_skew_s:
        assert time_codes == ["sale.ended_future"]
    elif offset < -config.max_age_days * 86400:
        assert time_codes == ["sale.ended_old"]
    else:
        assert time_codes == []


@given(grade=st.text(min_size=1, max_size=16))
def test_only_a_grade_of_the_rule_set_in_force_is_taken(grade: str) -> None:
    refusals = check_manual_sale(sale(grade=grade), facts(), DEFAULTS)
    assert ("sale.grade_unknown" in codes(refusals)) == (grade not in GRADES)
    no_rules = check_manual_sale(sale(grade=grade), facts(grades=None), DEFAULTS)
    assert "rules.none" in codes(no_rules)


@settings(max_examples=300)
@given(
    pump=st.integers(-5, 120),
    nozzle=st.one_of(st.none(), st.integers(-5, 120)),
    grade=st.sampled_from(["92", "98", ""]),
    litres=st.decimals(min_value="-10", max_value="60000", places=3),
    amount=st.decimals(min_value="0", max_value="100000", places=2),
    unit_price=st.one_of(st.none(), st.decimals(min_value="0", max_value="100", places=3)),
    offset=st.integers(-40 * 86400, 40 * 86400),
    recent=st.one_of(st.none(), recent_prices),
)
def test_every_refusal_is_declared_names_its_field_and_renders_whole(
    pump: int,
    nozzle: int | None,
    grade: str,
    litres: Decimal,
    amount: Decimal,
    unit_price: Decimal | None,
    offset: int,
    recent: Decimal | None,
) -> None:
    typed = ManualSaleFacts(
        pump, nozzle, grade, litres, amount, unit_price, NOW + timedelta(seconds=offset)
    )
    refusals = check_manual_sale(typed, facts(recent), DEFAULTS)
    fields = [r.form_field for r in refusals]
    order = ["pump", "nozzle", "grade", "litres", "unit_price", "amount", "ended_at"]
    assert fields == sorted(fields, key=order.index)  # in the form's order: the first is shown
    for refusal in refusals:
        assert CATALOGUE[refusal.code].status in {409, 422}
        assert refusal.code in FIELD_OF
        for lang in ("zh-CN", "en"):
            text = render(MESSAGES[lang][f"err.{refusal.code}"], refusal.params)
            assert "…" not in text and "{" not in text, (lang, refusal)
    assert check_manual_sale(typed, facts(recent), DEFAULTS) == refusals  # no hidden state


# --- the issue's own examples --------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        (sale(grade="98"), "sale.grade_unknown"),
        (sale("0", "0"), "sale.litres_range"),
        (sale("100000", "1"), "sale.litres_range"),
        (sale("5000", "1"), "sale.litres_range"),
        (sale("40", "1"), "sale.price_band"),
        (sale("40", "310", unit_price="7.50"), "sale.amount_mismatch"),
        (sale(ended_at=NOW - timedelta(days=8)), "sale.ended_old"),
        (sale(ended_at=NOW + timedelta(minutes=6)), "sale.ended_future"),
        (sale(pump=100), "sale.pump_range"),
    ],
)
def test_the_absurd_sales_of_the_issue_are_refused(typed: ManualSaleFacts, code: str) -> None:
    assert codes(check_manual_sale(typed, facts(), DEFAULTS))[0] == code


def test_the_reasons_say_what_was_typed_and_what_is_allowed() -> None:
    (refused,) = check_manual_sale(sale("5000", "1", grade="92"), facts(), DEFAULTS)
    assert render(REASONS["en"]["err.sale.litres_range"], refused.params) == (
        "litres must be more than 0 and at most 200 L per sale, got 5000"
    )
    (refused,) = check_manual_sale(sale("40", "400"), facts(Decimal("7.50")), DEFAULTS)
    assert render(REASONS["zh-CN"]["err.sale.price_recent"], refused.params) == (
        "单价 10.00 元/升偏离油品 92 本站近期价格 7.50 元/升超过 30%（允许 5.25–9.75 元/升）"
    )


def test_an_absurd_recent_price_falls_back_to_the_stations_band() -> None:
    band = price_band("92", Decimal("0.10"), DEFAULTS)
    assert (band.low, band.high, band.basis) == (Decimal("1.00"), Decimal("20.00"), "station")
    band = price_band("92", Decimal("18.00"), DEFAULTS)
    assert (band.low, band.high, band.basis) == (Decimal("12.60"), Decimal("20.00"), "recent")


@pytest.mark.parametrize(
    "table",
    [
        {"price_min": 7.5},
        {"price_min": "0"},
        {"price_min": "9.00", "price_max": "8.00"},
        {"max_litres": 30_001},
        {"max_age_days": 0},
        {"grades": {"92": {"price_min": "9", "price_max": "9"}}},
    ],
)
def test_unsafe_settings_are_refused(table: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"price|less|greater|string"):
        SaleLimitsSettings.model_validate(table)


def test_the_time_bounds_hold_to_the_second() -> None:
    def refused_at(moment: datetime) -> list[str]:
        return codes(check_manual_sale(sale(ended_at=moment), facts(), DEFAULTS))

    assert refused_at(NOW + timedelta(seconds=300)) == []
    assert refused_at(NOW + timedelta(seconds=301)) == ["sale.ended_future"]
    assert refused_at(NOW - timedelta(days=7)) == []
    assert refused_at(NOW - timedelta(days=7, seconds=1)) == ["sale.ended_old"]
