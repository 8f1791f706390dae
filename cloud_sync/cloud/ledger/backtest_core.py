"""The backtest's pure core: price past sales under the rules of their time and a draft.

No I/O: sales go in one at a time (in end-time order), totals come out. Points come from
the stations' own pricing (`core.pricing`): `price_sale` for the sample receipts, and for
the bulk a cached form of the same sum — per (rule set, grade, tier) the factor
points_per_litre x tier multiplier, then `applicable_bonus` (the shared function) and one
rounding, in exact Decimal arithmetic, so the product and its single rounding equal
`price_sale`'s (tests compare both on every seeded sale). Yuan cost = points / the rule
set's redeem.points_per_yuan, in integer fen, rounded half up once per figure.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import (
    ROUND_DOWN,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)
from fractions import Fraction
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from cloud_sync.core.pricing import SaleFacts, applicable_bonus, price_sale
from cloud_sync.core.ruleset import RuleSet
from cloud_sync.core.tiers import Activity, qualification_windows, tier_at

__all__ = ["BacktestCore", "FastPricer", "PastSale", "fen_of"]

_ROUNDINGS = {"floor": ROUND_DOWN, "half_up": ROUND_HALF_UP}
_ZERO = Decimal(0)
_ONE = Decimal(1)
TOP_MEMBERS = 20
SAMPLE_RECEIPTS = 20
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _exact() -> Context:
    return Context(
        prec=100,
        rounding=ROUND_HALF_EVEN,
        traps=[InvalidOperation, DivisionByZero, Overflow, Inexact],
    )


def fen_of(points_by_rate: dict[int, int]) -> int:
    """sum(points / points_per_yuan) yuan in fen, half up, rounded once."""
    total = sum((Fraction(p * 100, rate) for rate, p in points_by_rate.items()), Fraction(0))
    return int((total + Fraction(1, 2)).__floor__())


class FastPricer:
    """`price_sale(...).points` with its per-(rule set, grade, tier) inputs computed once.

    The bonus is `applicable_bonus` itself, memoised per (rule set, local date) when no
    bonus of the rule set looks at the time of day or the amount (then it depends on the
    date alone); otherwise asked per sale.
    """

    def __init__(self) -> None:
        self._ctx = _exact()
        self._factors: dict[tuple[int, int, str, str], tuple[bool, Decimal]] = {}
        self._by_day: dict[int, bool] = {}
        self._bonus: dict[tuple[int, date], Decimal] = {}
        self._zones: dict[str, ZoneInfo] = {}
        self._last: tuple[datetime | None, str, datetime | None] = (None, "", None)

    def _factor(self, rs: RuleSet, grade: str, tier: str) -> tuple[bool, Decimal]:
        key = (id(rs), rs.version, grade, tier)
        found = self._factors.get(key)
        if found is None:
            multiplier = rs.tier(tier).multiplier  # KeyError on an unknown tier, as price_sale
            rule = rs.earn.get(grade)
            if rule is None:
                found = (True, _ZERO)
            elif rule.points_per_litre is not None:
                found = (True, self._ctx.multiply(rule.points_per_litre, multiplier))
            else:
                per_yuan = rule.points_per_yuan if rule.points_per_yuan is not None else _ZERO
                found = (False, self._ctx.multiply(per_yuan, multiplier))
            self._factors[key] = found
        return found

    def local(self, zone_name: str, at: datetime) -> datetime:
        last_at, last_zone, last_local = self._last
        if last_at is at and last_zone == zone_name and last_local is not None:
            return last_local
        zone = self._zones.get(zone_name)
        if zone is None:
            zone = self._zones.setdefault(zone_name, ZoneInfo(zone_name))
        local = at.astimezone(zone)
        self._last = (at, zone_name, local)
        return local

    def _multiplier(self, rs: RuleSet, at: datetime, amount: Decimal) -> Decimal:
        by_day = self._by_day.get(id(rs))
        if by_day is None:
            by_day = all(
                b.min_amount is None and b.start_time is None and b.end_time is None
                for b in rs.bonuses
            )
            self._by_day[id(rs)] = by_day
        if not by_day:
            bonus = applicable_bonus(rs, at, amount)
            return _ONE if bonus is None else bonus.multiplier
        key = (id(rs), self.local(rs.timezone, at).date())
        found = self._bonus.get(key)
        if found is None:
            bonus = applicable_bonus(rs, at, amount)
            found = self._bonus.setdefault(key, _ONE if bonus is None else bonus.multiplier)
        return found

    def points(
        self, rs: RuleSet, grade: str, tier: str, litres: Decimal, amount: Decimal, at: datetime
    ) -> int:
        per_litre, factor = self._factor(rs, grade, tier)
        if not factor:
            return 0
        ctx = self._ctx
        exact = ctx.multiply(litres if per_litre else amount, factor)
        if rs.bonuses:
            multiplier = self._multiplier(rs, at, amount)
            if multiplier != _ONE:
                exact = ctx.multiply(exact, multiplier)
        return int(exact.to_integral_value(rounding=_ROUNDINGS[rs.rounding], context=ctx))


class PastSale(NamedTuple):
    """A sale as the ledger holds it; `tier` and `ruleset` are what the station priced with."""

    sale_id: str
    station_id: str
    member_id: str | None
    grade: str
    litres: Decimal
    amount: Decimal
    ended_at: datetime
    points: int  # the station's own receipt
    tier: str | None
    ruleset: RuleSet | None
    registered_at: datetime | None


@dataclass
class _Bucket:
    sales: int = 0
    member_sales: int = 0
    booked: int = 0
    current: int = 0
    draft: int = 0
    draft_requalified: int = 0
    current_by_rate: dict[int, int] = field(default_factory=dict)

    def add(self, cell: list[int], rate: int) -> None:
        self.sales += cell[0]
        self.member_sales += cell[1]
        self.booked += cell[2]
        self.current += cell[3]
        self.draft += cell[4]
        self.draft_requalified += cell[5]
        if rate:
            self.current_by_rate[rate] = self.current_by_rate.get(rate, 0) + cell[3]

    def row(self, key: str, draft_rate: int) -> dict[str, Any]:
        return {
            "key": key,
            "sales": self.sales,
            "member_sales": self.member_sales,
            "booked_points": self.booked,
            "current_points": self.current,
            "draft_points": self.draft,
            "draft_requalified_points": self.draft_requalified,
            "diff_points": self.draft - self.current,
            "diff_requalified_points": self.draft_requalified - self.current,
            "current_fen": fen_of(self.current_by_rate),
            "draft_fen": fen_of({draft_rate: self.draft}),
            "draft_requalified_fen": fen_of({draft_rate: self.draft_requalified}),
        }


class BacktestCore:
    """Feed `lead_in` sales (before the window: they only count toward tiers) and `sale`s
    in end-time order; `result()` gives every figure of hq-console.md's backtest."""

    def __init__(self, draft: RuleSet, in_force_at_end: RuleSet | None) -> None:
        self.draft = draft
        self.end_rules = in_force_at_end
        self.pricer = FastPricer()
        self._rate = draft.redeem.points_per_yuan
        windows = set(qualification_windows(draft))
        if in_force_at_end is not None:
            windows |= qualification_windows(in_force_at_end)
        self._draft_windows = sorted(qualification_windows(draft))
        self.keep = timedelta(days=max(windows, default=0))
        self._requalify = bool(self._draft_windows) or draft.new_member_tier is not None
        self._history: dict[str, deque[tuple[datetime, Decimal, Decimal]]] = {}
        self._registered: dict[str, datetime] = {}
        self._draft_codes = frozenset(t.code for t in draft.tiers)
        self._window_cache: dict[int, list[tuple[int, timedelta]]] = {}
        # Accumulators [sales, member sales, booked, current, draft, requalified] per
        # (grade, station, tier, points_per_yuan in force) and per (local date, hour,
        # points_per_yuan): two updates a sale; the six tables are rolled up at the end.
        self._what: dict[tuple[Any, ...], list[int]] = {}
        self._when: dict[tuple[Any, ...], list[int]] = {}
        self._members: dict[str, list[int]] = {}  # member -> [current, draft, sales]
        self.samples: list[dict[str, Any]] = []
        self.unpriced = 0  # sales whose rule set or tier the ledger cannot price

    # ---------------------------------------------------------------- tiers
    def _remember(self, sale: PastSale) -> None:
        if sale.member_id is None or not self.keep:
            return
        history = self._history.setdefault(sale.member_id, deque())
        history.append((sale.ended_at, sale.litres, sale.amount))
        while history and history[0][0] < sale.ended_at - self.keep:
            history.popleft()
        if sale.registered_at is not None:
            self._registered[sale.member_id] = sale.registered_at

    def _windows(self, rs: RuleSet) -> list[tuple[int, timedelta]]:
        found = self._window_cache.get(id(rs))
        if found is None:
            found = [(d, timedelta(days=d)) for d in sorted(qualification_windows(rs))]
            self._window_cache[id(rs)] = found
        return found

    def _activity(self, member_id: str, rs: RuleSet, at: datetime) -> dict[int, Activity]:
        history = self._history.get(member_id, deque())
        out = {}
        for days, span in self._windows(rs):
            start = at - span
            litres, amount, visits = _ZERO, _ZERO, 0
            for when, lit, amt in history:
                if start <= when < at:
                    litres += lit
                    amount += amt
                    visits += 1
            out[days] = Activity(litres=litres, amount=amount, visits=visits)
        return out

    def _tier(self, rs: RuleSet, member_id: str, registered: datetime | None, at: datetime) -> str:
        return tier_at(
            rs,
            activity_by_window=self._activity(member_id, rs, at),
            registered_at=registered or at - timedelta(days=36500),
            at=at,
        ).code

    def lead_in(self, sale: PastSale) -> None:
        self._remember(sale)

    # ---------------------------------------------------------------- pricing
    def _draft_tier(self, tier: str | None) -> str:
        if tier is not None and tier in self._draft_codes:
            return tier
        return self.draft.tiers[0].code

    def sale(self, sale: PastSale) -> None:
        local = self.pricer.local(self.draft.timezone, sale.ended_at)
        current = draft = requalified = 0
        rate = 0
        member = sale.member_id
        if member is not None:
            rs = sale.ruleset
            if rs is None or sale.tier is None:
                self.unpriced += 1
            else:
                try:
                    current = self.pricer.points(
                        rs, sale.grade, sale.tier, sale.litres, sale.amount, sale.ended_at
                    )
                    rate = rs.redeem.points_per_yuan
                except KeyError:
                    self.unpriced += 1
            as_was = self._draft_tier(sale.tier)
            draft = self.pricer.points(
                self.draft, sale.grade, as_was, sale.litres, sale.amount, sale.ended_at
            )
            new_tier = as_was
            if self._requalify:
                new_tier = self._tier(self.draft, member, sale.registered_at, sale.ended_at)
            requalified = (
                draft
                if new_tier == as_was
                else self.pricer.points(
                    self.draft, sale.grade, new_tier, sale.litres, sale.amount, sale.ended_at
                )
            )
            mine = self._members.get(member)
            if mine is None:
                mine = self._members.setdefault(member, [0, 0, 0, 0])
            mine[0] += current
            mine[1] += draft
            mine[2] += requalified
            mine[3] += 1
            if len(self.samples) < SAMPLE_RECEIPTS and rs is not None and rate:
                self._sample(sale, rs, as_was, new_tier)
        for cells, key in (
            (self._what, (sale.grade, sale.station_id, sale.tier or "-", rate)),
            (self._when, (local.date(), local.hour, rate)),
        ):
            cell = cells.get(key)
            if cell is None:
                cell = cells.setdefault(key, [0, 0, 0, 0, 0, 0])
            cell[0] += 1
            if member is not None:
                cell[1] += 1
                cell[2] += sale.points
                cell[3] += current
                cell[4] += draft
                cell[5] += requalified
        if member is not None:
            self._remember(sale)

    def _sample(self, sale: PastSale, rs: RuleSet, as_was: str, new_tier: str) -> None:
        facts = SaleFacts(sale.grade, sale.litres, sale.amount, sale.ended_at)
        assert sale.tier is not None
        self.samples.append(
            {
                "sale_id": sale.sale_id,
                "station_id": sale.station_id,
                "member_id": sale.member_id,
                "grade": sale.grade,
                "litres": str(sale.litres),
                "amount": str(sale.amount),
                "ended_at": sale.ended_at.isoformat(),
                "booked_points": sale.points,
                "current": price_sale(rs, facts, sale.tier).to_dict(),
                "draft": price_sale(self.draft, facts, as_was).to_dict(),
                "draft_requalified": price_sale(self.draft, facts, new_tier).to_dict(),
            }
        )

    # ---------------------------------------------------------------- result
    def _tier_changes(self, at: datetime) -> list[dict[str, Any]]:
        if self.end_rules is None:
            return []
        out = []
        for member in sorted(self._members):
            registered = self._registered.get(member)
            now_tier = self._tier(self.end_rules, member, registered, at)
            draft_tier = self._tier(self.draft, member, registered, at)
            if now_tier != draft_tier:
                out.append(
                    {"member_id": member, "current_tier": now_tier, "draft_tier": draft_tier}
                )
        return out

    def _rolled(self) -> tuple[_Bucket, dict[str, dict[str, _Bucket]]]:
        total = _Bucket()
        tables: dict[str, dict[str, _Bucket]] = {
            k: {} for k in ("grade", "station", "tier", "weekday", "hour", "day")
        }
        for (grade, station, tier, rate), cell in self._what.items():
            total.add(cell, rate)
            for name, label in (("grade", grade), ("station", station), ("tier", tier)):
                tables[name].setdefault(label, _Bucket()).add(cell, rate)
        for (day, hour, rate), cell in self._when.items():
            labels = (
                ("weekday", f"{day.isoweekday()} {_WEEKDAYS[day.weekday()]}"),
                ("hour", f"{hour:02d}"),
                ("day", day.isoformat()),
            )
            for name, label in labels:
                tables[name].setdefault(label, _Bucket()).add(cell, rate)
        return total, tables

    def result(self, window_end: datetime) -> dict[str, Any]:
        rate = self._rate
        total, tables = self._rolled()
        top = sorted(self._members.items(), key=lambda kv: (-abs(kv[1][1] - kv[1][0]), kv[0]))[
            :TOP_MEMBERS
        ]
        return {
            "rounding": "yuan cost = points / redeem.points_per_yuan of each rule set, "
            "in integer fen, rounded half up once per figure",
            "draft_points_per_yuan": rate,
            "totals": {**total.row("all", rate), "unpriced_sales": self.unpriced},
            "by": {
                name: [b.row(key, rate) for key, b in sorted(found.items())]
                for name, found in tables.items()
            },
            "tier_changes": self._tier_changes(window_end),
            "top_members": [
                {
                    "member_id": m,
                    "sales": v[3],
                    "current_points": v[0],
                    "draft_points": v[1],
                    "draft_requalified_points": v[2],
                    "diff_points": v[1] - v[0],
                }
                for m, v in top
            ],
            "samples": self.samples,
        }
