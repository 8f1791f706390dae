"""The changes log and the pages stations pull from it.

Every change a station must hear of (a rule set published, a member's state, a deny-list
entry) appends a row with a global, ever-growing id. A page answers the rows after the
station's cursor, each member once with its CURRENT state, plus (always) the station's
allowance and HQ's switch.

A member or deny entry appears in the log once, at its latest change (older rows of it
are dropped as a new one is appended), so the log stays as long as the number of members
that changed, not the number of events.

Ids come from the clock (microseconds since the epoch, or the last id + 1 when that is
larger), never from a sequence: after the cloud is restored from an older backup its log
goes on above every cursor a station holds, so no station skips a row or is sent back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from cloud_sync.core.wire import MAX_BATCH, ChangesResponse, SignedRuleSet

from .allowances import AllowancePolicy, current_allowance, get_offline_redemption
from .database import Database, bulk_insert
from .errors import LedgerError
from .schema import changes, counters, high_water, rulesets, station_pulls
from .stations import is_suspended, lock_station
from .views import deny_entries, member_deltas

__all__ = ["append_changes", "bump_counter", "changes_page", "clock_id"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def clock_id(now: datetime) -> int:
    """Microseconds since the Unix epoch, exactly (no float on the way)."""
    return (now - _EPOCH) // _MICROSECOND


def append_changes(
    db: Database, conn: Connection, rows: Sequence[tuple[str, str]], now: datetime
) -> None:
    """Append (kind, ref) rows; call last in a transaction (ids must follow commit order).

    The lock (PostgreSQL; SQLite has one writer) makes the last id read here the last one
    committed, so ids grow monotonically even when the clock steps back.
    """
    if not rows:
        return
    db.lock_changes(conn)
    # Read the last id before compacting: a dropped row may have held it, and a new row
    # must never reuse an id a station's cursor may already stand on.
    last = conn.execute(select(func.max(changes.c.id))).scalar_one_or_none() or 0
    _compact(conn, rows)
    first = max(int(last) + 1, clock_id(now))
    at = now.isoformat()
    bulk_insert(
        conn,
        changes,
        [
            {"id": first + offset, "kind": kind, "ref": ref, "at": at}
            for offset, (kind, ref) in enumerate(rows)
        ],
    )


def _compact(conn: Connection, rows: Sequence[tuple[str, str]]) -> None:
    """Drop the older rows of members and deny entries about to be appended again.

    Pages carry each member's CURRENT state, so an older row of the same member tells a
    station nothing the new one will not: a station whose cursor is past the old row has
    seen it, one before it will see the new row instead. Without this, a member who buys
    every day would sit in the log once per push, and a station catching up would pull
    the same member hundreds of times.
    """
    for kind in ("member", "deny"):
        refs = sorted({ref for row_kind, ref in rows if row_kind == kind})
        for start in range(0, len(refs), _COMPACT_CHUNK):
            chunk = refs[start : start + _COMPACT_CHUNK]
            conn.execute(delete(changes).where(changes.c.kind == kind, changes.c.ref.in_(chunk)))


_COMPACT_CHUNK = 500


def bump_counter(db: Database, conn: Connection, name: str, by: int) -> None:
    db.insert_ignore(conn, counters, [{"name": name, "value": 0}])
    conn.execute(
        update(counters).where(counters.c.name == name).values(value=counters.c.value + by)
    )


def _as_of(conn: Connection, station_id: str) -> tuple[int, int]:
    row = conn.execute(
        select(high_water.c.epoch, high_water.c.high_water)
        .where(high_water.c.station_id == station_id)
        .order_by(high_water.c.epoch.desc())
        .limit(1)
    ).first()
    return (1, 0) if row is None else (int(row.epoch), int(row.high_water))


def record_pull(conn: Connection, station_id: str, since: int, now: datetime) -> None:
    """The station holds every change up to `since`: one upsert per page asked."""
    values = {
        "station_id": station_id,
        "cursor": since,
        "pulled_at": now.isoformat(),
        "pulled_ms": clock_id(now) // 1000,
    }
    stmt = (
        pg_insert(station_pulls)
        if conn.dialect.name == "postgresql"
        else sqlite_insert(station_pulls)
    ).values(values)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[station_pulls.c.station_id],
            set_={k: stmt.excluded[k] for k in ("cursor", "pulled_at", "pulled_ms")},
        )
    )


def changes_page(
    conn: Connection,
    station_id: str,
    since: int,
    limit: int,
    policy: AllowancePolicy,
    now: datetime,
) -> ChangesResponse:
    if since < 0:
        raise LedgerError("changes.cursor", "the cursor is never negative")
    if not 1 <= limit <= MAX_BATCH:
        raise LedgerError("changes.limit", f"limit must be between 1 and {MAX_BATCH}")
    lock_station(conn, station_id)
    record_pull(conn, station_id, since, now)
    found = conn.execute(
        select(changes.c.id, changes.c.kind, changes.c.ref)
        .where(changes.c.id > since)
        .order_by(changes.c.id)
        .limit(limit + 1)
    ).all()
    # A cursor past the log's end (the cloud was restored from an older backup) is simply
    # answered with nothing new: rows appended from now on have larger, clock-based ids.
    page, more = found[:limit], len(found) > limit
    refs: dict[str, dict[str, None]] = {"ruleset": {}, "member": {}, "deny": {}}
    for row in page:
        refs.setdefault(row.kind, {})[row.ref] = None
    versions = [int(v) for v in refs["ruleset"]]
    signed = []
    if versions:
        for row in conn.execute(
            select(rulesets).where(rulesets.c.version.in_(versions)).order_by(rulesets.c.version)
        ):
            signed.append(
                SignedRuleSet(
                    version=row.version,
                    document=row.document,
                    signature=row.signature,
                    signing_key_id=row.signing_key_id,
                )
            )
    epoch, mark = _as_of(conn, station_id)
    return ChangesResponse(
        cursor=since,
        next_cursor=int(page[-1].id) if page else since,
        more=more,
        rulesets=signed,
        members=member_deltas(conn, list(refs["member"]), epoch, mark),
        deny=deny_entries(conn, list(refs["deny"])),
        allowance=current_allowance(conn, station_id, policy, now),
        # HQ's switch for the chain, and off for a station under review (suspended).
        offline_redemption=get_offline_redemption(conn) and not is_suspended(conn, station_id),
        server_time=now.isoformat(),
    )
