"""HQ's review list: what stations did beyond their authority, suspensions, and the
adjustments waiting for approval.

Flags are written in the push's own transaction, so an event and the flag it earned commit
together. A station with `suspend_after` unresolved rule breaks in the policy's window is
suspended at once: its changes feed turns offline redemption off for it alone. HQ lifts a
suspension by resolving the station's flags.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, distinct, func, insert, select, update

from .book import Book
from .changes import append_changes
from .context import Context
from .database import Database, bulk_insert
from .errors import LedgerError
from .handlers import book_adjustment
from .keys import KeyRing
from .payload import Rejected, parse_moment
from .postings import millis
from .rulesets import RuleLookup
from .schema import adjustments, station_flags, station_reviews
from .stations import is_suspended, require_station
from .trust import Flag, TrustPolicy

__all__ = [
    "decide_adjustment",
    "list_adjustments",
    "list_flags",
    "record_flags",
    "review_list",
    "set_suspended",
]

_MAX_LIST = 1000


def record_flags(
    conn: Connection,
    station_id: str,
    flags: Sequence[tuple[str, Flag]],
    policy: TrustPolicy,
    now: datetime,
) -> None:
    """Keep a push's flags, and suspend the station once its rule breaks reach the limit."""
    if not flags:
        return
    now_ms = millis(now)
    bulk_insert(
        conn,
        station_flags,
        [
            {
                "station_id": station_id,
                "event_id": event_id,
                "code": flag.code,
                "detail": flag.detail,
                "member_id": flag.member_id,
                "points": flag.points,
                "shortfall": flag.shortfall,
                "suspends": flag.suspends,
                "flagged_at": now.isoformat(),
                "flagged_ms": now_ms,
                "resolved_at": None,
                "resolved_by": None,
            }
            for event_id, flag in flags
        ],
    )
    if not any(flag.suspends for _, flag in flags) or is_suspended(conn, station_id):
        return
    breaks = conn.execute(
        select(func.count(distinct(station_flags.c.event_id))).where(
            station_flags.c.station_id == station_id,
            station_flags.c.suspends.is_(True),
            station_flags.c.resolved_at.is_(None),
            station_flags.c.flagged_ms >= now_ms - policy.suspend_window_s * 1000,
        )
    ).scalar_one()
    if int(breaks) >= policy.suspend_after:
        hours = policy.suspend_window_s // 3600
        _put_review(
            conn,
            station_id,
            suspended=True,
            reason=f"automatic: {breaks} rule breaks in {hours} h",
            by="cloud",
            now=now,
        )


def _put_review(
    conn: Connection,
    station_id: str,
    *,
    suspended: bool,
    reason: str | None,
    by: str,
    now: datetime,
) -> None:
    values = {
        "suspended": suspended,
        "reason": reason,
        "changed_at": now.isoformat(),
        "changed_by": by,
    }
    done = conn.execute(
        update(station_reviews).where(station_reviews.c.station_id == station_id).values(values)
    )
    if done.rowcount == 0:
        conn.execute(insert(station_reviews).values(station_id=station_id, **values))


def set_suspended(
    conn: Connection,
    station_id: str,
    *,
    suspended: bool,
    by: str,
    reason: str | None,
    now: datetime,
) -> dict[str, Any]:
    """HQ suspends a station's offline redemption, or lifts it: lifting resolves every open
    flag of the station (HQ has looked at them), so the old breaks do not suspend it again."""
    require_station(conn, station_id)
    _put_review(conn, station_id, suspended=suspended, reason=reason, by=by, now=now)
    if not suspended:
        conn.execute(
            update(station_flags)
            .where(station_flags.c.station_id == station_id, station_flags.c.resolved_at.is_(None))
            .values(resolved_at=now.isoformat(), resolved_by=by)
        )
    return review_list(conn, station_id)[0]


def review_list(conn: Connection, station_id: str | None = None) -> list[dict[str, Any]]:
    """Every station with an open flag, a suspension or an adjustment waiting for HQ; with
    `station_id`, that station's row alone, whatever it holds."""
    open_flags = conn.execute(
        select(
            station_flags.c.station_id,
            func.count().label("n"),
            func.coalesce(func.sum(station_flags.c.shortfall), 0).label("shortfall"),
            func.max(station_flags.c.flagged_at).label("last"),
        )
        .where(station_flags.c.resolved_at.is_(None))
        .group_by(station_flags.c.station_id)
    ).all()
    pending = {
        str(station_id): int(count)
        for station_id, count in conn.execute(
            select(adjustments.c.station_id, func.count())
            .where(adjustments.c.status == "pending")
            .group_by(adjustments.c.station_id)
        )
    }
    reviews = {row.station_id: row for row in conn.execute(select(station_reviews))}
    flagged = {row.station_id: row for row in open_flags}
    listed = (
        [station_id]
        if station_id is not None
        else sorted(set(flagged) | set(pending) | {s for s, r in reviews.items() if r.suspended})
    )
    out: list[dict[str, Any]] = []
    for listed_id in listed:
        flag_row = flagged.get(listed_id)
        review = reviews.get(listed_id)
        out.append(
            {
                "station_id": listed_id,
                "suspended": bool(review.suspended) if review is not None else False,
                "suspended_reason": review.reason if review is not None else None,
                "changed_at": review.changed_at if review is not None else None,
                "changed_by": review.changed_by if review is not None else None,
                "open_flags": int(flag_row.n) if flag_row is not None else 0,
                "flagged_overdraft": int(flag_row.shortfall) if flag_row is not None else 0,
                "last_flagged_at": flag_row.last if flag_row is not None else None,
                "pending_adjustments": int(pending.get(listed_id, 0)),
            }
        )
    return out


def list_flags(
    conn: Connection, station_id: str | None, *, open_only: bool, limit: int
) -> list[dict[str, Any]]:
    stmt = select(station_flags).order_by(station_flags.c.flag_id.desc())
    if station_id is not None:
        stmt = stmt.where(station_flags.c.station_id == station_id)
    if open_only:
        stmt = stmt.where(station_flags.c.resolved_at.is_(None))
    rows = conn.execute(stmt.limit(max(1, min(limit, _MAX_LIST))))
    return [{**row._mapping, "suspends": bool(row.suspends)} for row in rows]


def list_adjustments(conn: Connection, status: str | None, limit: int) -> list[dict[str, Any]]:
    stmt = select(adjustments).order_by(adjustments.c.received_ms.desc())
    if status is not None:
        stmt = stmt.where(adjustments.c.status == status)
    return [dict(row._mapping) for row in conn.execute(stmt.limit(max(1, min(limit, _MAX_LIST))))]


def decide_adjustment(
    db: Database,
    conn: Connection,
    keys: KeyRing,
    rules: RuleLookup,
    event_id: str,
    *,
    approve: bool,
    by: str,
    note: str | None,
    policy: TrustPolicy,
    now: datetime,
) -> dict[str, Any]:
    """Approve (book it now, as the station asked) or decline a held adjustment; once."""
    stmt = select(adjustments).where(adjustments.c.event_id == event_id)
    if db.dialect == "postgresql":
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).first()
    if row is None:
        raise LedgerError("adjustment.unknown", f"no adjustment from event {event_id}")
    if row.status != "pending":
        raise LedgerError("adjustment.decided", f"adjustment {event_id} is {row.status} already")
    if approve:
        book = Book(conn, now, lock=db.dialect == "postgresql")
        ctx = Context(book, keys, rules, row.station_id, policy, event_id=event_id)
        expires = None if row.expires_at is None else parse_moment(row.expires_at)
        try:
            book_adjustment(ctx, row.member_id, int(row.points), expires, parse_moment(row.at))
        except Rejected as exc:  # the member was erased since: nothing to book it to
            raise LedgerError("adjustment.member_gone", exc.reason) from exc
        book.flush()
        changed = [("member", m) for m in book.touched] + [("deny", m) for m in book.deny_touched]
        append_changes(db, conn, changed, now)
    conn.execute(
        update(adjustments)
        .where(adjustments.c.event_id == event_id)
        .values(
            status="approved" if approve else "declined",
            decided_at=now.isoformat(),
            decided_by=by,
            note=note,
        )
    )
    conn.execute(
        update(station_flags)
        .where(
            station_flags.c.event_id == event_id,
            station_flags.c.code == "adjustment.pending",
            station_flags.c.resolved_at.is_(None),
        )
        .values(resolved_at=now.isoformat(), resolved_by=by)
    )
    found = conn.execute(select(adjustments).where(adjustments.c.event_id == event_id)).one()
    return dict(found._mapping)
