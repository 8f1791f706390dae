"""Rule sets: HQ's earning, tier and redemption rules as one validated, immutable value.

A rule set arrives as a JSON document (contracts.md section 3). Parsing checks the whole
document and reports every fault with its JSON path, so HQ fixes a draft in one pass and a
typo never silently changes how points are earned. Pure: no clock, no I/O.
"""

from __future__ import annotations

import calendar
import difflib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import partial
from types import MappingProxyType
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "Bonus",
    "EarnRule",
    "Fault",
    "Grade",
    "Qualify",
    "RedeemPolicy",
    "RedemptionRefused",
    "Rounding",
    "RuleSet",
    "RuleSetError",
    "Tier",
    "TrialGrant",
    "canonical_json",
    "parse_ruleset",
    "parse_ruleset_json",
    "points_expire_at",
    "redemption_value_fen",
    "ruleset_in_force",
]

Rounding = Literal["floor", "half_up"]
_T = TypeVar("_T")

# Bounds that no real chain reaches; they catch a slipped digit before it reaches a pump.
_MAX_VERSION = 1_000_000_000
_MAX_POINTS_PER_LITRE = Decimal(1000)
_MAX_POINTS_PER_YUAN = Decimal(1000)
_MAX_MULTIPLIER = Decimal(100)
_MAX_DISCOUNT_PER_LITRE = Decimal(10)
_MAX_LITRES = Decimal(10_000_000)
_MAX_AMOUNT = Decimal(1_000_000_000)
_MAX_VISITS = 1_000_000
_MAX_WINDOW_DAYS = 3660
_MAX_TRIAL_DAYS = 3660
_MAX_EXPIRY_MONTHS = 600
_MAX_POINTS_PER_YUAN_REDEEM = 1_000_000
_MAX_MIN_POINTS = 1_000_000_000
_MAX_DECIMAL_PLACES = 6


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
class RuleSet:
    """A parsed, valid rule set. Build it with `parse_ruleset`, never by hand."""

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


# --------------------------------------------------------------------------- validation

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?\Z")
_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_TIME_TEXT = re.compile(r"[0-9]{2}:[0-9]{2}(:[0-9]{2})?\Z")
_THRESHOLD_KINDS = ("litres", "amount", "visits")


class _JsonObject(dict[str, Any]):
    """A JSON object that remembers keys the text gave twice (json keeps only the last)."""

    duplicate_keys: tuple[str, ...] = ()


def _object_pairs(pairs: list[tuple[str, Any]]) -> _JsonObject:
    obj = _JsonObject(pairs)
    seen: set[str] = set()
    duplicates: list[str] = []
    for key, _ in pairs:
        if key in seen and key not in duplicates:
            duplicates.append(key)
        seen.add(key)
    obj.duplicate_keys = tuple(duplicates)
    return obj


def _key_path(parent: str, key: str) -> str:
    if _IDENT.match(key):
        return f"{parent}.{key}"
    escaped = key.replace("\\", "\\\\").replace("'", "\\'")
    return f"{parent}['{escaped}']"


class _Checker:
    """Collects faults while walking the document; every check carries on after a fault."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def fault(self, path: str, message: str) -> None:
        self.faults.append(Fault(path, message))

    def obj(
        self,
        value: object,
        path: str,
        *,
        required: tuple[str, ...] = (),
        optional: tuple[str, ...] = (),
    ) -> dict[str, object] | None:
        """Check an object's keys: required present, nothing unknown (typos do not pass)."""
        if not isinstance(value, Mapping):
            self.fault(path, "must be a JSON object")
            return None
        self.duplicates(value, path)
        known = required + optional
        result: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                self.fault(path, f"has a key that is not a string: {key!r}")
                continue
            if key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                suffix = f"; did you mean {hint[0]!r}?" if hint else ""
                self.fault(_key_path(path, key), "unknown key" + suffix)
                continue
            result[key] = item
        for key in required:
            if key not in value:
                self.fault(_key_path(path, key), "is required")
        return result

    def duplicates(self, value: Mapping[Any, Any], path: str) -> None:
        for key in getattr(value, "duplicate_keys", ()):
            self.fault(_key_path(path, key), "appears more than once in the object")

    def check(self, path: str, convert: Callable[[], _T]) -> _T | None:
        """Run one conversion; an _Invalid becomes a fault at `path` and the walk goes on."""
        try:
            return convert()
        except _Invalid as exc:
            self.fault(path, str(exc))
            return None

    def text(self, value: object, path: str, *, max_len: int = 200) -> str | None:
        return self.check(path, lambda: _as_text(value, max_len))

    def code(self, value: object, path: str) -> str | None:
        return self.check(path, lambda: _as_code(value))

    def integer(self, value: object, path: str, *, low: int, high: int) -> int | None:
        return self.check(path, lambda: _as_int(value, low, high))

    def decimal(
        self, value: object, path: str, *, high: Decimal, positive: bool = False
    ) -> Decimal | None:
        return self.check(path, lambda: _as_decimal(value, high, positive=positive))


class _Invalid(ValueError):
    """Internal: one value is wrong; the message becomes a Fault."""


def _as_text(value: object, max_len: int = 200) -> str:
    if not isinstance(value, str):
        raise _Invalid("must be a string")
    if not value.strip():
        raise _Invalid("must not be empty")
    if len(value) > max_len:
        raise _Invalid(f"must be at most {max_len} characters")
    return value


def _as_code(value: object) -> str:
    text = _as_text(value, 32)
    if text != text.strip():
        raise _Invalid("must not start or end with spaces")
    return text


def _as_int(value: object, low: int, high: int) -> int:
    # bool is an int subclass in Python, but `true` is never a count in a rule set.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid("must be an integer")
    if value < low:
        raise _Invalid(f"must be at least {low}")
    if value > high:
        raise _Invalid(f"must be at most {high}")
    return value


def _to_decimal(value: object) -> Decimal:
    """Accept a decimal string ("1.5"), an integer, or a number already parsed as Decimal."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise _Invalid("must be a finite number")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str) and _DECIMAL_TEXT.match(value):
        return Decimal(value)
    if isinstance(value, float):
        raise _Invalid('is a binary float; write it as a string such as "1.5" or parse as Decimal')
    raise _Invalid('must be a decimal number such as "1.5"')


def _as_decimal(value: object, high: Decimal, *, positive: bool = False) -> Decimal:
    number = _to_decimal(value)
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > _MAX_DECIMAL_PLACES:
        raise _Invalid(f"must have at most {_MAX_DECIMAL_PLACES} decimal places")
    if number < 0:
        raise _Invalid("must not be negative")
    if positive and number == 0:
        raise _Invalid("must be greater than 0")
    if number > high:
        raise _Invalid(f"must be at most {high}")
    return number


def _parse_grades(c: _Checker, value: object) -> dict[str, Grade] | None:
    path = "$.grades"
    if not isinstance(value, Mapping):
        c.fault(path, "must be a JSON object of grade code -> {name}")
        return None
    c.duplicates(value, path)
    if not value:
        c.fault(path, "must list at least one grade")
        return None
    grades: dict[str, Grade] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            c.fault(path, f"has a key that is not a string: {key!r}")
            continue
        item_path = _key_path(path, key)
        code = c.code(key, item_path)
        body = c.obj(item, item_path, required=("name",))
        name = c.text(body["name"], item_path + ".name") if body and "name" in body else None
        if code is not None and name is not None:
            grades[code] = Grade(code=code, name=name)
    return grades


def _grade_codes(value: object) -> set[str] | None:
    """Grade codes the document names, even when a grade's body is faulty (less noise)."""
    if isinstance(value, Mapping):
        return {k for k in value if isinstance(k, str)}
    return None


def _parse_earn(c: _Checker, value: object, grade_codes: set[str] | None) -> dict[str, EarnRule]:
    rules: dict[str, EarnRule] = {}
    if not isinstance(value, list):
        c.fault("$.earn", "must be a list")
        return rules
    seen: set[str] = set()
    for i, item in enumerate(value):
        path = f"$.earn[{i}]"
        body = c.obj(
            item, path, required=("grade",), optional=("points_per_litre", "points_per_yuan")
        )
        if body is None:
            continue
        grade = c.code(body["grade"], path + ".grade") if "grade" in body else None
        if grade is not None:
            if grade_codes and grade not in grade_codes:
                known = ", ".join(sorted(grade_codes))
                c.fault(path + ".grade", f"unknown grade {grade!r}; grades are {known}")
                grade = None
            elif grade in seen:
                c.fault(path + ".grade", f"grade {grade!r} already has an earn rule")
                grade = None
            else:
                seen.add(grade)
        has_litre = body.get("points_per_litre") is not None
        has_yuan = body.get("points_per_yuan") is not None
        if has_litre == has_yuan:
            c.fault(path, "must set exactly one of points_per_litre and points_per_yuan")
            continue
        per_litre = per_yuan = None
        if has_litre:
            per_litre = c.decimal(
                body["points_per_litre"], path + ".points_per_litre", high=_MAX_POINTS_PER_LITRE
            )
            ok = per_litre is not None
        else:
            per_yuan = c.decimal(
                body["points_per_yuan"], path + ".points_per_yuan", high=_MAX_POINTS_PER_YUAN
            )
            ok = per_yuan is not None
        if grade is not None and ok:
            rules[grade] = EarnRule(
                grade=grade, points_per_litre=per_litre, points_per_yuan=per_yuan
            )
    return rules


def _parse_qualify(c: _Checker, value: object, path: str) -> Qualify | None:
    body = c.obj(value, path, required=("window_days",), optional=_THRESHOLD_KINDS)
    if body is None:
        return None
    before = len(c.faults)
    window = (
        c.integer(body["window_days"], path + ".window_days", low=1, high=_MAX_WINDOW_DAYS)
        if "window_days" in body
        else None
    )
    litres = amount = None
    visits = None
    if body.get("litres") is not None:
        litres = c.decimal(body["litres"], path + ".litres", high=_MAX_LITRES, positive=True)
    if body.get("amount") is not None:
        amount = c.decimal(body["amount"], path + ".amount", high=_MAX_AMOUNT, positive=True)
    if body.get("visits") is not None:
        visits = c.integer(body["visits"], path + ".visits", low=1, high=_MAX_VISITS)
    if all(body.get(kind) is None for kind in _THRESHOLD_KINDS):
        c.fault(path, "must set at least one threshold: litres, amount or visits")
    if len(c.faults) != before or window is None:
        return None
    return Qualify(litres=litres, amount=amount, visits=visits, window_days=window)


def _parse_tiers(c: _Checker, value: object) -> list[Tier | None]:
    """Parse tiers; a faulty tier stays as None so later indexes keep their paths."""
    if not isinstance(value, list):
        c.fault("$.tiers", "must be a list")
        return []
    if not value:
        c.fault("$.tiers", "must list at least one tier")
        return []
    tiers: list[Tier | None] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        path = f"$.tiers[{i}]"
        body = c.obj(
            item,
            path,
            required=("code", "name", "multiplier"),
            optional=("discount_per_litre", "qualify"),
        )
        if body is None:
            tiers.append(None)
            continue
        before = len(c.faults)
        code = c.code(body["code"], path + ".code") if "code" in body else None
        if code is not None:
            if code in seen:
                c.fault(path + ".code", f"tier code {code!r} is used twice")
            seen.add(code)
        name = c.text(body["name"], path + ".name") if "name" in body else None
        multiplier = (
            c.decimal(body["multiplier"], path + ".multiplier", high=_MAX_MULTIPLIER, positive=True)
            if "multiplier" in body
            else None
        )
        discount = c.decimal(
            body.get("discount_per_litre", 0),
            path + ".discount_per_litre",
            high=_MAX_DISCOUNT_PER_LITRE,
        )
        qualify: Qualify | None = None
        raw_qualify = body.get("qualify")
        if i == 0:
            if raw_qualify is not None:
                c.fault(path + ".qualify", "the first tier is the default and takes no qualify")
        elif raw_qualify is None:
            c.fault(path + ".qualify", "is required on every tier above the first")
        else:
            qualify = _parse_qualify(c, raw_qualify, path + ".qualify")
        if (
            len(c.faults) != before
            or code is None
            or name is None
            or multiplier is None
            or discount is None
        ):
            tiers.append(None)
            continue
        tiers.append(
            Tier(
                code=code,
                name=name,
                multiplier=multiplier,
                discount_per_litre=discount,
                qualify=qualify,
            )
        )
    _check_thresholds_rise(c, tiers)
    return tiers


def _check_thresholds_rise(c: _Checker, tiers: list[Tier | None]) -> None:
    """A higher tier must not be easier to reach than a lower one on the same measure.

    Thresholds are compared when the higher tier's window is at least as long: then a lower
    number there is a sure mistake (the lower tier could never be held on that measure). A
    lower number over a shorter window can be a real, harder rule, so it is allowed.
    """
    for kind in _THRESHOLD_KINDS:
        previous: tuple[Tier, Decimal, int] | None = None
        for i, tier in enumerate(tiers):
            if tier is None or tier.qualify is None:
                continue
            raw = getattr(tier.qualify, kind)
            if raw is None:
                continue
            threshold = Decimal(raw)
            window = tier.qualify.window_days
            if previous is not None:
                lower, lower_threshold, lower_window = previous
                if threshold < lower_threshold and window >= lower_window:
                    c.fault(
                        f"$.tiers[{i}].qualify.{kind}",
                        f"{kind} threshold {threshold} is below {lower_threshold} of lower "
                        f"tier {lower.code!r}",
                    )
            previous = (tier, threshold, window)


def _parse_trial(c: _Checker, value: object, tier_codes: set[str] | None) -> TrialGrant | None:
    path = "$.new_member_tier"
    body = c.obj(value, path, required=("code", "days"))
    if body is None:
        return None
    code = c.code(body["code"], path + ".code") if "code" in body else None
    if code is not None and tier_codes is not None and code not in tier_codes:
        known = ", ".join(sorted(tier_codes))
        c.fault(path + ".code", f"unknown tier {code!r}; tiers are {known}")
        code = None
    days = (
        c.integer(body["days"], path + ".days", low=1, high=_MAX_TRIAL_DAYS)
        if "days" in body
        else None
    )
    if code is None or days is None:
        return None
    return TrialGrant(code=code, days=days)


def _as_time(value: object) -> time:
    if not isinstance(value, str) or not _TIME_TEXT.match(value):
        raise _Invalid('must be a local time "HH:MM" or "HH:MM:SS"')
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise _Invalid(f"{value!r} is not a valid time of day") from None


def _as_date(value: object) -> date:
    if not isinstance(value, str) or not _DATE_TEXT.match(value):
        raise _Invalid('must be a date "YYYY-MM-DD"')
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _Invalid(f"{value!r} is not a calendar date") from None


def _parse_weekdays(c: _Checker, raw: object, path: str) -> frozenset[int] | None:
    if not isinstance(raw, list) or not raw:
        c.fault(path, "must be a non-empty list of ISO weekdays 1..7")
        return None
    days = [c.integer(d, f"{path}[{j}]", low=1, high=7) for j, d in enumerate(raw)]
    return frozenset(d for d in days if d is not None)


def _parse_dates(c: _Checker, raw: object, path: str) -> frozenset[date] | None:
    if not isinstance(raw, list) or not raw:
        c.fault(path, 'must be a non-empty list of dates "YYYY-MM-DD"')
        return None
    found: set[date] = set()
    for j, item in enumerate(raw):
        day = c.check(f"{path}[{j}]", partial(_as_date, item))
        if day is not None:
            found.add(day)
    return frozenset(found)


def _parse_window(
    c: _Checker, body: dict[str, object], path: str
) -> tuple[time | None, time | None]:
    """Both ends or neither; equal ends would be an empty (or ambiguous) window."""
    raw_start, raw_end = body.get("start_time"), body.get("end_time")
    start = end = None
    if raw_start is not None:
        start = c.check(path + ".start_time", lambda: _as_time(raw_start))
    if raw_end is not None:
        end = c.check(path + ".end_time", lambda: _as_time(raw_end))
    if raw_start is not None and raw_end is None:
        c.fault(path + ".end_time", "is required when start_time is given")
    elif raw_end is not None and raw_start is None:
        c.fault(path + ".start_time", "is required when end_time is given")
    elif start is not None and start == end:
        c.fault(path + ".end_time", "must differ from start_time")
    return start, end


_BONUS_CONDITIONS = ("weekdays", "dates", "min_amount", "start_time", "end_time")


def _parse_bonus(c: _Checker, value: object, path: str) -> Bonus | None:
    body = c.obj(value, path, required=("name", "multiplier"), optional=_BONUS_CONDITIONS)
    if body is None:
        return None
    before = len(c.faults)
    name = c.text(body["name"], path + ".name") if "name" in body else None
    multiplier = (
        c.decimal(body["multiplier"], path + ".multiplier", high=_MAX_MULTIPLIER, positive=True)
        if "multiplier" in body
        else None
    )
    if multiplier is not None and multiplier < 1:
        # The contract's bonus is 1 when none applies; a smaller one would make a sale that
        # meets a condition (say, a bigger amount) earn less than one that does not.
        c.fault(path + ".multiplier", "must be at least 1; a bonus never lowers points")
    raw = body.get("weekdays")
    weekdays = _parse_weekdays(c, raw, path + ".weekdays") if raw is not None else None
    raw = body.get("dates")
    dates = _parse_dates(c, raw, path + ".dates") if raw is not None else None
    raw = body.get("min_amount")
    min_amount = c.decimal(raw, path + ".min_amount", high=_MAX_AMOUNT) if raw is not None else None
    start, end = _parse_window(c, body, path)
    if all(body.get(k) is None for k in _BONUS_CONDITIONS):
        c.fault(path, "lists no condition (weekdays, dates, min_amount or a time window)")
    if len(c.faults) != before or name is None or multiplier is None:
        return None
    return Bonus(
        name=name,
        multiplier=multiplier,
        weekdays=weekdays,
        dates=dates,
        min_amount=min_amount,
        start_time=start,
        end_time=end,
    )


def _parse_effective_from(c: _Checker, value: object) -> datetime | None:
    path = "$.effective_from"
    if not isinstance(value, str):
        c.fault(path, "must be an ISO 8601 date-time string with an offset")
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        c.fault(path, f"{value!r} is not an ISO 8601 date-time")
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        c.fault(path, "must carry a UTC offset such as +08:00")
        return None
    return moment


def _parse_zone(c: _Checker, value: object) -> str | None:
    path = "$.timezone"
    if not isinstance(value, str) or not value:
        c.fault(path, 'must be an IANA time zone name such as "Asia/Shanghai"')
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        c.fault(path, f"{value!r} is not a known IANA time zone")
        return None
    return value


def _plain(value: object) -> Any:
    """Deep copy a JSON value into plain dicts and lists, detached from the caller's."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


_TOP_REQUIRED = (
    "version",
    "name",
    "effective_from",
    "timezone",
    "grades",
    "earn",
    "tiers",
    "redeem",
    "rounding",
)
_TOP_OPTIONAL = ("new_member_tier", "bonuses", "expiry")
# The contract's order of sections: faults are reported in it, as a reader meets them.
_SECTION_ORDER = (
    "version",
    "name",
    "effective_from",
    "timezone",
    "grades",
    "earn",
    "tiers",
    "new_member_tier",
    "bonuses",
    "redeem",
    "rounding",
    "expiry",
)
_SECTION_OF = re.compile(r"\$(?:\.([A-Za-z_][A-Za-z0-9_]*)|\['((?:[^'\\]|\\.)*)'\])?")


def _section_rank(fault: Fault) -> int:
    match = _SECTION_OF.match(fault.path)
    key = (match.group(1) or match.group(2)) if match else None
    if key is None:
        return -1
    return _SECTION_ORDER.index(key) if key in _SECTION_ORDER else len(_SECTION_ORDER)


def _parse_trial_section(c: _Checker, top: dict[str, object]) -> TrialGrant | None:
    if top.get("new_member_tier") is None:
        return None
    raw_tiers = top.get("tiers")
    tier_codes = None
    if isinstance(raw_tiers, list):
        tier_codes = {
            t["code"]
            for t in raw_tiers
            if isinstance(t, Mapping) and isinstance(t.get("code"), str)
        }
    return _parse_trial(c, top["new_member_tier"], tier_codes)


def _parse_bonuses(c: _Checker, raw: object) -> tuple[Bonus, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        c.fault("$.bonuses", "must be a list")
        return ()
    parsed = [_parse_bonus(c, item, f"$.bonuses[{i}]") for i, item in enumerate(raw)]
    return tuple(b for b in parsed if b is not None)


def _parse_redeem(c: _Checker, raw: object) -> RedeemPolicy | None:
    path = "$.redeem"
    body = c.obj(raw, path, required=("points_per_yuan", "min_points"))
    if body is None:
        return None
    per_yuan = min_points = None
    if "points_per_yuan" in body:
        per_yuan = c.integer(
            body["points_per_yuan"],
            path + ".points_per_yuan",
            low=1,
            high=_MAX_POINTS_PER_YUAN_REDEEM,
        )
    if "min_points" in body:
        min_points = c.integer(
            body["min_points"], path + ".min_points", low=0, high=_MAX_MIN_POINTS
        )
    if per_yuan is None or min_points is None:
        return None
    return RedeemPolicy(points_per_yuan=per_yuan, min_points=min_points)


def _parse_rounding(c: _Checker, raw: object) -> Rounding | None:
    if raw == "floor":
        return "floor"
    if raw == "half_up":
        return "half_up"
    c.fault("$.rounding", 'must be "floor" or "half_up"')
    return None


def _parse_expiry(c: _Checker, raw: object) -> int | None:
    """No expiry key (or null) means points never expire."""
    if raw is None:
        return None
    body = c.obj(raw, "$.expiry", required=("months",))
    if body is None or "months" not in body:
        return None
    return c.integer(body["months"], "$.expiry.months", low=1, high=_MAX_EXPIRY_MONTHS)


def parse_ruleset(document: object) -> RuleSet:
    """Validate a decoded document; raise RuleSetError listing every fault found."""
    c = _Checker()
    top = c.obj(document, "$", required=_TOP_REQUIRED, optional=_TOP_OPTIONAL)
    if top is None:
        raise RuleSetError(c.faults)

    def section(key: str, parse: Callable[[object], _T]) -> _T | None:
        # A missing required key is already a fault; its section is simply skipped.
        return parse(top[key]) if key in top else None

    version = section("version", lambda v: c.integer(v, "$.version", low=1, high=_MAX_VERSION))
    name = section("name", lambda v: c.text(v, "$.name"))
    effective_from = section("effective_from", lambda v: _parse_effective_from(c, v))
    zone = section("timezone", lambda v: _parse_zone(c, v))
    grades = section("grades", lambda v: _parse_grades(c, v))
    earn = _parse_earn(c, top["earn"], _grade_codes(top.get("grades"))) if "earn" in top else {}
    tiers = _parse_tiers(c, top["tiers"]) if "tiers" in top else []
    trial = _parse_trial_section(c, top)
    bonuses = _parse_bonuses(c, top.get("bonuses"))
    redeem = section("redeem", lambda v: _parse_redeem(c, v))
    rounding = section("rounding", lambda v: _parse_rounding(c, v))
    expiry_months = _parse_expiry(c, top.get("expiry"))

    if (
        c.faults
        or version is None
        or name is None
        or effective_from is None
        or zone is None
        or grades is None
        or redeem is None
        or rounding is None
    ):
        raise RuleSetError(sorted(c.faults, key=_section_rank))
    return RuleSet(
        version=version,
        name=name,
        effective_from=effective_from,
        timezone=zone,
        grades=MappingProxyType(grades),
        earn=MappingProxyType(earn),
        tiers=tuple(t for t in tiers if t is not None),
        new_member_tier=trial,
        bonuses=bonuses,
        redeem=redeem,
        rounding=rounding,
        expiry_months=expiry_months,
        document=MappingProxyType(_plain(document)),
    )


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_ruleset_json(text: str | bytes) -> RuleSet:
    """Parse JSON text with numbers as Decimal (1.5 stays exact), then validate it."""
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise RuleSetError([Fault("$", f"is not UTF-8 text (byte {exc.start})")]) from exc
    try:
        document = json.loads(
            text,
            parse_float=Decimal,
            parse_constant=_no_constants,
            object_pairs_hook=_object_pairs,
        )
    except json.JSONDecodeError as exc:
        fault = Fault("$", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
        raise RuleSetError([fault]) from exc
    except ValueError as exc:
        raise RuleSetError([Fault("$", f"invalid JSON: {exc}")]) from exc
    return parse_ruleset(document)


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
