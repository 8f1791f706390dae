"""The till's redemption arithmetic (pure): what "max off" and "use all" may choose, and
how a typed bill is read."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cloud_sync.core.ruleset import RedeemPolicy
from edge_agent.web.till_terms import (
    MAX_BILL_FEN,
    Bill,
    Quote,
    max_off,
    parse_yuan,
    quote,
    redeem_terms,
)

policies = st.builds(
    RedeemPolicy, points_per_yuan=st.integers(1, 1000), min_points=st.integers(0, 5000)
)
bills = st.none() | st.builds(
    Bill, amount_fen=st.integers(1, 10_000_000), discount_fen=st.integers(0, 100_000)
)


@given(policies, st.integers(0, 10_000_000), bills)
def test_max_off_is_a_redeemable_amount_within_the_balance_and_the_bill(
    policy: RedeemPolicy, balance: int, bill: Bill | None
) -> None:
    terms = redeem_terms(policy, balance)
    most = max_off(terms, bill)
    assert 0 <= most <= balance
    if most:
        answer = quote(terms, most, bill)
        assert isinstance(answer, Quote), answer  # the preview accepts what the button chose
        assert answer.value_fen * policy.points_per_yuan == most * 100  # whole fen
        if bill is not None:
            assert answer.to_collect_fen is not None
            assert 0 <= answer.to_collect_fen <= bill.due_fen
            # one more step would be worth more than is due (or more than the balance)
            more = most + terms.step
            assert more > balance or terms.value_fen(more) > bill.due_fen


@given(policies, st.integers(0, 10_000_000))
def test_use_all_takes_every_redeemable_point(policy: RedeemPolicy, balance: int) -> None:
    terms = redeem_terms(policy, balance)
    if terms.usable:
        assert isinstance(quote(terms, terms.usable, None), Quote)
        assert balance - terms.usable < terms.step
    else:
        assert balance < terms.least


def test_refusals_name_their_reason() -> None:
    terms = redeem_terms(RedeemPolicy(points_per_yuan=30, min_points=100), 500)
    assert terms.step == 3  # 30 points a yuan: only multiples of 3 are whole fen
    assert terms.least == 102
    assert quote(terms, 99, None) == "redeem.below_min"
    assert quote(terms, 200, None) == "redeem.bad_step"
    assert quote(terms, 501, None) == "redeem.over_balance"
    assert quote(terms, 300, Bill(amount_fen=900, discount_fen=50)) == "redeem.over_bill"
    ok = quote(terms, 150, Bill(amount_fen=900, discount_fen=50))
    assert ok == Quote(150, 500, Bill(900, 50), 350)


def test_a_typed_bill_is_yuan_with_at_most_two_decimals() -> None:
    assert parse_yuan("300") == 30000
    assert parse_yuan(" ¥12.5 ") == 1250
    assert parse_yuan("0.01") == 1
    assert parse_yuan(f"{MAX_BILL_FEN // 100}") == MAX_BILL_FEN
    for bad in ("", "0", "0.00", "1e3", "-5", "1.234", "１２", "NaN", "12,5", "99999999"):
        assert parse_yuan(bad) is None, bad
