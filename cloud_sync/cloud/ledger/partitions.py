"""Events partitioned by the month they arrived, on PostgreSQL (docs/scale.md §6).

Events are the biggest append-only table and the one that can shed its past: the ledger
reads old events only for receipts, tier history, erasure and HQ's lists. Each month is its
own partition (`events_2027_01` holds `received_at` from 2027-01-01 up to 2027-02-01,
compared as the ISO text the push stores); `events_default` takes any row whose month has
none yet, so an insert never fails for want of a partition. A ledger migrated from schema 5
keeps its old table as one partition, `events_v5`, from the beginning of time up to the
end of the upgrade month (or of its newest row's month, if later).

`keep_partitions` makes the months ahead (at every open, then hourly beside lot expiry).
`detach_before` is the retention step an operator runs (`loyalpump cloud db partitions
--detach-before`): whole months leave the ledger as standalone tables to dump and drop.
What leaves is counted first, in the same transaction: per station in `events_archived`
(so the ledger's invariants still account for every sequence number) and the tier moves
in `tier_moves_archived` (so HQ's tier movements survive a rebuild). It refuses months a
station may still send (`keep_months`): an event archived and sent again is answered as a
conflict, not as a duplicate, so the window must exceed any station's offline time plus its
outbox retention.

SQLite keeps one events table; every function here is a no-op or a refusal there.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from sqlalchemy import Connection, column, func, select, table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError

from cloud_sync.core.events import MemberTierChanged

from .aggregates_ledger import pages, read_tier_change
from .errors import LedgerError
from .schema import events_archived, tier_moves_archived

__all__ = [
    "AHEAD_MONTHS",
    "KEEP_MONTHS",
    "Partition",
    "add_months",
    "detach_before",
    "detached_tables",
    "earliest_cutoff",
    "keep_partitions",
    "leaves_from",
    "month_of",
    "partition_name",
    "partitioned",
    "partitions",
]

log = logging.getLogger(__name__)

AHEAD_MONTHS = 2  # months made ahead of the current one: an hourly job has ~1,400 tries
KEEP_MONTHS = 13  # the retention floor: a year of offline station plus a month's margin
_UPKEEP_LOCK = 0x6C70_7061_7274  # "lppart": one upkeep at a time (pg_try_advisory_xact_lock)
# How long making or detaching a month may wait for a lock. ATTACH and DETACH lock the
# default partition (ATTACH reads it), so a read of events that cannot skip it waits behind
# them for at most this long; a month not made is tried again the next hour.
_LOCK_TIMEOUT = "1s"
_DEFAULT_TAKEN = "23514"  # the default partition holds rows of the month to be made
_BOUNDS = re.compile(r"FOR VALUES FROM \((.+)\) TO \((.+)\)")


@dataclass(frozen=True)
class Partition:
    """One partition of events: `start` None for MINVALUE; both None for the default."""

    name: str
    start: date | None
    end: date | None
    rows: int | None  # PostgreSQL's estimate (None: never analysed); exact once detached
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


def _bound(text: str, *, upper: bool) -> date | None:
    """A range bound as PostgreSQL prints it; one we did not write (MAXVALUE, another
    type) reads as open, so a hand-made partition never stops the ledger from opening."""
    text = text.strip()
    if text == "MINVALUE":
        return None
    try:
        return date.fromisoformat(text.strip("'")[:10])
    except ValueError:
        return date.max if upper else None


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
        estimate = None if tuples < 0 else int(tuples)  # -1: never analysed
        match = _BOUNDS.fullmatch(bound)
        if match is None:  # "DEFAULT"
            found.append(Partition(name, None, None, estimate, default=True))
            continue
        start, end = _bound(match[1], upper=False), _bound(match[2], upper=True)
        found.append(Partition(name, start, end, estimate, default=False))
    return sorted(found, key=lambda p: (p.default, p.end or date.max))


def keep_partitions(conn: Connection, now: datetime, ahead: int = AHEAD_MONTHS) -> list[str]:
    """Make the month partitions from the last one's end up to `ahead` months after now's
    month; the names made. A month whose rows already sit in the default partition cannot
    get its own (PostgreSQL refuses): it is logged and skipped for good, its rows stay where
    they are. Any other refusal (a lock not granted in time) stops this run; the next one
    starts again from the same month. Returns at once if another process is at it."""
    if not partitioned(conn):
        return []
    if not conn.exec_driver_sql(f"SELECT pg_try_advisory_xact_lock({_UPKEEP_LOCK})").scalar():
        return []
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
                # changes (SHARE UPDATE EXCLUSIVE), so pushes go on inserting; CREATE …
                # PARTITION OF would lock them out for as long as it waited.
                conn.exec_driver_sql(f"CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS)")
                conn.exec_driver_sql(
                    f"ALTER TABLE events ATTACH PARTITION {name} "
                    f"FOR VALUES FROM ('{month.isoformat()}') TO ('{following.isoformat()}')"
                )
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != _DEFAULT_TAKEN:
                log.warning("events partition %s not made (next hour): %s", name, exc.orig)
                break
            log.warning("events partition %s skipped: its rows are in events_default", name)
        else:
            made.append(name)
        month = following
    return made


def earliest_cutoff(now: datetime, keep_months: int = KEEP_MONTHS) -> date:
    """The latest `--detach-before` allowed now: the current month and the `keep_months`
    whole months before it stay."""
    return add_months(month_of(now), -keep_months)


def leaves_from(partition: Partition, keep_months: int = KEEP_MONTHS) -> date | None:
    """The first month in which the partition may be detached (None: never, the default)."""
    if partition.end is None or partition.end == date.max:
        return None
    return add_months(partition.end, keep_months)


def detached_tables(conn: Connection) -> list[str]:
    """Months detached and not yet dropped: standalone tables still holding events (and
    members' sealed fields) that the archive step should dump and drop."""
    if not partitioned(conn):
        return []
    found = conn.exec_driver_sql(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND NOT c.relispartition "
        r"AND c.relname ~ '^events_(v5|[0-9]{4}_[0-9]{2})$' ORDER BY c.relname"
    ).scalars()
    return [str(name) for name in found]


def detach_before(
    conn: Connection, cutoff: date, now: datetime, keep_months: int = KEEP_MONTHS
) -> list[Partition]:
    """Detach every month partition that ends on or before `cutoff` (a month's first day);
    the partitions detached (now standalone tables) with their exact number of events.
    Refuses a cutoff inside the last `keep_months` months, and a ledger whose events are
    not partitioned. Counting comes first and each month is locked against writes while
    counted, so the parent's exclusive lock (DETACH) is held only from the first detach to
    the commit, not through the counting."""
    if not partitioned(conn):
        raise LedgerError(
            "partitions.none", "this ledger's events are not partitioned (PostgreSQL only)"
        )
    if cutoff != month_of(cutoff):
        raise LedgerError("partitions.cutoff", f"{cutoff} is not the first day of a month")
    floor = earliest_cutoff(now, keep_months)
    if cutoff > floor:
        months = "month" if keep_months == 1 else "months"
        raise LedgerError(
            "partitions.too_recent",
            f"events from {floor:%Y-%m} on are kept (this month and the {keep_months} "
            f"{months} before it): a station may still send them; the latest cutoff is "
            f"{floor:%Y-%m}",
        )
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
    leaving = [p for p in partitions(conn) if p.end is not None and p.end <= cutoff]
    counted = []
    for partition in leaving:
        conn.exec_driver_sql(f'LOCK TABLE "{partition.name}" IN SHARE MODE')
        counted.append(replace(partition, rows=_archive(conn, partition.name, now)))
    for partition in counted:
        conn.exec_driver_sql(f'ALTER TABLE events DETACH PARTITION "{partition.name}"')
    return counted


def _archive(conn: Connection, name: str, now: datetime) -> int:
    """Count what leaves with this partition into `events_archived` (per station and epoch)
    and `tier_moves_archived`; the number of its events."""
    month = table(name, column("station_id"), column("epoch"), column("seq"))
    counted = conn.execute(
        select(month.c.station_id, month.c.epoch, func.count(), func.max(month.c.seq)).group_by(
            month.c.station_id, month.c.epoch
        )
    ).all()
    if counted:
        rows = [
            {
                "station_id": s,
                "epoch": e,
                "events": n,
                "high_seq": h,
                "archived_at": now.isoformat(),
            }
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
    _archive_tier_moves(conn, name)
    return sum(int(n) for _, _, n, _ in counted)


def _archive_tier_moves(conn: Connection, name: str) -> None:
    """The applied member.tier_changed events of the partition, per quarter hour (UTC) and
    tier pair, added to `tier_moves_archived`; a page of events at a time."""
    month = table(
        name, column("id"), column("body"), column("received_at"), column("kind"), column("status")
    )
    moves: Counter[tuple[str, str, str]] = Counter()
    stmt = select(month.c.id, month.c.body, month.c.received_at).where(
        month.c.kind == MemberTierChanged.kind, month.c.status == "applied"
    )
    for page in pages(conn, stmt, month.c.id):
        for row in page:
            at, before, after = read_tier_change(row.body, row.received_at)
            if before != after:
                utc = at.astimezone(UTC)
                quarter = utc.replace(minute=utc.minute - utc.minute % 15, second=0, microsecond=0)
                moves[(quarter.strftime("%Y-%m-%dT%H:%M"), before, after)] += 1
    if not moves:
        return
    add = pg_insert(tier_moves_archived)
    conn.execute(
        add.on_conflict_do_update(
            index_elements=["at_utc", "from_tier", "to_tier"],
            set_={"changes": tier_moves_archived.c.changes + add.excluded.changes},
        ),
        [
            {"at_utc": quarter, "from_tier": before, "to_tier": after, "changes": n}
            for (quarter, before, after), n in moves.items()
        ],
    )
