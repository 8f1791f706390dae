"""A member's tier and the way to the next one, from the sales in the qualification windows.

The tier itself is decided by the shared pure functions (`cloud_sync.core.tiers`: the same
`tier_at` every station prices with); this module only sums the member's sales per window,
as the station's store does (standing sales ending in [now - window_days, now]), and asks
those functions again as sales leave the windows, to say until when the tier holds and what
drops out on which date. Pure: the caller reads the sales, no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from cloud_sync.core.ruleset import RuleSet, Tier
from cloud_sync.core.tiers import Activity, qualification_windows, qualified_tier, tier_at

__all__ = ["LEAVING_DAYS", "WindowSale", "decimal_text", "fen", "tier_progress"]

LEAVING_DAYS = 30  # how far ahead the answer lists what leaves the windows, by date
_ZERO = Decimal(0)


@dataclass(frozen=True)
class WindowSale:
    """One standing sale of the member (reversed sales never count towards a tier)."""

    at: datetime
    litres: Decimal
    amount: Decimal  # yuan


def decimal_text(value: Decimal) -> str:
    """At least two decimals, more only when the value has them (as the wire writes litres)."""
    exponent = value.as_tuple().exponent
    places = max(2, -exponent if isinstance(exponent, int) else 2)
    return f"{value:.{places}f}"


def fen(yuan: Decimal) -> int:
    return int((yuan * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


class _Totals:
    """Running sums of one window; subtracting a sale as it leaves."""

    def __init__(self, sales: Iterable[WindowSale]) -> None:
        self.litres, self.amount, self.visits = _ZERO, _ZERO, 0
        for sale in sales:
            self.add(sale, 1)

    def add(self, sale: WindowSale, sign: int) -> None:
        self.litres += sale.litres * sign
        self.amount += sale.amount * sign
        self.visits += sign

    def activity(self) -> Activity:
        return Activity(litres=self.litres, amount=self.amount, visits=self.visits)


def _in_window(sales: Sequence[WindowSale], days: int, now: datetime) -> list[WindowSale]:
    start = now - timedelta(days=days)
    return [sale for sale in sales if start <= sale.at <= now]


def _measures(tier: Tier, activity: Activity) -> list[dict[str, Any]]:
    """Each threshold the tier lists (meeting ANY one qualifies): have, need, missing."""
    qualify = tier.qualify
    assert qualify is not None
    found: list[dict[str, Any]] = []
    if qualify.litres is not None:
        missing = max(_ZERO, qualify.litres - activity.litres)
        found.append(
            {
                "unit": "litres",
                "have": decimal_text(activity.litres),
                "need": decimal_text(qualify.litres),
                "missing": decimal_text(missing),
            }
        )
    if qualify.amount is not None:
        have, need = fen(activity.amount), fen(qualify.amount)
        found.append(
            {"unit": "amount_fen", "have": have, "need": need, "missing": max(0, need - have)}
        )
    if qualify.visits is not None:
        found.append(
            {
                "unit": "visits",
                "have": activity.visits,
                "need": qualify.visits,
                "missing": max(0, qualify.visits - activity.visits),
            }
        )
    return found


def _leaving(
    sales: Sequence[WindowSale], days: int, now: datetime, zone: tzinfo
) -> list[dict[str, Any]]:
    """What leaves the window in the next LEAVING_DAYS days, per local date it leaves on."""
    span, horizon = timedelta(days=days), now + timedelta(days=LEAVING_DAYS)
    by_date: dict[str, list[Any]] = {}
    for sale in sales:
        leaves = sale.at + span
        if now < leaves <= horizon:
            day = by_date.setdefault(leaves.astimezone(zone).date().isoformat(), [_ZERO, _ZERO, 0])
            day[0] += sale.litres
            day[1] += sale.amount
            day[2] += 1
    return [
        {"date": day, "litres": decimal_text(v[0]), "amount_fen": fen(v[1]), "visits": v[2]}
        for day, v in sorted(by_date.items())
    ]


def _holds_until(
    ruleset: RuleSet, sales: Sequence[WindowSale], windows: Sequence[int], now: datetime, rank: int
) -> datetime | None:
    """The last moment the qualified tier (of `rank`) still holds if no sale comes: sales
    leave their windows one by one (window_days after they ended) until `qualified_tier`
    answers lower."""
    totals = {days: _Totals(_in_window(sales, days, now)) for days in windows}
    leaving = sorted(
        (
            (sale.at + timedelta(days=days), days, sale)
            for days in windows
            for sale in _in_window(sales, days, now)
        ),
        key=lambda item: (item[0], item[1]),
    )
    for when, days, sale in leaving:
        totals[days].add(sale, -1)
        activity = {d: t.activity() for d, t in totals.items()}
        if ruleset.tier_rank(qualified_tier(ruleset, activity)) < rank:
            return when
    return None  # unreachable with a finite history: the last sale's leaving drops the tier


def _activities(
    sales: Sequence[WindowSale], windows: Iterable[int], now: datetime
) -> dict[int, Activity]:
    return {days: _Totals(_in_window(sales, days, now)).activity() for days in windows}


def _named(tier: Tier) -> dict[str, str]:
    return {"code": tier.code, "name": tier.name}


def tier_progress(
    ruleset: RuleSet,
    sales: Sequence[WindowSale],
    *,
    registered_at: datetime,
    now: datetime,
    zone: tzinfo,
) -> dict[str, Any]:
    """The member's tier now (every sale so far counts, as the station's nightly job
    decides it), the next tier's thresholds against the member's activity, and what keeping
    the qualified tier depends on. `sales` must hold every standing sale of the longest
    window."""
    windows = sorted(qualification_windows(ruleset))
    activity = _activities(sales, windows, now)
    decision = tier_at(ruleset, activity_by_window=activity, registered_at=registered_at, at=now)
    held = ruleset.tier(decision.code)
    rank = ruleset.tier_rank(held.code)
    via = "qualified" if decision.code == decision.qualified else "trial"
    trial = ruleset.new_member_tier
    answer: dict[str, Any] = {
        "tier": {
            **_named(held),
            "rank": rank,
            "via": via,
            "trial_until": (
                (registered_at + timedelta(days=trial.days)).isoformat()
                if via == "trial" and trial is not None
                else None
            ),
            "qualified": _named(ruleset.tier(decision.qualified)),
        },
        "next": None,
        "keep": None,
    }
    if rank + 1 < len(ruleset.tiers):
        upper = ruleset.tiers[rank + 1]
        assert upper.qualify is not None  # every tier above the first qualifies
        days = upper.qualify.window_days
        answer["next"] = {
            **_named(upper),
            "window_days": days,
            "measures": _measures(upper, activity[days]),
            "leaving": _leaving(_in_window(sales, days, now), days, now, zone),
        }
    qualified = ruleset.tier(decision.qualified)
    if qualified.qualify is not None:
        days = qualified.qualify.window_days
        until = _holds_until(ruleset, sales, windows, now, ruleset.tier_rank(qualified.code))
        answer["keep"] = {
            **_named(qualified),
            "window_days": days,
            "holds_until": None if until is None else until.isoformat(),
            "measures": _measures(qualified, activity[days]),
            "leaving": _leaving(_in_window(sales, days, now), days, now, zone),
        }
    return answer
