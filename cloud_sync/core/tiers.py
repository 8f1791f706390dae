"""Tier qualification: which tier a member holds for a sale.

The store sums the member's activity over each qualification window; these functions only
compare those sums with the rule set's thresholds, so the answer is the same at every
station and in the cloud. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from cloud_sync.core.ruleset import Qualify, RuleSet

__all__ = [
    "Activity",
    "TierDecision",
    "qualification_windows",
    "qualified_tier",
    "tier_at",
]


@dataclass(frozen=True)
class Activity:
    """A member's totals over one window: litres, money spent and number of sales."""

    litres: Decimal
    amount: Decimal
    visits: int


@dataclass(frozen=True)
class TierDecision:
    """The tier to price with (`code`), and the two routes that could have granted it."""

    code: str
    qualified: str
    trial: str | None


def qualification_windows(ruleset: RuleSet) -> frozenset[int]:
    """The distinct window_days the store must compute an Activity for."""
    return frozenset(t.qualify.window_days for t in ruleset.tiers if t.qualify is not None)


def _meets(qualify: Qualify, activity: Activity) -> bool:
    """ANY threshold the tier lists is enough."""
    return (
        (qualify.litres is not None and activity.litres >= qualify.litres)
        or (qualify.amount is not None and activity.amount >= qualify.amount)
        or (qualify.visits is not None and activity.visits >= qualify.visits)
    )


def qualified_tier(ruleset: RuleSet, activity_by_window: Mapping[int, Activity]) -> str:
    """The highest tier whose threshold the activity meets; the first tier otherwise.

    `activity_by_window` maps window_days to the member's activity over the window_days
    BEFORE the sale being priced, not including it: the sale that crosses a threshold is
    priced at the old tier and the member holds the new tier from the next sale. Every
    window in qualification_windows(ruleset) must be present (KeyError otherwise), so a
    forgotten window is a loud bug rather than a silent downgrade.
    """
    missing = sorted(qualification_windows(ruleset) - set(activity_by_window))
    if missing:
        raise KeyError(f"no activity given for window_days {missing}")
    for tier in reversed(ruleset.tiers):
        if tier.qualify is not None and _meets(
            tier.qualify, activity_by_window[tier.qualify.window_days]
        ):
            return tier.code
    return ruleset.tiers[0].code


def tier_at(
    ruleset: RuleSet,
    *,
    activity_by_window: Mapping[int, Activity],
    registered_at: datetime,
    at: datetime,
) -> TierDecision:
    """The tier a member holds at `at` (the sale's end time): qualified or trial, the higher.

    Activity is over the windows BEFORE the sale (see qualified_tier). The new-member trial
    runs from registered_at (inclusive) for `days` days (exclusive end).
    """
    for name, moment in (("registered_at", registered_at), ("at", at)):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware, got {moment.isoformat()}")
    qualified = qualified_tier(ruleset, activity_by_window)
    grant = ruleset.new_member_tier
    trial = None
    if grant is not None and registered_at <= at < registered_at + timedelta(days=grant.days):
        trial = grant.code
    code = qualified
    if trial is not None and ruleset.tier_rank(trial) > ruleset.tier_rank(qualified):
        code = trial
    return TierDecision(code=code, qualified=qualified, trial=trial)
