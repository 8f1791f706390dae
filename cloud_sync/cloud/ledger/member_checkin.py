"""The member app's daily check-in: one a day per member, in the chain's time zone.

The day comes from the cloud's clock (a phone's clock is the member's to set). The check-in
row and the points it earns are written in ONE transaction: the member's row is locked first
(PostgreSQL; SQLite has one writer), and the row's primary key (member, day) refuses a second
one however many arrive at once, so a request that loses the race books nothing.

Points are booked through the ledger's own postings like HQ's adjustment: a `credit` from
`points_issued` (the roll-forward counts them as issued, like earn), kind `checkin`, with no
station (the "HQ" row), expiring as the rules in force say; stations hear the new balance in
the changes feed.

Streak: consecutive days including today (yesterday's streak + 1, else 1). The bonus of
every `streak` entry whose `days` divides today's streak is added (`CheckinRule.bonus_for`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from cloud_sync.core.ruleset import points_expire_at

from .accounts import ISSUED
from .aggregates import chain_zone
from .book import Book
from .changes import append_changes
from .database import Database
from .errors import LedgerError
from .member_signed_in import signed_in_member
from .postings import Booking, Credit, credit
from .rulesets import RuleBook, RuleLookup
from .schema_app import checkins
from .views import spendable_points

__all__ = [
    "CHECKIN_KIND",
    "CheckedIn",
    "CheckinRecord",
    "MemberGone",
    "check_in",
    "checkin_day",
]

CHECKIN_KIND = "checkin"


class MemberGone(LookupError):
    """The token's member was erased (or never was): the app must sign in again."""


@dataclass(frozen=True)
class CheckinRecord:
    day: str  # YYYY-MM-DD in the chain's zone
    streak: int
    points: int  # the day's points, bonus included
    bonus: int
    at: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class CheckedIn(LedgerError):
    """The member has checked in today already; `record` is that check-in."""

    def __init__(self, record: CheckinRecord) -> None:
        super().__init__("member_app.checked_in", f"already checked in on {record.day}")
        self.record = record


def checkin_day(zone: Any, now: datetime) -> date:
    """The chain's calendar day at `now` (midnight in the chain's zone starts a new one)."""
    return now.astimezone(zone).date()


def _record(row: Any) -> CheckinRecord:
    return CheckinRecord(
        day=row.day, streak=int(row.streak), points=int(row.points), bonus=int(row.bonus), at=row.at
    )


def _on_day(conn: Connection, member_id: str, day: date) -> CheckinRecord | None:
    row = conn.execute(
        select(checkins).where(checkins.c.member_id == member_id, checkins.c.day == day.isoformat())
    ).first()
    return None if row is None else _record(row)


def _insert_once(db: Database, conn: Connection, values: dict[str, Any]) -> bool:
    """Insert the day's row; False when (member, day) is taken already."""
    stmt = pg_insert(checkins) if db.dialect == "postgresql" else sqlite_insert(checkins)
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT SQLAlchemy sends this way.
    inserted = stmt.values(values).on_conflict_do_nothing().returning(checkins.c.day)
    return conn.execute(inserted).first() is not None


def check_in(
    db: Database,
    conn: Connection,
    rules: RuleBook,
    *,
    member_id: str,
    now: datetime,
) -> tuple[CheckinRecord, int]:
    """Book today's check-in; (the record, the member's spendable balance after it).

    Raises MemberGone, CheckedIn (with today's record) or LedgerError
    `member_app.checkin_off` when the rules in force have no `checkin` section.
    """
    if signed_in_member(conn, member_id) is None:
        raise MemberGone(member_id)
    book = Book(conn, now, lock=db.dialect == "postgresql")
    member = book.active(member_id)  # locked (PostgreSQL): check-ins of one member queue here
    if member is None or member.phone_index is None:
        raise MemberGone(member_id)
    zone = chain_zone(conn)
    day = checkin_day(zone, now)
    done = _on_day(conn, member.member_id, day)
    if done is not None:
        raise CheckedIn(done)
    ruleset = RuleLookup(rules, conn).in_force(now)
    rule = None if ruleset is None else ruleset.checkin
    if ruleset is None or rule is None:
        raise LedgerError("member_app.checkin_off", "check-in is not offered by the rules in force")
    yesterday = _on_day(conn, member.member_id, day - timedelta(days=1))
    streak = 1 if yesterday is None else yesterday.streak + 1
    bonus = rule.bonus_for(streak)
    record = CheckinRecord(
        day=day.isoformat(),
        streak=streak,
        points=rule.points + bonus,
        bonus=bonus,
        at=now.astimezone(zone).isoformat(timespec="seconds"),  # as the member reads it
    )
    if not _insert_once(db, conn, {"member_id": member.member_id, **record.as_dict()}):
        taken = _on_day(conn, member.member_id, day)
        assert taken is not None
        raise CheckedIn(taken)
    if record.points > 0:
        credit(
            book,
            member,
            [Credit(record.points, points_expire_at(ruleset, now))],
            kind=CHECKIN_KIND,
            counter=ISSUED,
            booking=Booking(at=now, event_id=f"checkin:{member.member_id}:{record.day}"),
        )
        book.flush()
        changed = [("member", m) for m in book.touched] + [("deny", m) for m in book.deny_touched]
        append_changes(db, conn, changed, now)
    return record, spendable_points(conn, member.member_id, now)
