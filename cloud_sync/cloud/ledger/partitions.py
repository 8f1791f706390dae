"""Events partitioned by the month they arrived, on PostgreSQL (docs/scale.md §6).

Events are the biggest append-only table and the one that can shed its past: the ledger
reads old events only for receipts, erasure and HQ's recent list. Each month is its own
partition (`events_2027_01` holds `received_at` from 2027-01-01 up to 2027-02-01, compared
as the ISO text the push stores); `events_default` takes any row whose month has none yet,
so an insert never fails for want of a partition. A ledger migrated from schema 5 keeps its
old table as one partition, `events_v5`, from the beginning of time up to the month after
its last row.

`keep_partitions` makes the months ahead (at every open, then hourly beside lot expiry):
a new month is created as a plain table and attached, which locks the parent only against
other schema changes, never against pushes. `detach_before` is the retention step an
operator runs (`loyalpump cloud db partitions --detach-before`): whole months leave the
ledger as standalone tables to dump and drop, counted per station in `events_archived` so
the ledger's invariants still account for every sequence number. It refuses months a
station may still send (`keep_months`): an event archived and sent again is answered as a
conflict, not as a duplicate, so the window must exceed any station's offline time plus
its outbox retention.

SQLite keeps one events table; every function here is a no-op or a refusal there.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import Connection, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError

from .errors import LedgerError
from .schema import events_archived

__all__ = [
    "AHEAD_MONTHS",
    "KEEP_MONTHS",
    "Partition",
    "add_months",
    "detach_before",
    "keep_partitions",
    "month_of",
    "partition_name",
    "partitioned",
    "partitions",
]

log = logging.getLogger(__name__)

AHEAD_MONTHS = 2  # months made ahead of the current one: an hourly job that stalls has time
KEEP_MONTHS = 13  # the retention floor: a year of offline station plus a month's margin
_UPKEEP_LOCK = 0x6C70_7061_7274  # "lppart": this module's advisory lock
_LOCK_TIMEOUT = "5s"  # upkeep waits this long for a lock, then tries again next hour
_BOUNDS = re.compile(r"FOR VALUES FROM \((.+)\) TO \((.+)\)")


@dataclass(frozen=True)
class Partition:
    """One partition of events: `start` None for MINVALUE; both None for the default."""

    name: str
    start: date | None
    end: date | None
    rows: int  # PostgreSQL's estimate (reltuples): exact counts would scan a month of rows
    default: bool


def month_of(moment: datetime | date) -> date:
    """The first day of the moment's month (a datetime is read in UTC)."""
    if isinstance(moment, datetime):
        moment = moment.astimezone(UTC).date()
    return moment.replace(day=1)


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"events_{month:%Y_%m}"


def partitioned(conn: Connection) -> bool:
    """Whether this ledger's events table is partitioned (PostgreSQL, schema 6)."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.exec_driver_sql(
        "SELECT relkind FROM pg_class WHERE oid = to_regclass('events')"
    ).scalar_one_or_none()
    return kind == "p"


def _bound(text: str) -> date | None:
    text = text.strip()
    if text == "MINVALUE":
        return None
    return date.fromisoformat(text.strip("'")[:10])


def partitions(conn: Connection) -> list[Partition]:
    """The events partitions, oldest first, the default last; empty if not partitioned."""
    if not partitioned(conn):
        return []
    rows = conn.exec_driver_sql(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), c.reltuples "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'events'::regclass"
    ).all()
    found: list[Partition] = []
    for name, bound, tuples in rows:
        rows_estimate = max(int(tuples), 0)  # -1: never analysed
        match = _BOUNDS.fullmatch(bound)
        if match is None:  # "DEFAULT"
            found.append(Partition(name, None, None, rows_estimate, True))
            continue
        found.append(
            Partition(name, _bound(match[1]), _bound(match[2]), rows_estimate, default=False)
        )
    return sorted(found, key=lambda p: (p.default, p.end or date.max))


def keep_partitions(conn: Connection, now: datetime, ahead: int = AHEAD_MONTHS) -> list[str]:
    """Make the month partitions from the last one's end up to `ahead` months after now's
    month; the names made. A month whose rows already sit in the default partition cannot
    get its own (PostgreSQL refuses): it is logged and skipped, its rows stay where they are.
    """
    if not partitioned(conn):
        return []
    # One upkeep at a time (every worker opens the ledger at start): the next finds it done.
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_UPKEEP_LOCK})")
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
    ends = [p.end for p in partitions(conn) if p.end is not None]
    month = max(ends) if ends else month_of(now)
    last = add_months(month_of(now), ahead)
    made: list[str] = []
    while month <= last:
        name, following = partition_name(month), add_months(month, 1)
        try:
            with conn.begin_nested():
                # A plain table attached: ATTACH locks the parent only against other schema
                # changes (SHARE UPDATE EXCLUSIVE), where CREATE … PARTITION OF would stop
                # every push for as long as it waited.
                conn.exec_driver_sql(f"CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS)")
                conn.exec_driver_sql(
                    f"ALTER TABLE events ATTACH PARTITION {name} "
                    f"FOR VALUES FROM ('{month.isoformat()}') TO ('{following.isoformat()}')"
                )
            made.append(name)
        except DBAPIError as exc:
            log.warning("events partition %s not made (tried again next hour): %s", name, exc.orig)
        month = following
    return made


def detach_before(
    conn: Connection, cutoff: date, now: datetime, keep_months: int = KEEP_MONTHS
) -> list[Partition]:
    """Detach every month partition that ends on or before `cutoff` (a month's first day);
    the partitions detached, now standalone tables. Refuses a cutoff inside the last
    `keep_months` months, and a ledger whose events are not partitioned."""
    if not partitioned(conn):
        raise LedgerError(
            "partitions.none", "this ledger's events are not partitioned (PostgreSQL only)"
        )
    if cutoff != month_of(cutoff):
        raise LedgerError("partitions.cutoff", f"{cutoff} is not the first day of a month")
    floor = add_months(month_of(now), -keep_months)
    if cutoff > floor:
        raise LedgerError(
            "partitions.too_recent",
            f"events from {floor:%Y-%m} on are kept ({keep_months} months): a station may "
            f"still send them; detach before {floor:%Y-%m} at the latest",
        )
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
    gone = [p for p in partitions(conn) if p.end is not None and p.end <= cutoff]
    for partition in gone:
        _count_archived(conn, partition.name, now)
        conn.exec_driver_sql(f'ALTER TABLE events DETACH PARTITION "{partition.name}"')
    return gone


def _count_archived(conn: Connection, name: str, now: datetime) -> None:
    """Add the partition's events, per station and epoch, to `events_archived`: a past
    month's partition takes no new rows (each push stores its own time), so the counts
    hold when it is detached in the same transaction."""
    counted = conn.exec_driver_sql(
        f'SELECT station_id, epoch, COUNT(*), MAX(seq) FROM "{name}" '  # noqa: S608 - our name
        "GROUP BY station_id, epoch"
    ).all()
    if not counted:
        return
    rows = [
        {"station_id": s, "epoch": e, "events": n, "high_seq": h, "archived_at": now.isoformat()}
        for s, e, n, h in counted
    ]
    stmt = pg_insert(events_archived)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["station_id", "epoch"],
            set_={
                "events": events_archived.c.events + stmt.excluded.events,
                "high_seq": func.greatest(events_archived.c.high_seq, stmt.excluded.high_seq),
                "archived_at": stmt.excluded.archived_at,
            },
        ),
        rows,
    )
