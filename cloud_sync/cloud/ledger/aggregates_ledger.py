"""HQ's report aggregates derived from the ledger itself, in bounded memory: `fill` pages
through members, sales and journal lines (keyset, `_PAGE` rows at a time) and adds each page
with the flushes' own upsert-add (aggregates.py), the database counting the active members;
`rebuild` replaces the tables with it (migration 3, `loyalpump cloud aggregates rebuild`);
`check` fills temporary copies and lets the database name every difference."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    Row,
    Select,
    Table,
    delete,
    func,
    inspect,
    or_,
    select,
)

from cloud_sync.core.events import MemberTierChanged

from .aggregates import (
    AGGREGATE_TABLES,
    BALANCE_SIGN,
    MEMBER_PREFIX,
    Tally,
    chain_zone,
    contributes,
    count_visits,
    tier_moved,
    tier_moves,
    write,
)
from .schema import (
    agg_active_day,
    agg_members_day,
    agg_points_day,
    agg_points_month,
    agg_sales_day,
    agg_sales_hour,
    agg_tier_month,
    events,
    journals,
    lines,
    lots,
    member_activity,
    member_days,
    members,
    rfm_snapshots,
    sales,
    tier_moves_archived,
)

__all__ = [
    "AGGREGATE_TABLES",
    "check",
    "fill",
    "ledger_outstanding",
    "pages",
    "read_tier_change",
    "rebuild",
    "stored",
]

_PAGE: Final = 5000  # rows of the ledger per page: what a rebuild holds in memory at once
_SHOWN: Final = 1000  # differences named per table (the count says how many more)


# ---------------------------------------------------------------- from the ledger itself


def pages(conn: Connection, stmt: Select[Any], key: Any) -> Iterator[Sequence[Row[Any]]]:
    """The rows of `stmt` a page at a time, by `key` (keyset paging: no cursor stays open
    while a page is written)."""
    last: Any = None
    ordered = stmt.order_by(key).limit(_PAGE)
    while True:
        page = conn.execute(ordered if last is None else ordered.where(key > last)).all()
        if not page:
            return
        yield page
        last = page[-1]._mapping[key.name]


def _members(conn: Connection, zone: ZoneInfo) -> Iterator[Tally]:
    stmt = select(members.c.member_id, members.c.registered_at, members.c.registered_station).where(
        members.c.status != "merged"
    )
    for page in pages(conn, stmt, members.c.member_id):
        tally = Tally(zone)
        for row in page:
            tally.member(row.registered_at, row.registered_station)
        yield tally


def _sales(conn: Connection, zone: ZoneInfo) -> Iterator[Tally]:
    owner = members.alias("owner")
    stmt = select(
        sales.c.sale_id,
        sales.c.station_id,
        sales.c.grade,
        sales.c.litres,
        sales.c.amount,
        sales.c.ended_at,
        sales.c.member_id,
        sales.c.status,
        owner.c.merged_into,
    ).outerjoin(owner, owner.c.member_id == sales.c.member_id)
    for page in pages(conn, stmt, sales.c.sale_id):
        tally = Tally(zone)
        for row in page:
            member_id = row.member_id
            if member_id is not None:
                raw, member_id = member_id, row.merged_into or member_id
                tally.touch(raw, member_id, row.station_id, row.ended_at)
            if contributes(row.status):
                tally.count(dict(row._mapping), member_id, +1)
        yield tally


def _journals(conn: Connection, zone: ZoneInfo) -> Iterator[Tally]:
    """Line by line: a line's movement depends on its journal's kind alone."""
    stmt = select(
        lines.c.line_id,
        lines.c.account,
        lines.c.points,
        journals.c.kind,
        journals.c.station_id,
        journals.c.at,
    ).join(journals, journals.c.journal_id == lines.c.journal_id)
    for page in pages(conn, stmt, lines.c.line_id):
        tally = Tally(zone)
        for row in page:
            tally.journal(row.kind, row.station_id, row.at, [(row.account, int(row.points))])
        yield tally


def read_tier_change(body: str, received_at: str) -> tuple[datetime, str, str]:
    """A stored member.tier_changed event as the handler read it: (when, from, to), '' for
    no tier; its own time, or its arrival when it names none."""
    e = MemberTierChanged.model_validate(json.loads(body)["payload"])
    return e.at or datetime.fromisoformat(received_at), e.previous_tier or "", e.tier


def _tier_changes(conn: Connection, zone: ZoneInfo) -> Iterator[Counter[tuple[str, ...]]]:
    """Applied member.tier_changed events, read back as the handler read them; then those
    that left with their month (partitions.py), counted when they left."""
    stmt = select(events.c.id, events.c.body, events.c.received_at).where(
        events.c.status == "applied", events.c.kind == MemberTierChanged.kind
    )
    for page in pages(conn, stmt, events.c.id):
        moves: Counter[tuple[str, ...]] = Counter()
        for row in page:
            moved = tier_moved(zone, *read_tier_change(row.body, row.received_at))
            if moved:
                moves[moved] += 1
        yield moves
    archived: Counter[tuple[str, ...]] = Counter()
    if not inspect(conn).has_table(tier_moves_archived.name):  # migration 3, before 6
        return
    for row in conn.execute(select(tier_moves_archived)):
        at = datetime.fromisoformat(row.at_utc).replace(tzinfo=UTC)
        moved = tier_moved(zone, at, row.from_tier, row.to_tier)
        if moved:
            archived[moved] += int(row.changes)
    yield archived


def fill(conn: Connection, into: Sequence[Table] = AGGREGATE_TABLES) -> None:
    """Add every aggregate derived from the ledger's own rows (members, sales, journals) to
    empty tables, a page at a time: memory stays bounded whatever the ledger's size."""
    zone = chain_zone(conn)
    for source in (_members, _sales, _journals):
        for tally in source(conn, zone):
            write(conn, tally, fresh=True, into=into)
    count_visits(conn, into)
    for moves in _tier_changes(conn, zone):
        tier_moves(conn, moves, into[8])


def rebuild(conn: Connection) -> None:
    """Replace every aggregate with what the ledger says (migration 3, and by hand); the RFM
    snapshots go too (their days may follow a new time zone): the next view recomputes."""
    for table in (*AGGREGATE_TABLES, rfm_snapshots):
        conn.execute(delete(table))
    fill(conn)


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
        "agg_tier_month": rows(agg_tier_month, 3),
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


def _shadows() -> tuple[Table, ...]:
    """Temporary tables shaped like the aggregates, for `check` to fill from the ledger."""
    meta = MetaData()
    return tuple(
        Table(
            f"check_{table.name}",
            meta,
            *(Column(c.name, c.type, primary_key=c.primary_key) for c in table.columns),
            prefixes=["TEMPORARY"],
        )
        for table in AGGREGATE_TABLES
    )


def _differences(conn: Connection, held: Table, wanted: Table) -> list[str]:
    """Rows of one table that differ from the ledger's, compared by the database (EXCEPT
    both ways; all-zero rows count as absent, as an incremental flush may leave them)."""
    keys = [c.name for c in held.primary_key.columns]
    values = [c.name for c in held.columns if c.name not in keys]

    def side(table: Table) -> Select[Any]:
        stmt = select(
            *(table.c[k] for k in keys),
            *(func.coalesce(table.c[v], 0).label(v) for v in values),
        )
        if values:
            stmt = stmt.where(or_(*(func.coalesce(table.c[v], 0) != 0 for v in values)))
        return stmt

    found: list[dict[tuple[Any, ...], tuple[int, ...]]] = []
    extra = 0
    for ours, theirs in ((held, wanted), (wanted, held)):
        only = side(ours).except_(side(theirs)).subquery()
        rows = conn.execute(select(only).limit(_SHOWN + 1)).all()
        extra = max(extra, len(rows) - _SHOWN)
        found.append(
            {
                tuple(r)[: len(keys)]: tuple(int(v) for v in tuple(r)[len(keys) :])
                for r in rows[:_SHOWN]
            }
        )
    stored_rows, ledger_rows = found
    problems = [
        f"{held.name} {list(key)}: stored {stored_rows.get(key)}, ledger {ledger_rows.get(key)}"
        for key in sorted(set(stored_rows) | set(ledger_rows), key=repr)
    ]
    if extra > 0:
        problems.append(f"{held.name}: more differences than the {_SHOWN} named")
    return problems


def check(conn: Connection) -> list[str]:
    """Every difference between the stored aggregates and the ledger (empty: they agree).
    The ledger's figures go to temporary tables, page by page, and the database compares."""
    shadows = _shadows()
    for table in shadows:
        table.create(conn)
    fill(conn, shadows)
    problems: list[str] = []
    for held, wanted in zip(AGGREGATE_TABLES, shadows, strict=True):
        problems += _differences(conn, held, wanted)
    for table in shadows:  # on failure the transaction's rollback drops them
        table.drop(conn)
    balances = ledger_outstanding(conn)
    if len(set(balances.values())) != 1:
        problems.append(f"outstanding differs: {balances}")
    return problems
