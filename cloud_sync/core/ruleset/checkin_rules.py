"""Parsing the `checkin` section of a rule-set document (the member app's daily check-in).

`{"points": 5, "streak": [{"days": 7, "bonus": 20}], "daily_cap": 1}`; absent: check-in is
off. `daily_cap` must be 1 for now: the ledger books one check-in per member and day, and a
cap above 1 would promise members something no code pays (it is refused, not ignored).
"""

from __future__ import annotations

from cloud_sync.core.ruleset.model import CheckinRule, StreakBonus
from cloud_sync.core.ruleset.values import Checker

__all__ = [
    "MAX_CHECKIN_POINTS",
    "MAX_STREAK_BONUS",
    "MAX_STREAK_DAYS",
    "MAX_STREAK_ENTRIES",
    "MIN_STREAK_DAYS",
    "parse_checkin",
]

MAX_CHECKIN_POINTS = 1000
MAX_STREAK_BONUS = 10_000
MIN_STREAK_DAYS = 2  # a 1-day "streak" is every check-in: raise `points` instead
MAX_STREAK_DAYS = 366
MAX_STREAK_ENTRIES = 20

_PATH = "$.checkin"


def _parse_streak(c: Checker, raw: object) -> tuple[StreakBonus, ...] | None:
    path = _PATH + ".streak"
    if not isinstance(raw, list):
        c.fault(path, "must be a list of {days, bonus}")
        return None
    if len(raw) > MAX_STREAK_ENTRIES:
        c.fault(path, f"must list at most {MAX_STREAK_ENTRIES} entries")
        return None
    before = len(c.faults)
    entries: list[StreakBonus] = []
    previous: int | None = None
    for i, item in enumerate(raw):
        item_path = f"{path}[{i}]"
        body = c.obj(item, item_path, required=("days", "bonus"))
        if body is None:
            continue
        days = bonus = None
        if "days" in body:
            days = c.integer(
                body["days"], item_path + ".days", low=MIN_STREAK_DAYS, high=MAX_STREAK_DAYS
            )
        if "bonus" in body:
            bonus = c.integer(body["bonus"], item_path + ".bonus", low=0, high=MAX_STREAK_BONUS)
        if days is not None:
            if previous is not None and days <= previous:
                c.fault(item_path + ".days", f"must be more than the entry before ({previous})")
            previous = days
        if days is not None and bonus is not None:
            entries.append(StreakBonus(days=days, bonus=bonus))
    return tuple(entries) if len(c.faults) == before else None


def parse_checkin(c: Checker, raw: object) -> CheckinRule | None:
    """The section, or None when it is absent/null (check-in off) or faulty (faults kept)."""
    if raw is None:
        return None
    body = c.obj(raw, _PATH, required=("points", "daily_cap"), optional=("streak",))
    if body is None:
        return None
    before = len(c.faults)
    points = (
        c.integer(body["points"], _PATH + ".points", low=0, high=MAX_CHECKIN_POINTS)
        if "points" in body
        else None
    )
    cap = (
        c.integer(body["daily_cap"], _PATH + ".daily_cap", low=1, high=1_000)
        if ("daily_cap" in body)
        else None
    )
    if cap is not None and cap != 1:
        c.fault(
            _PATH + ".daily_cap",
            "must be 1: one check-in a day (more than one a day is not supported yet)",
        )
    streak = _parse_streak(c, body["streak"]) if body.get("streak") is not None else ()
    if len(c.faults) != before or points is None or cap is None or streak is None:
        return None
    return CheckinRule(points=points, streak=streak, daily_cap=cap)
