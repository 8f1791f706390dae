"""A member's tier and the way to the next one, from the sales in the qualification windows.

The tier itself is decided by the shared pure functions (`cloud_sync.core.tiers`: the same
`tier_at` every station prices with); this module only sums the member's sales per window,
as the station's store does (standing sales ending in [now - window_days, now]), and asks
those functions again as sales leave the windows, to say until when the tier holds and what
drops out on which date. Pure: the caller reads the sales, no clock, no I/O.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from itertools import accumulate
from typing import Any

from cloud_sync.core.ruleset import RuleSet, Tier
from cloud_sync.core.tiers import Activity, qualification_windows, qualified_tier, tier_at

__all__ = ["LEAVING_DAYS", "WindowSale", "decimal_text", "fen", "tier_progress"]

LEAVING_DAYS = 30  # how far ahead the answer lists what leaves the windows, by date
_ZERO = Decimal(0)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_DAY_US = 86_400_000_000


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


def _micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch, exactly: the sales are sorted and searched as
    integers (an aware datetime's every comparison asks its zone again)."""
    return (moment - _EPOCH) // _MICROSECOND


def _moment(micros: int, zone: tzinfo) -> datetime:
    return (_EPOCH + timedelta(microseconds=micros)).astimezone(zone)


class _History:
    """The member's sales in end-time order with running sums, so the activity of any
    window (now, or once some sales have left it) is two binary searches away."""

    def __init__(self, sales: Iterable[WindowSale], now: datetime) -> None:
        now_us = _micros(now)
        keyed = sorted(((_micros(sale.at), sale) for sale in sales), key=lambda item: item[0])
        keyed = [(at, sale) for at, sale in keyed if at <= now_us]
        self.now = now_us
        self.ats = [at for at, _ in keyed]
        self.sales = [sale for _, sale in keyed]
        self.litres = list(accumulate((sale.litres for sale in self.sales), initial=_ZERO))
        self.amount = list(accumulate((sale.amount for sale in self.sales), initial=_ZERO))

    def _from(self, first: int) -> Activity:
        last = len(self.ats)
        return Activity(
            litres=self.litres[last] - self.litres[first],
            amount=self.amount[last] - self.amount[first],
            visits=last - first,
        )

    def first_in(self, days: int) -> int:
        """Index of the first sale in [now - days, now]."""
        return bisect_left(self.ats, self.now - days * _DAY_US)

    def window(self, days: int) -> Activity:
        return self._from(self.first_in(days))

    def after(self, moment: int, days: int) -> Activity:
        """The window's activity just after `moment` if no sale comes: sales that ended at
        or before `moment - days` have left it."""
        return self._from(bisect_right(self.ats, moment - days * _DAY_US))


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


def _leaving(history: _History, days: int, zone: tzinfo) -> list[dict[str, Any]]:
    """What leaves the window in the next LEAVING_DAYS days, per local date it leaves on."""
    span = days * _DAY_US
    first = history.first_in(days)
    last = bisect_right(history.ats, history.now - span + LEAVING_DAYS * _DAY_US)
    by_date: dict[str, list[Any]] = {}
    for at, sale in zip(history.ats[first:last], history.sales[first:last], strict=True):
        if at + span <= history.now:
            continue  # leaves this very moment: it counts no more after now
        day = _moment(at + span, zone).date().isoformat()
        totals = by_date.setdefault(day, [_ZERO, _ZERO, 0])
        totals[0] += sale.litres
        totals[1] += sale.amount
        totals[2] += 1
    return [
        {"date": day, "litres": decimal_text(v[0]), "amount_fen": fen(v[1]), "visits": v[2]}
        for day, v in sorted(by_date.items())
    ]


def _holds_until(
    ruleset: RuleSet, history: _History, windows: Sequence[int], rank: int, zone: tzinfo
) -> datetime | None:
    """The last moment the qualified tier (of `rank`) still holds if no sale comes.

    Sales leave their windows `window_days` after they ended; with no new sale the
    activity only falls, so the answer is the first leaving moment after which
    `qualified_tier` answers lower: a binary search over those moments."""
    moments = sorted(
        {at + days * _DAY_US for days in windows for at in history.ats[history.first_in(days) :]}
    )

    def holds_after(moment: int) -> bool:
        activity = {days: history.after(moment, days) for days in windows}
        return ruleset.tier_rank(qualified_tier(ruleset, activity)) >= rank

    low, high = 0, len(moments)
    while low < high:
        middle = (low + high) // 2
        if holds_after(moments[middle]):
            low = middle + 1
        else:
            high = middle
    return _moment(moments[low], zone) if low < len(moments) else None


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
    history = _History(sales, now)
    activity = {days: history.window(days) for days in windows}
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
            "leaving": _leaving(history, days, zone),
        }
    qualified = ruleset.tier(decision.qualified)
    if qualified.qualify is not None:
        days = qualified.qualify.window_days
        rank_kept = ruleset.tier_rank(qualified.code)
        until = _holds_until(ruleset, history, windows, rank_kept, zone)
        answer["keep"] = {
            **_named(qualified),
            "window_days": days,
            "holds_until": None if until is None else until.isoformat(),
            "measures": _measures(qualified, activity[days]),
            "leaving": _leaving(history, days, zone),
        }
    return answer
