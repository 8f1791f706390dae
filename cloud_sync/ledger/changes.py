"""The changes log and the pages stations pull from it.

Every change a station must hear of (a rule set published, a member's state, a deny-list
entry) appends a row with a global, ever-growing id. A page answers the rows after the
station's cursor, each member once with its CURRENT state, plus (always) the station's
allowance and HQ's switch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, func, insert, select, update

from cloud_sync.wire import MAX_BATCH, ChangesResponse, SignedRuleSet

from .allowances import AllowancePolicy, current_allowance, get_offline_redemption
from .database import Database
from .errors import LedgerError
from .schema import changes, counters, high_water, rulesets
from .stations import require_station
from .views import deny_entries, member_deltas

__all__ = ["append_changes", "bump_counter", "changes_page"]


def append_changes(
    db: Database, conn: Connection, rows: Sequence[tuple[str, str]], now: datetime
) -> None:
    """Append (kind, ref) rows; call last in a transaction (ids must follow commit order)."""
    if not rows:
        return
    db.lock_changes(conn)
    at = now.isoformat()
    conn.execute(insert(changes), [{"kind": kind, "ref": ref, "at": at} for kind, ref in rows])


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
    require_station(conn, station_id)
    found = conn.execute(
        select(changes.c.id, changes.c.kind, changes.c.ref)
        .where(changes.c.id > since)
        .order_by(changes.c.id)
        .limit(limit + 1)
    ).all()
    if not found and since > 0:
        last = conn.execute(select(func.max(changes.c.id))).scalar_one_or_none() or 0
        if last < since:
            # A cursor past the log's end: the cloud was restored from an older backup.
            # Start the station again from the beginning rather than leave it deaf.
            return changes_page(conn, station_id, 0, limit, policy, now)
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
        offline_redemption=get_offline_redemption(conn),
        server_time=now.isoformat(),
    )
