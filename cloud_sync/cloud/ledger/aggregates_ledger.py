"""HQ's report aggregates derived from the ledger itself: `compute` gives the very figures
the flushes add up (aggregates.py), `rebuild` replaces the tables with them (migration 3,
`loyalpump cloud aggregates rebuild`), `check` names every difference."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Table, delete, func, select

from .aggregates import (
    AGGREGATE_TABLES,
    BALANCE_SIGN,
    MEMBER_PREFIX,
    Tally,
    chain_zone,
    contributes,
    write,
)
from .schema import (
    agg_active_day,
    agg_members_day,
    agg_points_day,
    agg_points_month,
    agg_sales_day,
    agg_sales_hour,
    journals,
    lines,
    lots,
    member_activity,
    member_days,
    members,
    sales,
)

__all__ = ["AGGREGATE_TABLES", "check", "compute", "ledger_outstanding", "rebuild", "stored"]


# ---------------------------------------------------------------- from the ledger itself


def compute(conn: Connection) -> Tally:
    """Every aggregate derived from the ledger's own rows (sales, journals, members)."""
    tally = Tally(chain_zone(conn))
    survivors = {
        r.member_id: r.merged_into
        for r in conn.execute(
            select(members.c.member_id, members.c.merged_into).where(
                members.c.merged_into.is_not(None)
            )
        )
    }
    columns = (
        sales.c.station_id,
        sales.c.grade,
        sales.c.litres,
        sales.c.amount,
        sales.c.ended_at,
        sales.c.member_id,
        sales.c.status,
    )
    for row in conn.execute(select(*columns).execution_options(yield_per=5000)):
        values = dict(row._mapping)
        member_id = row.member_id
        if member_id is not None:
            raw, member_id = member_id, survivors.get(member_id, member_id)
            tally.touch(raw, member_id, row.station_id, row.ended_at)
        if contributes(row.status):
            tally.count(values, member_id, +1)
    stmt = (
        select(journals.c.journal_id, journals.c.kind, journals.c.station_id, journals.c.at)
        .add_columns(lines.c.account, lines.c.points)
        .join(lines, lines.c.journal_id == journals.c.journal_id)
        .order_by(journals.c.journal_id)
    )
    current: str | None = None
    head: Any = None
    postings: list[tuple[str, int]] = []
    for row in conn.execute(stmt.execution_options(yield_per=5000)):
        if row.journal_id != current:
            if head is not None:
                tally.journal(head.kind, head.station_id, head.at, postings)
            current, head, postings = row.journal_id, row, []
        postings.append((row.account, int(row.points)))
    if head is not None:
        tally.journal(head.kind, head.station_id, head.at, postings)
    registered = select(members.c.registered_at, members.c.registered_station).where(
        members.c.status != "merged"
    )
    for at, station_id in conn.execute(registered):
        tally.member(at, station_id)
    return tally


def rebuild(conn: Connection) -> Tally:
    """Replace every aggregate with what the ledger says (migration 3, and by hand)."""
    for table in AGGREGATE_TABLES:
        conn.execute(delete(table))
    tally = compute(conn)
    write(conn, tally, fresh=True)
    return tally


def stored(conn: Connection) -> dict[str, dict[tuple[Any, ...], tuple[int, ...]]]:
    def rows(table: Table, keys: int) -> dict[tuple[Any, ...], tuple[int, ...]]:
        found = {}
        for row in conn.execute(select(table)):
            values = tuple(row)
            if any(v for v in values[keys:]):
                found[values[:keys]] = tuple(int(v or 0) for v in values[keys:])
        return found

    return {
        "agg_sales_day": rows(agg_sales_day, 3),
        "agg_sales_hour": rows(agg_sales_hour, 3),
        "agg_points_day": rows(agg_points_day, 3),
        "agg_points_month": rows(agg_points_month, 3),
        "agg_members_day": rows(agg_members_day, 2),
        "agg_active_day": rows(agg_active_day, 1),
        "member_days": {tuple(r): () for r in conn.execute(select(member_days))},
        "member_activity": rows(member_activity, 1),
    }


def _expected(tally: Tally) -> dict[str, dict[tuple[Any, ...], tuple[int, ...]]]:
    def nonzero(
        items: Iterable[tuple[tuple[Any, ...], Sequence[int]]],
    ) -> dict[tuple[Any, ...], tuple[int, ...]]:
        return {k: tuple(v) for k, v in items if any(v)}

    members_day: defaultdict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for key, count in tally.registered.items():
        members_day[key][0] += count
    for day, station, _ in tally.visits:
        members_day[(day, station)][1] += 1
    active = Counter(d for d, _ in {(d, m) for d, _, m in tally.visits})
    return {
        "agg_sales_day": nonzero(tally.sales.items()),
        "agg_sales_hour": nonzero(tally.hours.items()),
        "agg_points_day": nonzero((k, (v,)) for k, v in tally.points_day.items()),
        "agg_points_month": nonzero((k, (v,)) for k, v in tally.points_month.items()),
        "agg_members_day": nonzero(members_day.items()),
        "agg_active_day": nonzero(((d,), (n,)) for d, n in active.items()),
        "member_days": dict.fromkeys(tally.visits, ()),
        "member_activity": nonzero(((m,), v) for m, v in tally.activity.items()),
    }


def ledger_outstanding(conn: Connection) -> dict[str, int]:
    """Members' balances as the ledger holds them, three ways that must agree with the
    aggregates' running total: member account lines, lots less overdrafts."""
    accounts = conn.execute(
        select(func.coalesce(func.sum(lines.c.points), 0)).where(
            lines.c.account.like(MEMBER_PREFIX + "%")
        )
    ).scalar_one()
    remaining = conn.execute(select(func.coalesce(func.sum(lots.c.remaining), 0))).scalar_one()
    overdraft = conn.execute(select(func.coalesce(func.sum(members.c.overdraft), 0))).scalar_one()
    running = conn.execute(
        select(agg_points_month.c.movement, func.sum(agg_points_month.c.points)).group_by(
            agg_points_month.c.movement
        )
    )
    total = sum(BALANCE_SIGN.get(str(m), 1) * int(p) for m, p in running)
    return {
        "member_accounts": int(accounts),
        "lots_less_overdraft": int(remaining) - int(overdraft),
        "aggregates": total,
    }


def check(conn: Connection) -> list[str]:
    """Every difference between the stored aggregates and the ledger (empty: they agree)."""
    found, wanted = stored(conn), _expected(compute(conn))
    problems: list[str] = []
    for name, expected in wanted.items():
        held = found[name]
        for key in sorted(set(expected) | set(held), key=repr):
            if expected.get(key) != held.get(key):
                problems.append(
                    f"{name} {list(key)}: stored {held.get(key)}, ledger {expected.get(key)}"
                )
    balances = ledger_outstanding(conn)
    if len(set(balances.values())) != 1:
        problems.append(f"outstanding differs: {balances}")
    return problems
