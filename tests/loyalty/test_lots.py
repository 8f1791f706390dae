"""Which lots a debit consumes: soonest expiry first, never expired ones, the named lot first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud_sync.core.lots import InsufficientPoints, Lot, allocate, spendable

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def lot(lot_id: int, remaining: int, days: int | None) -> Lot:
    expires = None if days is None else NOW + timedelta(days=days)
    return Lot(lot_id=lot_id, remaining=remaining, expires_at=expires, earned_seq=lot_id)


def test_soonest_expiring_first_and_never_expiring_last() -> None:
    lots = [lot(1, 50, None), lot(2, 30, 200), lot(3, 40, 10)]
    assert allocate(lots, 100, NOW) == [(3, 40), (2, 30), (1, 30)]


def test_expired_lots_are_not_spendable_even_before_expiry_is_booked() -> None:
    lots = [lot(1, 70, -1), lot(2, 30, 5)]
    assert spendable(lots, NOW) == 30
    with pytest.raises(InsufficientPoints) as refused:
        allocate(lots, 31, NOW)
    assert (refused.value.wanted, refused.value.available) == (31, 30)


def test_the_named_lot_goes_first_even_when_expired() -> None:
    lots = [lot(1, 100, -3), lot(2, 150, 60)]
    assert allocate(lots, 100, NOW, first=1) == [(1, 100)]
    assert allocate(lots, 120, NOW, first=1) == [(1, 100), (2, 20)]


@given(
    st.lists(st.tuples(st.integers(1, 500), st.one_of(st.none(), st.integers(-30, 400)))),
    st.integers(1, 3000),
)
def test_allocation_takes_exactly_what_is_asked_from_live_lots(
    specs: list[tuple[int, int | None]], points: int
) -> None:
    lots = [lot(i, remaining, days) for i, (remaining, days) in enumerate(specs)]
    available = spendable(lots, NOW)
    if points > available:
        with pytest.raises(InsufficientPoints):
            allocate(lots, points, NOW)
        return
    taken = allocate(lots, points, NOW)
    assert sum(p for _, p in taken) == points
    by_id = {item.lot_id: item for item in lots}
    for lot_id, p in taken:
        assert 0 < p <= by_id[lot_id].remaining
        expires_at = by_id[lot_id].expires_at
        assert expires_at is None or expires_at > NOW
    expiries = [by_id[lot_id].expires_at or datetime.max.replace(tzinfo=UTC) for lot_id, _ in taken]
    assert expiries == sorted(expiries)
