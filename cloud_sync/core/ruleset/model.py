"""Rule sets: HQ's earning, tier and redemption rules as one validated, immutable value.

A rule set arrives as a JSON document (docs/contracts.md, section 4) and is validated by
`ruleset_parser`; this module holds the resulting model and the questions asked of it
(which set is in force, when points expire, what points are worth). It never imports the
parser, so the parser can build these values without a circular import. Pure: no clock,
no I/O.
"""

from __future__ import annotations

import calendar
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

__all__ = [
    "Bonus",
    "CheckinRule",
    "EarnRule",
    "Fault",
    "Grade",
    "Qualify",
    "RedeemPolicy",
    "RedemptionRefused",
    "Rounding",
    "RuleSet",
    "RuleSetError",
    "StreakBonus",
    "Tier",
    "TrialGrant",
    "canonical_json",
    "points_expire_at",
    "redemption_value_fen",
    "ruleset_in_force",
]

Rounding = Literal["floor", "half_up"]

# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Fault:
    """One problem in a rule-set document, located by JSON path."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class RuleSetError(ValueError):
    """A document was refused; `faults` lists every problem found, not just the first."""

    def __init__(self, faults: Iterable[Fault]) -> None:
        self.faults: tuple[Fault, ...] = tuple(faults)
        super().__init__("invalid rule set: " + "; ".join(str(f) for f in self.faults))

    def as_dicts(self) -> list[dict[str, str]]:
        """JSON-ready faults for an HTTP answer."""
        return [{"path": f.path, "message": f.message} for f in self.faults]


@dataclass(frozen=True)
class Grade:
    code: str
    name: str


@dataclass(frozen=True)
class EarnRule:
    """How one grade earns: per litre (the contract) or per yuan (our extension)."""

    grade: str
    points_per_litre: Decimal | None
    points_per_yuan: Decimal | None


@dataclass(frozen=True)
class Qualify:
    """Thresholds over a rolling window; meeting ANY listed threshold qualifies."""

    litres: Decimal | None
    amount: Decimal | None
    visits: int | None
    window_days: int


@dataclass(frozen=True)
class Tier:
    code: str
    name: str
    multiplier: Decimal
    discount_per_litre: Decimal
    qualify: Qualify | None  # None only for the first (default) tier


@dataclass(frozen=True)
class TrialGrant:
    code: str
    days: int


@dataclass(frozen=True)
class Bonus:
    """A campaign multiplier; it applies when ALL the conditions it lists hold."""

    name: str
    multiplier: Decimal
    weekdays: frozenset[int] | None
    dates: frozenset[date] | None
    min_amount: Decimal | None
    start_time: time | None
    end_time: time | None

    def applies(self, local_end: datetime, amount: Decimal) -> bool:
        """Judge the sale by its end time already in the rule set's zone.

        A time window whose end is not after its start wraps over midnight ("22:00" to
        "06:00"; "18:00" to "00:00" means until midnight). Each condition looks at the sale's
        own local date, so a wrapped window's early hours count as the next weekday.
        """
        if self.weekdays is not None and local_end.isoweekday() not in self.weekdays:
            return False
        if self.dates is not None and local_end.date() not in self.dates:
            return False
        if self.min_amount is not None and amount < self.min_amount:
            return False
        if self.start_time is not None and self.end_time is not None:
            now = local_end.time()
            if self.start_time < self.end_time:
                return self.start_time <= now < self.end_time
            return now >= self.start_time or now < self.end_time
        return True


@dataclass(frozen=True)
class RedeemPolicy:
    points_per_yuan: int
    min_points: int


@dataclass(frozen=True)
class StreakBonus:
    days: int
    bonus: int


@dataclass(frozen=True)
class CheckinRule:
    """The member app's daily check-in: `points` a day, and each streak entry's `bonus` on
    every day the run of consecutive days reaches a multiple of its `days` (7, 14, 21, …).

    The run never resets while the member checks in every day, so a 30-day entry beside a
    7-day one pays on day 30 and a 7-day bonus keeps coming every week. `daily_cap` is 1:
    one check-in a day is all the ledger books (the primary key is member and day).
    """

    points: int
    streak: tuple[StreakBonus, ...]
    daily_cap: int

    def bonus_for(self, streak: int) -> int:
        """The bonus of the day on which the run of consecutive days is `streak` long."""
        if streak < 1:
            raise ValueError("a streak counts today, so it is at least 1")
        return sum(entry.bonus for entry in self.streak if streak % entry.days == 0)


@dataclass(frozen=True)
class RuleSet:
    """A parsed, valid rule set. Build it with `ruleset_parser.parse_ruleset`, never by hand."""

    version: int
    name: str
    effective_from: datetime
    timezone: str
    grades: Mapping[str, Grade]
    earn: Mapping[str, EarnRule]
    tiers: tuple[Tier, ...]
    new_member_tier: TrialGrant | None
    bonuses: tuple[Bonus, ...]
    redeem: RedeemPolicy
    rounding: Rounding
    expiry_months: int | None
    checkin: CheckinRule | None  # None: the member app's check-in is off
    document: Mapping[str, Any] = field(compare=False, repr=False)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local(self, at: datetime) -> datetime:
        """`at` as wall time in the rule set's zone, where weekdays and dates are judged."""
        _require_aware(at, "at")
        return at.astimezone(self.zone)

    def tier(self, code: str) -> Tier:
        for tier in self.tiers:
            if tier.code == code:
                return tier
        known = ", ".join(t.code for t in self.tiers)
        raise KeyError(f"unknown tier {code!r} in rule set version {self.version} ({known})")

    def tier_rank(self, code: str) -> int:
        """Index in `tiers`: higher ranks are better tiers."""
        for rank, tier in enumerate(self.tiers):
            if tier.code == code:
                return rank
        known = ", ".join(t.code for t in self.tiers)
        raise KeyError(f"unknown tier {code!r} in rule set version {self.version} ({known})")


# --------------------------------------------------------------------------- documents


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """Stable UTF-8 bytes of a document for signing: sorted keys, no spaces, exact decimals.

    The stdlib encoder cannot write a Decimal as a number, and the document keeps numbers
    as Decimal so they stay exact; this writes them as JSON numbers unchanged.
    """
    return _encode(document).encode("utf-8")


def _encode(value: object) -> str:
    text: str
    if value is None or isinstance(value, bool | int | str):
        # json writes these exactly (bool before int: True is an int in Python).
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("a JSON number must be finite")
        text = str(value)
    elif isinstance(value, Mapping):
        items = sorted(((str(k), v) for k, v in value.items()), key=lambda kv: kv[0])
        text = "{" + ",".join(f"{_encode(k)}:{_encode(v)}" for k, v in items) + "}"
    elif isinstance(value, list | tuple):
        text = "[" + ",".join(_encode(v) for v in value) + "]"
    else:
        raise TypeError(f"cannot encode {type(value).__name__} in a rule set document")
    return text


# --------------------------------------------------------------------------- selection


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment.isoformat()}")


def ruleset_in_force(rulesets: Iterable[RuleSet], at: datetime) -> RuleSet | None:
    """The latest effective_from not after `at`; on equal dates the higher version wins."""
    _require_aware(at, "at")
    best: RuleSet | None = None
    for candidate in rulesets:
        if candidate.effective_from > at:
            continue
        if best is None or (candidate.effective_from, candidate.version) > (
            best.effective_from,
            best.version,
        ):
            best = candidate
    return best


def points_expire_at(ruleset: RuleSet, earned_at: datetime) -> datetime | None:
    """earned_at plus expiry_months calendar months, at the same local wall time.

    Months are counted in the rule set's zone so "12 months" means the same date a year
    later on the members' own calendar; the day is clamped to the month's last day
    (31 Jan + 1 month = 28/29 Feb).
    """
    if ruleset.expiry_months is None:
        return None
    local = ruleset.local(earned_at)
    month_index = local.month - 1 + ruleset.expiry_months
    year = local.year + month_index // 12
    month = month_index % 12 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    moved = local.replace(year=year, month=month, day=day, fold=0)
    # A round trip through UTC turns a wall time that a DST gap skips into a real instant.
    return moved.astimezone(UTC).astimezone(ruleset.zone)


# --------------------------------------------------------------------------- redemption


class RedemptionRefused(ValueError):
    """Points that cannot be redeemed; `code` is stable for programs, str() is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def redemption_value_fen(ruleset: RuleSet, points: int) -> int:
    """Fen off for `points`; refuse amounts that are too small or not a whole number of fen."""
    if isinstance(points, bool) or not isinstance(points, int):
        raise TypeError("points must be an integer")
    policy = ruleset.redeem
    if points <= 0:
        raise RedemptionRefused("redeem.not_positive", "points to redeem must be positive")
    if points < policy.min_points:
        raise RedemptionRefused(
            "redeem.min_points",
            f"at least {policy.min_points} points must be redeemed at once, got {points}",
        )
    fen, remainder = divmod(points * 100, policy.points_per_yuan)
    if remainder:
        step = policy.points_per_yuan // math.gcd(100, policy.points_per_yuan)
        raise RedemptionRefused(
            "redeem.not_whole_fen",
            f"points must be a multiple of {step} ({policy.points_per_yuan} points buy "
            f"1 yuan), got {points}",
        )
    return fen
