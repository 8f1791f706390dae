"""Parsing rule-set documents: JSON text or decoded values in, a valid RuleSet out.

Parsing checks the whole document and reports every fault with its JSON path, so HQ fixes
a draft in one pass and a typo never silently changes how points are earned. It lives apart
from the model in `ruleset` so code that only reads a RuleSet does not pull in validation.
Pure: no clock, no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from functools import partial
from types import MappingProxyType
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cloud_sync.core.ruleset.checkin_rules import parse_checkin
from cloud_sync.core.ruleset.model import (
    Bonus,
    EarnRule,
    Fault,
    Grade,
    RedeemPolicy,
    Rounding,
    RuleSet,
    RuleSetError,
    TrialGrant,
)
from cloud_sync.core.ruleset.tier_rules import parse_tiers, parse_trial
from cloud_sync.core.ruleset.values import (
    MAX_AMOUNT,
    MAX_EXPIRY_MONTHS,
    MAX_MIN_POINTS,
    MAX_MULTIPLIER,
    MAX_POINTS_PER_LITRE,
    MAX_POINTS_PER_YUAN,
    MAX_POINTS_PER_YUAN_REDEEM,
    MAX_VERSION,
    Checker,
    as_date,
    as_time,
    key_path,
)

__all__ = ["parse_ruleset", "parse_ruleset_json"]

_T = TypeVar("_T")


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


def _parse_grades(c: Checker, value: object) -> dict[str, Grade] | None:
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
        item_path = key_path(path, key)
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


def _parse_earn(c: Checker, value: object, grade_codes: set[str] | None) -> dict[str, EarnRule]:
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
                body["points_per_litre"], path + ".points_per_litre", high=MAX_POINTS_PER_LITRE
            )
            ok = per_litre is not None
        else:
            per_yuan = c.decimal(
                body["points_per_yuan"], path + ".points_per_yuan", high=MAX_POINTS_PER_YUAN
            )
            ok = per_yuan is not None
        if grade is not None and ok:
            rules[grade] = EarnRule(
                grade=grade, points_per_litre=per_litre, points_per_yuan=per_yuan
            )
    return rules


def _parse_weekdays(c: Checker, raw: object, path: str) -> frozenset[int] | None:
    if not isinstance(raw, list) or not raw:
        c.fault(path, "must be a non-empty list of ISO weekdays 1..7")
        return None
    days = [c.integer(d, f"{path}[{j}]", low=1, high=7) for j, d in enumerate(raw)]
    return frozenset(d for d in days if d is not None)


def _parse_dates(c: Checker, raw: object, path: str) -> frozenset[date] | None:
    if not isinstance(raw, list) or not raw:
        c.fault(path, 'must be a non-empty list of dates "YYYY-MM-DD"')
        return None
    found: set[date] = set()
    for j, item in enumerate(raw):
        day = c.check(f"{path}[{j}]", partial(as_date, item))
        if day is not None:
            found.add(day)
    return frozenset(found)


def _parse_window(
    c: Checker, body: dict[str, object], path: str
) -> tuple[time | None, time | None]:
    """Both ends or neither; equal ends would be an empty (or ambiguous) window."""
    raw_start, raw_end = body.get("start_time"), body.get("end_time")
    start = end = None
    if raw_start is not None:
        start = c.check(path + ".start_time", lambda: as_time(raw_start))
    if raw_end is not None:
        end = c.check(path + ".end_time", lambda: as_time(raw_end))
    if raw_start is not None and raw_end is None:
        c.fault(path + ".end_time", "is required when start_time is given")
    elif raw_end is not None and raw_start is None:
        c.fault(path + ".start_time", "is required when end_time is given")
    elif start is not None and start == end:
        c.fault(path + ".end_time", "must differ from start_time")
    return start, end


_BONUS_CONDITIONS = ("weekdays", "dates", "min_amount", "start_time", "end_time")


def _parse_bonus(c: Checker, value: object, path: str) -> Bonus | None:
    body = c.obj(value, path, required=("name", "multiplier"), optional=_BONUS_CONDITIONS)
    if body is None:
        return None
    before = len(c.faults)
    name = c.text(body["name"], path + ".name") if "name" in body else None
    multiplier = (
        c.decimal(body["multiplier"], path + ".multiplier", high=MAX_MULTIPLIER, positive=True)
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
    min_amount = c.decimal(raw, path + ".min_amount", high=MAX_AMOUNT) if raw is not None else None
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


def _parse_effective_from(c: Checker, value: object) -> datetime | None:
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


def _parse_zone(c: Checker, value: object) -> str | None:
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
    "checkin",
)
_TOP_OPTIONAL = ("new_member_tier", "bonuses", "expiry", "checkin")
_TOP_REQUIRED = tuple(key for key in _SECTION_ORDER if key not in _TOP_OPTIONAL)
_SECTION_OF = re.compile(r"\$(?:\.([A-Za-z_][A-Za-z0-9_]*)|\['((?:[^'\\]|\\.)*)'\])?")


def _section_rank(fault: Fault) -> int:
    match = _SECTION_OF.match(fault.path)
    key = (match.group(1) or match.group(2)) if match else None
    if key is None:
        return -1
    return _SECTION_ORDER.index(key) if key in _SECTION_ORDER else len(_SECTION_ORDER)


def _parse_trial_section(c: Checker, top: dict[str, object]) -> TrialGrant | None:
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
    return parse_trial(c, top["new_member_tier"], tier_codes)


def _parse_bonuses(c: Checker, raw: object) -> tuple[Bonus, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        c.fault("$.bonuses", "must be a list")
        return ()
    parsed = [_parse_bonus(c, item, f"$.bonuses[{i}]") for i, item in enumerate(raw)]
    return tuple(b for b in parsed if b is not None)


def _parse_redeem(c: Checker, raw: object) -> RedeemPolicy | None:
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
            high=MAX_POINTS_PER_YUAN_REDEEM,
        )
    if "min_points" in body:
        min_points = c.integer(body["min_points"], path + ".min_points", low=0, high=MAX_MIN_POINTS)
    if per_yuan is None or min_points is None:
        return None
    return RedeemPolicy(points_per_yuan=per_yuan, min_points=min_points)


def _parse_rounding(c: Checker, raw: object) -> Rounding | None:
    if raw == "floor":
        return "floor"
    if raw == "half_up":
        return "half_up"
    c.fault("$.rounding", 'must be "floor" or "half_up"')
    return None


def _parse_expiry(c: Checker, raw: object) -> int | None:
    """No expiry key (or null) means points never expire."""
    if raw is None:
        return None
    body = c.obj(raw, "$.expiry", required=("months",))
    if body is None or "months" not in body:
        return None
    return c.integer(body["months"], "$.expiry.months", low=1, high=MAX_EXPIRY_MONTHS)


def parse_ruleset(document: object) -> RuleSet:
    """Validate a decoded document; raise RuleSetError listing every fault found."""
    c = Checker()
    top = c.obj(document, "$", required=_TOP_REQUIRED, optional=_TOP_OPTIONAL)
    if top is None:
        raise RuleSetError(c.faults)

    def section(key: str, parse: Callable[[object], _T]) -> _T | None:
        # A missing required key is already a fault; its section is simply skipped.
        return parse(top[key]) if key in top else None

    version = section("version", lambda v: c.integer(v, "$.version", low=1, high=MAX_VERSION))
    name = section("name", lambda v: c.text(v, "$.name"))
    effective_from = section("effective_from", lambda v: _parse_effective_from(c, v))
    zone = section("timezone", lambda v: _parse_zone(c, v))
    grades = section("grades", lambda v: _parse_grades(c, v))
    earn = _parse_earn(c, top["earn"], _grade_codes(top.get("grades"))) if "earn" in top else {}
    tiers = parse_tiers(c, top["tiers"]) if "tiers" in top else []
    trial = _parse_trial_section(c, top)
    bonuses = _parse_bonuses(c, top.get("bonuses"))
    redeem = section("redeem", lambda v: _parse_redeem(c, v))
    rounding = section("rounding", lambda v: _parse_rounding(c, v))
    expiry_months = _parse_expiry(c, top.get("expiry"))
    checkin = parse_checkin(c, top.get("checkin"))

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
        checkin=checkin,
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
