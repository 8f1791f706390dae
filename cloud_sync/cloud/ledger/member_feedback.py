"""Members' feedback on a visit: a rating 1-5 and a comment, about a sale, a station, or the
chain; and what HQ reads of it per station.

A sale names its station (and must be the member's own); without a sale the member may name
a station. One feedback per sale (a repeat of the same words answers the stored one; other
words are refused), and at most `per_day` in any 24 hours per member, counted with the
member's row locked so parallel posts cannot slip past the limit.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .aggregates import chain_zone
from .database import Database, serials
from .errors import LedgerError
from .member_admin import family_of
from .member_checkin import MemberGone
from .member_signed_in import signed_in_member
from .postings import millis
from .schema import members, sales, stations
from .schema_app import feedback

__all__ = [
    "MAX_COMMENT",
    "FeedbackExists",
    "feedback_by_station",
    "feedback_list",
    "submit_feedback",
    "tidy_comment",
]

MAX_COMMENT = 500
_PAGE_MAX = 200
_ALLOWED_CONTROLS = {"\n", "\t"}


class FeedbackExists(LedgerError):
    def __init__(self, stored: dict[str, Any]) -> None:
        super().__init__(
            "member_app.feedback_exists", "this sale has the member's feedback already"
        )
        self.stored = stored


def tidy_comment(text: str) -> str:
    """Trimmed; at most MAX_COMMENT characters; no control characters but line breaks."""
    comment = text.strip().replace("\r\n", "\n")
    if len(comment) > MAX_COMMENT:
        raise LedgerError("member_app.comment", f"a comment is at most {MAX_COMMENT} characters")
    if any(unicodedata.category(c).startswith("C") and c not in _ALLOWED_CONTROLS for c in comment):
        raise LedgerError("member_app.comment", "a comment has no control characters")
    return comment


def _answer(row: Any) -> dict[str, Any]:
    return {
        "feedback_id": int(row.feedback_id),
        "sale_id": row.sale_id,
        "station_id": row.station_id,
        "rating": int(row.rating),
        "comment": row.comment,
        "at": row.at,
    }


def _station_of(
    conn: Connection, family: list[str], sale_id: str | None, station_id: str | None
) -> str | None:
    if sale_id is not None:
        sale = conn.execute(
            select(sales.c.member_id, sales.c.station_id).where(sales.c.sale_id == sale_id)
        ).first()
        if sale is None or sale.member_id not in family:
            raise LedgerError("not_found", "no such sale")
        if station_id is not None and station_id != sale.station_id:
            raise LedgerError("member_app.station_mismatch", "the sale was made at another station")
        return str(sale.station_id)
    if station_id is None:
        return None
    known = conn.execute(
        select(stations.c.station_id).where(stations.c.station_id == station_id)
    ).first()
    if known is None:
        raise LedgerError("station.unknown", "no station with that id")
    return station_id


def _lock_member(db: Database, conn: Connection, member_id: str) -> None:
    """Serialize one member's feedback (PostgreSQL; SQLite has one writer already)."""
    if db.dialect == "postgresql":
        conn.execute(
            select(members.c.member_id).where(members.c.member_id == member_id).with_for_update()
        )


def submit_feedback(
    db: Database,
    conn: Connection,
    *,
    member_id: str,
    sale_id: str | None,
    station_id: str | None,
    rating: int,
    comment: str,
    per_day: int,
    now: datetime,
) -> tuple[dict[str, Any], bool]:
    """(the feedback, True) when stored; (the stored one, False) on a repeat of the same."""
    if not 1 <= rating <= 5:
        raise LedgerError("member_app.rating", "a rating is 1 to 5")
    text = tidy_comment(comment)
    member = signed_in_member(conn, member_id)
    if member is None:
        raise MemberGone(member_id)
    _lock_member(db, conn, member.member_id)
    family = family_of(conn, member.member_id)
    station = _station_of(conn, family, sale_id, station_id)
    if sale_id is not None:
        stored = conn.execute(
            select(feedback).where(
                feedback.c.member_id == member.member_id, feedback.c.sale_id == sale_id
            )
        ).first()
        if stored is not None:
            if (int(stored.rating), stored.comment) == (rating, text):
                return _answer(stored), False
            raise FeedbackExists(_answer(stored))
    since = millis(now - timedelta(days=1))
    recent = conn.execute(
        select(func.count()).where(
            feedback.c.member_id == member.member_id, feedback.c.at_ms > since
        )
    ).scalar_one()
    if recent >= per_day:
        raise LedgerError(
            "member_app.feedback_limit", f"at most {per_day} feedbacks a day; try tomorrow"
        )
    insert = pg_insert if db.dialect == "postgresql" else sqlite_insert
    values = {
        "member_id": member.member_id,
        "station_id": station,
        "sale_id": sale_id,
        "rating": rating,
        "comment": text,
        "at": now.astimezone(chain_zone(conn)).isoformat(timespec="seconds"),
        "at_ms": millis(now),
    }
    values.update({column: numbers[0] for column, numbers in serials(conn, feedback, 1).items()})
    row = conn.execute(
        insert(feedback).values(values).on_conflict_do_nothing().returning(*feedback.c)
    ).first()
    if row is None:  # pragma: no cover - the member's lock makes this unreachable
        raise LedgerError(
            "member_app.feedback_exists", "this sale has the member's feedback already"
        )
    return _answer(row), True


def _average(total: int, count: int) -> str:
    """The mean rating as a decimal string with 2 places (never a float)."""
    if not count:
        return "0.00"
    return str((Decimal(total) / count).quantize(Decimal("0.01"), ROUND_HALF_UP))


def feedback_by_station(conn: Connection, *, since_ms: int | None = None) -> list[dict[str, Any]]:
    """Per station (None: about the chain): count, mean rating, and how many of each."""
    stmt = (
        select(
            feedback.c.station_id,
            stations.c.name,
            feedback.c.rating,
            func.count().label("n"),
        )
        .join_from(feedback, stations, stations.c.station_id == feedback.c.station_id, isouter=True)
        .group_by(feedback.c.station_id, stations.c.name, feedback.c.rating)
    )
    if since_ms is not None:
        stmt = stmt.where(feedback.c.at_ms >= since_ms)
    found: dict[str | None, dict[str, Any]] = {}
    for row in conn.execute(stmt):
        entry = found.setdefault(
            row.station_id,
            {
                "station_id": row.station_id,
                "station_name": row.name,
                "count": 0,
                "total": 0,
                "ratings": {str(r): 0 for r in range(1, 6)},
            },
        )
        entry["count"] += int(row.n)
        entry["total"] += int(row.n) * int(row.rating)
        entry["ratings"][str(int(row.rating))] += int(row.n)
    out = []
    for entry in sorted(
        found.values(), key=lambda e: (e["station_id"] is None, e["station_id"] or "")
    ):
        total = entry.pop("total")
        out.append({**entry, "average": _average(total, entry["count"])})
    return out


def feedback_list(
    conn: Connection,
    *,
    station_id: str | None = None,
    chain_only: bool = False,
    before: int | None = None,
    limit: int = 50,
    since_ms: int | None = None,
) -> dict[str, Any]:
    """Feedback newest first (`before`: the `next` of the last page), one station's, the
    chain-wide ones (`chain_only`), or all."""
    limit = max(1, min(limit, _PAGE_MAX))
    stmt = select(feedback, stations.c.name).join_from(
        feedback, stations, stations.c.station_id == feedback.c.station_id, isouter=True
    )
    if chain_only:
        stmt = stmt.where(feedback.c.station_id.is_(None))
    elif station_id is not None:
        stmt = stmt.where(feedback.c.station_id == station_id)
    if since_ms is not None:
        stmt = stmt.where(feedback.c.at_ms >= since_ms)
    if before is not None:
        stmt = stmt.where(feedback.c.feedback_id < before)
    rows = conn.execute(stmt.order_by(feedback.c.feedback_id.desc()).limit(limit + 1)).all()
    page = rows[:limit]
    return {
        "feedback": [
            {**_answer(r), "station_name": r.name, "member_id": r.member_id} for r in page
        ],
        "next": int(page[-1].feedback_id) if len(rows) > limit else None,
    }
