"""HQ's member reports (hq-console.md, "Definitions"): growth, tiers, activity, RFM.

Growth and activity read the aggregates (agg_members_day, member_activity). RFM needs each
member's sales of the last 180 days, which no aggregate keeps: it reads those sales once
(the only report that does; see docs/contracts.md §7 for its cost at scale).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import Connection, func, select

from .aggregates import chain_zone
from .schema import agg_members_day, member_activity, members, sales

__all__ = ["SEGMENTS", "activity", "growth", "member_report", "rfm", "tiers"]

_DAY_MS: Final = 86_400_000
SEGMENTS: Final = ("champions", "loyal", "at_risk", "hibernating", "new", "others")


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


def _end_ms(conn: Connection, end: date) -> int:
    """The end of the chain's day `end` (exclusive), in epoch milliseconds."""
    moment = datetime.combine(end + timedelta(days=1), time(), tzinfo=chain_zone(conn))
    return int(moment.timestamp() * 1000)


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


def _scores(values: dict[str, Any], *, higher_is_better: bool) -> dict[str, int]:
    """1–5 by chain-wide quintiles: a member's score is 1 + the fifth of the ordered
    population below which their value first appears (ties share a score)."""
    ordered: Sequence[Any] = sorted(values.values(), reverse=not higher_is_better)
    n = len(ordered)
    if not higher_is_better:
        ordered = [-v for v in ordered]
    return {
        key: 1 + (5 * bisect_left(ordered, v if higher_is_better else -v)) // n
        for key, v in values.items()
    }


def rfm(conn: Connection, end: date) -> dict[str, Any]:
    """Recency (days since the last sale), frequency (sales in the last 180 days) and
    monetary (amount in those days), each scored 1–5 by quintiles over the members who
    bought; segments in this order: champions (R≥4, F≥4), loyal (F≥4), at risk (R≤2, F≥3),
    hibernating (R≤2, F≤2), new (registered within 30 days), others."""
    zone = chain_zone(conn)
    end_ms = _end_ms(conn, end)
    since_ms = end_ms - 180 * _DAY_MS
    since_text = datetime.fromtimestamp(since_ms / 1000 - 86_400, zone).date().isoformat()
    survivors = {
        r.member_id: r.merged_into
        for r in conn.execute(
            select(members.c.member_id, members.c.merged_into).where(
                members.c.merged_into.is_not(None)
            )
        )
    }
    freq: Counter[str] = Counter()
    money: defaultdict[str, int] = defaultdict(int)
    stmt = select(sales.c.member_id, sales.c.ended_at, sales.c.amount).where(
        sales.c.member_id.is_not(None), sales.c.status == "recorded", sales.c.ended_at >= since_text
    )
    for member_id, ended_at, amount in conn.execute(stmt.execution_options(yield_per=5000)):
        ms = int(datetime.fromisoformat(ended_at).timestamp() * 1000)
        if since_ms <= ms < end_ms:
            key = survivors.get(member_id, member_id)
            freq[key] += 1
            money[key] += int(Decimal(amount) * 100)
    a = member_activity
    recency: dict[str, int] = {}
    registered: dict[str, int] = {}
    query = (
        select(members.c.member_id, members.c.registered_at, a.c.last_sale_ms)
        .outerjoin(a, a.c.member_id == members.c.member_id)
        .where(members.c.status == "active")
    )
    for member_id, registered_at, last in conn.execute(query):
        registered[member_id] = int(datetime.fromisoformat(registered_at).timestamp() * 1000)
        if last is not None and last < end_ms:
            recency[member_id] = (end_ms - int(last)) // _DAY_MS
    buyers = list(recency)
    r = _scores(recency, higher_is_better=False) if buyers else {}
    f = _scores({m: freq[m] for m in buyers}, higher_is_better=True) if buyers else {}
    mon = _scores({m: money[m] for m in buyers}, higher_is_better=True) if buyers else {}
    counts: Counter[str] = Counter()
    for member_id, reg_ms in registered.items():
        rs, fs = r.get(member_id), f.get(member_id)
        if rs is not None and fs is not None and rs >= 4 and fs >= 4:
            segment = "champions"
        elif fs is not None and fs >= 4:
            segment = "loyal"
        elif rs is not None and fs is not None and rs <= 2 and fs >= 3:
            segment = "at_risk"
        elif rs is not None and fs is not None and rs <= 2 and fs <= 2:
            segment = "hibernating"
        elif end_ms - 30 * _DAY_MS <= reg_ms < end_ms:
            segment = "new"
        else:
            segment = "others"
        counts[segment] += 1
    grid: Counter[tuple[int, int]] = Counter((r[m], f[m]) for m in buyers)
    return {
        "segments": [{"segment": s, "members": counts[s]} for s in SEGMENTS],
        "grid": [
            {"recency": rs, "frequency": fs, "members": grid[(rs, fs)]}
            for rs in range(1, 6)
            for fs in range(1, 6)
        ],
        "monetary": [
            {"score": s, "members": sum(1 for v in mon.values() if v == s)} for s in range(1, 6)
        ],
    }


def member_report(conn: Connection, first: date, last: date, station: str | None) -> dict[str, Any]:
    return {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "growth": growth(conn, first, last, station),
        "tiers": tiers(conn),
        "activity": activity(conn, last),
        "rfm": rfm(conn, last),
    }
