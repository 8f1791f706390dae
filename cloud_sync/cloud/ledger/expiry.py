"""The cloud expires lots by their own dates; a station's expiry event only informs it.

Expiry is booked only a grace period after a lot's date: a redemption made offline while
the lot was live may reach the cloud that much later and must still find its points. Until
then a lapsed lot keeps its points but no view counts them (every view compares dates).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, select

from .book import Book
from .changes import append_changes
from .database import Database
from .postings import Booking, expire, millis
from .schema import lots

__all__ = ["expire_some"]

_MEMBERS_PER_TRANSACTION = 500


def expire_some(
    db: Database, conn: Connection, now: datetime, grace: timedelta
) -> tuple[int, bool]:
    """Book expiry for up to a few hundred members' lots that lapsed more than `grace` ago:
    (points expired, more left).

    Idempotent: an expired lot has nothing left to expire the second time.
    """
    cutoff_ms = millis(now - grace)
    due = (
        conn.execute(
            select(lots.c.member_id)
            .where(lots.c.remaining > 0, lots.c.expires_ms <= cutoff_ms)
            .distinct()
            .order_by(lots.c.member_id)
            .limit(_MEMBERS_PER_TRANSACTION + 1)
        )
        .scalars()
        .all()
    )
    batch = list(due[:_MEMBERS_PER_TRANSACTION])
    book = Book(conn, now, lock=db.dialect == "postgresql")
    book.load_members(batch)
    book.preload_lots(batch)
    total = 0
    booking = Booking(at=now)
    for member_id in batch:
        member = book.member(member_id)
        if member is None:
            continue
        lapsed = [
            lot
            for lot in book.lots_of(member_id)
            if lot.remaining > 0 and lot.expires_ms is not None and lot.expires_ms <= cutoff_ms
        ]
        if lapsed:
            total += expire(book, member, lapsed, booking)
    book.flush()
    append_changes(db, conn, [("member", m) for m in book.touched], now)
    return total, len(due) > _MEMBERS_PER_TRANSACTION
