"""Redemption against the bill: the arithmetic (services/bill.py) as properties.

Whatever the rate, minimum, balance, bill and allowance: "max off" is the most points that
fit all of them, never takes off more than is due, and any points the quote accepts leave
an amount to collect that is due minus their value, never below zero.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.services.bill import BillFacts, fen_text, quote, tier_discount_fen, value_of

rates = st.sampled_from([1, 3, 7, 10, 25, 40, 100, 150, 200, 1000])


@st.composite
def bill_facts(draw: st.DrawFn) -> BillFacts:
    bill = draw(st.one_of(st.none(), st.integers(1, 500_000)))
    discount = 0 if bill is None else draw(st.integers(0, bill))
    redeemed = 0 if bill is None else draw(st.integers(0, bill))
    return BillFacts(
        points_per_yuan=draw(rates),
        min_points=draw(st.integers(0, 500)),
        balance=draw(st.integers(0, 200_000)),
        bill_fen=bill,
        discount_fen=discount,
        redeemed_fen=redeemed,
        headroom=draw(st.one_of(st.none(), st.integers(0, 100_000))),
    )


@given(facts=bill_facts())
def test_max_off_is_the_most_points_that_fit_everything(facts: BillFacts) -> None:
    figures = quote(facts)
    best, step = figures.max_points, figures.step
    assert best % step == 0 and value_of(facts, step) * facts.points_per_yuan == step * 100
    assert best <= facts.balance
    assert facts.headroom is None or best <= facts.headroom
    if figures.due_fen is not None:
        assert value_of(facts, best) <= figures.due_fen
    assert best == 0 or best >= facts.min_points
    # one more step would break a limit (or, at 0, even the largest fit is under the minimum)
    more = best + step
    breaks = (
        more > facts.balance
        or (facts.headroom is not None and more > facts.headroom)
        or (figures.due_fen is not None and value_of(facts, more) > figures.due_fen)
    )
    assert breaks or (best == 0 and more < facts.min_points)
    assert quote(facts, best).refused is None if best else True


@given(facts=bill_facts(), points=st.integers(-10, 300_000))
def test_points_the_quote_accepts_leave_due_minus_their_value(
    facts: BillFacts, points: int
) -> None:
    figures = quote(facts, points)
    if figures.refused is None:
        assert 0 < points <= facts.balance and points >= facts.min_points
        assert points % figures.step == 0
        assert figures.value_fen == points * 100 // facts.points_per_yuan
        if figures.due_fen is not None:
            assert figures.collect_fen == figures.due_fen - figures.value_fen >= 0
            assert points <= figures.max_points or facts.headroom is not None
        assert figures.to_dict()["balance_after"] == facts.balance - points
    else:
        assert figures.value_fen == 0
        assert figures.collect_fen == figures.due_fen
        assert figures.refused.code in {
            "redeem.not_positive",
            "redeem.min_points",
            "redeem.not_whole_fen",
            "points.insufficient",
            "redeem.over_bill",
        }


@given(facts=bill_facts())
def test_use_all_fits_only_when_the_whole_balance_can_go_on_this_bill(facts: BillFacts) -> None:
    figures = quote(facts)
    assert figures.all_points <= facts.balance < figures.all_points + figures.step
    assert figures.all_fits == (0 < figures.all_points <= figures.max_points)
    if figures.all_fits:
        assert quote(facts, figures.all_points).refused is None


def test_a_bill_the_issue_describes() -> None:
    """A gold member's 40 L at 7.50 (300.00), 0.20 off a litre, 1,234 points at 100 a yuan."""
    discount = tier_discount_fen(Decimal(40), Decimal("0.20"), 30_000)
    facts = BillFacts(100, 100, 1_234, bill_fen=30_000, discount_fen=discount)
    figures = quote(facts, 1_200)
    assert (figures.due_fen, figures.max_points, figures.all_points) == (29_200, 1_234, 1_234)
    assert figures.all_fits and figures.refused is None
    assert (figures.value_fen, figures.collect_fen) == (1_200, 28_000)
    shown = figures.to_dict()
    assert (shown["due"], shown["value"], shown["collect"]) == ("292.00", "12.00", "280.00")
    small = quote(BillFacts(100, 100, 50_000, bill_fen=1_050), 2_000)
    assert small.max_points == 1_050
    assert small.refused is not None and small.refused.code == "redeem.over_bill"
    assert small.refused.params == {
        "points": 2_000,
        "value": "20.00",
        "due": "10.50",
        "max_points": 1_050,
    }


def test_points_that_buy_a_fraction_of_a_fen_come_in_steps() -> None:
    facts = BillFacts(points_per_yuan=150, min_points=0, balance=1_000, bill_fen=10_000)
    assert quote(facts).step == 3  # 3 points buy 2 fen
    assert quote(facts, 4).refused is not None
    assert quote(facts, 999).value_fen == 666


@pytest.mark.parametrize(
    ("fen", "text"), [(0, "0.00"), (5, "0.05"), (12_345, "123.45"), (-7, "-0.07")]
)
def test_fen_read_as_yuan(fen: int, text: str) -> None:
    assert fen_text(fen) == text


def test_the_tier_discount_never_exceeds_the_bill() -> None:
    assert tier_discount_fen(Decimal("40.5"), Decimal("0.10"), 30_000) == 405
    assert tier_discount_fen(Decimal("0.05"), Decimal("0.10"), 30_000) == 1  # half up
    assert tier_discount_fen(Decimal(100), Decimal("5"), 300) == 300
