"""`cloud_sync.core.backoff`: the one retry schedule (sync engine, supervisor, both drivers)."""

from __future__ import annotations

import random

import pytest

from cloud_sync.core.backoff import full_jitter, schedule


def test_the_ceiling_doubles_from_the_base_to_the_cap() -> None:
    top = [full_jitter(n, base_s=0.5, cap_s=30.0, rng=lambda: 1.0) for n in range(1, 10)]
    assert top == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_the_wait_is_drawn_below_the_ceiling_and_never_overflows() -> None:
    rng = random.Random(3)
    for attempt in (-5, 0, 1, 2, 7, 1_000, 10**9):
        ceiling = min(60.0, 2.0 ** min(max(attempt, 1) - 1, 10))
        waits = [full_jitter(attempt, base_s=1.0, cap_s=60.0, rng=rng.random) for _ in range(200)]
        assert all(0 <= wait < ceiling for wait in waits)
        assert max(waits) > ceiling / 2  # full jitter spreads over the whole range


def test_a_schedule_binds_the_parameters_and_its_random_source() -> None:
    first = schedule(base_s=1.0, cap_s=60.0, rng=random.Random(9).random)
    again = schedule(base_s=1.0, cap_s=60.0, rng=random.Random(9).random)
    assert [first(n) for n in range(1, 12)] == [again(n) for n in range(1, 12)]
    assert schedule(base_s=0.5, cap_s=2.0, factor=3.0, rng=lambda: 0.5)(2) == 0.75


@pytest.mark.parametrize(
    ("base_s", "cap_s", "factor"), [(0.0, 1.0, 2.0), (1.0, 0.0, 2.0), (1.0, 1.0, 0.5)]
)
def test_nonsense_parameters_are_refused(base_s: float, cap_s: float, factor: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        schedule(base_s=base_s, cap_s=cap_s, factor=factor)
    with pytest.raises(ValueError, match="positive"):
        full_jitter(1, base_s=base_s, cap_s=cap_s, factor=factor)
