"""HQ's member reports (hq-console.md, "Definitions"): growth, tiers, activity, RFM.

Growth and activity read the aggregates (agg_members_day, member_activity); RFM reads its
daily snapshot (rfm.py), computed once per day rather than at every view.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from cloud_sync.core.ruleset import ruleset_in_force

from . import rfm as rfm_snapshot
from .aggregates import chain_zone
from .reports_hq import _rulesets
from .rfm import DAY_MS as _DAY_MS
from .rfm import SEGMENTS
from .rfm import end_ms as _end_ms
from .schema import agg_members_day, agg_tier_month, member_activity, members

__all__ = ["SEGMENTS", "activity", "growth", "member_report", "rfm", "tier_movements", "tiers"]


def growth(conn: Connection, first: date, last: date, station: str | None) -> list[dict[str, Any]]:
    """New members per month of the range and the running total of registrations."""
    m = agg_members_day
    before = select(func.coalesce(func.sum(m.c.registered), 0)).where(m.c.day < first.isoformat())
    within = (
        select(m.c.day, m.c.registered)
        .where(m.c.day >= first.isoformat(), m.c.day <= last.isoformat())
        .order_by(m.c.day)
    )
    if station is not None:
        before = before.where(m.c.station_id == station)
        within = within.where(m.c.station_id == station)
    total = int(conn.execute(before).scalar_one())
    months: dict[str, int] = {}
    for day, registered in conn.execute(within):
        months[str(day)[:7]] = months.get(str(day)[:7], 0) + int(registered)
    rows = []
    for month, registered in months.items():
        total += registered
        rows.append({"month": month, "registered": registered, "members": total})
    return rows


def tiers(conn: Connection) -> list[dict[str, Any]]:
    """Active members per tier now (no tier: the rule set's default)."""
    stmt = (
        select(members.c.tier, func.count())
        .where(members.c.status == "active")
        .group_by(members.c.tier)
    )
    merged: Counter[str] = Counter()
    for tier, n in conn.execute(stmt):
        merged[str(tier or "standard")] += int(n)
    return [{"tier": t, "members": n} for t, n in sorted(merged.items())]


def activity(conn: Connection, end: date) -> list[dict[str, Any]]:
    """Members who bought in the 30 days up to `end`; dormant: last sale more than N days
    before the end of `end`; members who never bought are counted on their own row."""
    end_ms = _end_ms(conn, end)
    a = member_activity

    def count(*where: Any) -> int:
        stmt = (
            select(func.count()).select_from(a).join(members, members.c.member_id == a.c.member_id)
        )
        return int(conn.execute(stmt.where(members.c.status == "active", *where)).scalar_one())

    never = int(
        conn.execute(
            select(func.count())
            .select_from(members)
            .outerjoin(a, a.c.member_id == members.c.member_id)
            .where(members.c.status == "active", a.c.last_sale_ms.is_(None))
        ).scalar_one()
    )
    rows = [
        {"group": "active_30d", "members": count(a.c.last_sale_ms >= end_ms - 30 * _DAY_MS)},
    ]
    for days in (60, 90, 180):
        rows.append(
            {
                "group": f"dormant_{days}d",
                "members": count(a.c.last_sale_ms < end_ms - days * _DAY_MS),
            }
        )
    rows.append({"group": "never_bought", "members": never})
    return rows


def rfm(conn: Connection, end: date, now: datetime | None = None) -> dict[str, Any]:
    """RFM as of the end of `end` from its daily snapshot (rfm.py), with its "as of"."""
    return rfm_snapshot.snapshot(conn, end, now or datetime.now(UTC))


def tier_movements(conn: Connection, first: date, last: date) -> dict[str, Any]:
    """member.tier_changed events per month of the range (agg_tier_month): up or down by the
    tier order of the rule set in force at the range's end ('' or a tier that rule set does
    not know ranks below its lowest); `pairs` names each (from, to) with its direction."""
    at = datetime.combine(last + timedelta(days=1), time(), tzinfo=chain_zone(conn))
    ruleset = ruleset_in_force(_rulesets(conn), at)
    order = [] if ruleset is None else [t.code for t in ruleset.tiers]

    def rank(code: str) -> int:
        return order.index(code) if code in order else -1

    t = agg_tier_month
    stmt = (
        select(t.c.month, t.c.from_tier, t.c.to_tier, t.c.changes)
        .where(t.c.month >= first.strftime("%Y-%m"), t.c.month <= last.strftime("%Y-%m"))
        .order_by(t.c.month, t.c.from_tier, t.c.to_tier)
    )
    months: dict[str, dict[str, Any]] = {}
    pairs: list[dict[str, Any]] = []
    for month, before, after, changes in conn.execute(stmt):
        if not changes:
            continue
        up, down = rank(after) > rank(before), rank(after) < rank(before)
        direction = "up" if up else "down" if down else "same"
        row = months.setdefault(month, {"month": month, "up": 0, "down": 0})
        if direction != "same":
            row[direction] += int(changes)
        pairs.append(
            {
                "month": month,
                "from": before,
                "to": after,
                "direction": direction,
                "members": int(changes),
            }
        )
    return {"months": list(months.values()), "pairs": pairs}


def member_report(
    conn: Connection,
    first: date,
    last: date,
    station: str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    return {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "growth": growth(conn, first, last, station),
        "tiers": tiers(conn),
        "activity": activity(conn, last),
        "tier_movements": tier_movements(conn, first, last),
        "rfm": rfm(conn, last, now),
    }
