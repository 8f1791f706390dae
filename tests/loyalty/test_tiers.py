"""Tier qualification over rolling windows and the new-member trial."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_sync.core.ruleset import RuleSet
from cloud_sync.core.ruleset.parser import parse_ruleset
from cloud_sync.core.tiers import (
    Activity,
    TierDecision,
    qualification_windows,
    qualified_tier,
    tier_at,
)

RULESETS = Path(__file__).resolve().parents[2] / "config" / "rulesets"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def sample_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((RULESETS / "sample.json").read_text(encoding="utf-8"))
    return copy.deepcopy(doc)


SAMPLE = parse_ruleset(sample_doc())


def mixed_ruleset() -> RuleSet:
    """Silver by litres or visits over 90 days; gold by amount over 365 days."""
    doc = sample_doc()
    doc["tiers"][1]["qualify"] = {"litres": "300", "visits": 10, "window_days": 90}
    doc["tiers"][2]["qualify"] = {"amount": "8000", "visits": 40, "window_days": 365}
    return parse_ruleset(doc)


MIXED = mixed_ruleset()


def litres(value: str) -> dict[int, Activity]:
    return {90: Activity(litres=Decimal(value), amount=Decimal(0), visits=0)}


def test_qualification_windows() -> None:
    assert qualification_windows(SAMPLE) == frozenset({90})
    assert qualification_windows(MIXED) == frozenset({90, 365})
    doc = sample_doc()
    doc["tiers"] = doc["tiers"][:1]
    del doc["new_member_tier"]
    assert qualification_windows(parse_ruleset(doc)) == frozenset()


@pytest.mark.parametrize(
    ("total", "tier"),
    [
        ("0", "standard"),
        ("299.99", "standard"),
        ("300", "silver"),
        ("300.00", "silver"),
        ("999.99", "silver"),
        ("1000", "gold"),
        ("25000", "gold"),
    ],
)
def test_litre_thresholds(total: str, tier: str) -> None:
    assert qualified_tier(SAMPLE, litres(total)) == tier


def test_any_listed_threshold_qualifies() -> None:
    quiet = Activity(Decimal(0), Decimal(0), 0)
    by_visits = {90: Activity(Decimal(50), Decimal(400), 10), 365: quiet}
    assert qualified_tier(MIXED, by_visits) == "silver"
    by_amount = {90: quiet, 365: Activity(Decimal(0), Decimal("8000.00"), 1)}
    assert qualified_tier(MIXED, by_amount) == "gold"
    almost = {
        90: Activity(Decimal("299.99"), Decimal(0), 9),
        365: Activity(Decimal(0), Decimal("7999.99"), 39),
    }
    assert qualified_tier(MIXED, almost) == "standard"


def test_missing_window_is_an_error() -> None:
    with pytest.raises(KeyError, match="365"):
        qualified_tier(MIXED, litres("5000"))


def test_extra_windows_are_ignored() -> None:
    activity = {**litres("1000"), 30: Activity(Decimal(0), Decimal(0), 0)}
    assert qualified_tier(SAMPLE, activity) == "gold"


REGISTERED = datetime(2026, 3, 1, 9, 0, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (REGISTERED, TierDecision("silver", "standard", "silver")),
        (REGISTERED + timedelta(days=29, hours=23), TierDecision("silver", "standard", "silver")),
        (REGISTERED + timedelta(days=30), TierDecision("standard", "standard", None)),
        (REGISTERED - timedelta(seconds=1), TierDecision("standard", "standard", None)),
    ],
)
def test_new_member_trial(at: datetime, expected: TierDecision) -> None:
    decision = tier_at(SAMPLE, activity_by_window=litres("0"), registered_at=REGISTERED, at=at)
    assert decision == expected


def test_trial_and_qualified_the_higher_wins() -> None:
    at = REGISTERED + timedelta(days=3)
    gold = tier_at(SAMPLE, activity_by_window=litres("1200"), registered_at=REGISTERED, at=at)
    assert gold == TierDecision(code="gold", qualified="gold", trial="silver")
    silver = tier_at(SAMPLE, activity_by_window=litres("300"), registered_at=REGISTERED, at=at)
    assert silver == TierDecision(code="silver", qualified="silver", trial="silver")


def test_trial_compares_instants_across_offsets() -> None:
    at = datetime(2026, 3, 31, 0, 59, tzinfo=UTC)  # 08:59 in Shanghai, day 30 not yet over
    decision = tier_at(SAMPLE, activity_by_window=litres("0"), registered_at=REGISTERED, at=at)
    assert decision.trial == "silver"


def test_no_trial_without_new_member_tier() -> None:
    doc = sample_doc()
    del doc["new_member_tier"]
    rs = parse_ruleset(doc)
    decision = tier_at(rs, activity_by_window=litres("0"), registered_at=REGISTERED, at=REGISTERED)
    assert decision == TierDecision("standard", "standard", None)


def test_tier_at_needs_aware_times() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        tier_at(
            SAMPLE,
            activity_by_window=litres("0"),
            registered_at=datetime(2026, 3, 1),
            at=REGISTERED,
        )


# --------------------------------------------------------------------------- properties

amounts = st.integers(min_value=0, max_value=2_000_000).map(lambda n: Decimal(n).scaleb(-2))
visits = st.integers(min_value=0, max_value=100)


@st.composite
def activity_pairs(draw: st.DrawFn) -> tuple[dict[int, Activity], dict[int, Activity]]:
    """Two activity maps where the second is at least the first in every measure."""
    low: dict[int, Activity] = {}
    high: dict[int, Activity] = {}
    for window in (90, 365):
        a = Activity(draw(amounts), draw(amounts), draw(visits))
        more = Activity(draw(amounts), draw(amounts), draw(visits))
        low[window] = a
        high[window] = Activity(
            a.litres + more.litres, a.amount + more.amount, a.visits + more.visits
        )
    return low, high


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([SAMPLE, MIXED]), activity_pairs())
def test_qualified_tier_is_monotonic_in_activity(
    rs: RuleSet, pair: tuple[dict[int, Activity], dict[int, Activity]]
) -> None:
    low, high = pair
    assert rs.tier_rank(qualified_tier(rs, low)) <= rs.tier_rank(qualified_tier(rs, high))


@settings(max_examples=200, deadline=None)
@given(activity_pairs(), st.integers(min_value=-5, max_value=60))
def test_tier_at_never_below_qualified(
    pair: tuple[dict[int, Activity], dict[int, Activity]], days: int
) -> None:
    activity, _ = pair
    at = REGISTERED + timedelta(days=days)
    decision = tier_at(MIXED, activity_by_window=activity, registered_at=REGISTERED, at=at)
    assert MIXED.tier_rank(decision.code) >= MIXED.tier_rank(decision.qualified)
    assert decision.qualified == qualified_tier(MIXED, activity)
    assert (decision.trial is not None) == (0 <= days < 30)
