"""Who a phone signs in as in the member's app, and signing up a phone that is no member.

A member created here is made exactly as an imported one (`member_import`): phone and name
sealed under the chain's keys, registered at HQ (no station), with the consent given in the
app, booked through the ledger's `Book` (so HQ's reports count the new member) and put in
the changes feed, so every station hears of the member. Two sign-ups of one phone make one
member: `member_phones`' key (one active member per phone) refuses the second insert, and
the transaction is run again (PostgreSQL's unique violation is one of the states
`Database.transact` retries; SQLite has one writer), this time finding the first member.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Final

from sqlalchemy import Connection, select

from cloud_sync.core.identity import mask_phone
from cloud_sync.core.privacy import MemberKeys, blind_index, encrypt_field

from .book import Book, Member
from .changes import append_changes
from .database import Database
from .errors import LedgerError
from .member_import import new_member_id
from .postings import millis
from .schema import member_phones, members

__all__ = ["CONSENT_CHANNEL", "MAX_NAME", "clean_name", "member_for_phone", "sign_up"]

CONSENT_CHANNEL: Final = "app"
MAX_NAME: Final = 40  # as a member sheet's name
_MAX_HOPS = 64
_MERGED_SCAN = 16


def clean_name(raw: str | None) -> str | None:
    """The name a person typed, spaces collapsed; None when blank. LedgerError when it is
    too long or holds control characters."""
    if raw is None:
        return None
    text = " ".join(unicodedata.normalize("NFC", raw).split())
    if not text:
        return None
    if len(text) > MAX_NAME or any(unicodedata.category(ch).startswith("C") for ch in text):
        raise LedgerError(
            "member_app.name", f"a name is at most {MAX_NAME} characters, without control ones"
        )
    return text


def _survivor(conn: Connection, member_id: str) -> str | None:
    """The active member `member_id` is (or was merged into); None when erased or lost."""
    current: str | None = member_id
    for _ in range(_MAX_HOPS):
        if current is None:
            return None
        row = conn.execute(
            select(members.c.status, members.c.merged_into, members.c.phone_index).where(
                members.c.member_id == current
            )
        ).first()
        if row is None:
            return None
        if row.status == "active":
            return current if row.phone_index is not None else None
        current = row.merged_into
    return None


def member_for_phone(conn: Connection, phone_index: str) -> str | None:
    """The active member holding the phone: itself, or the survivor of a member merged away
    with it. An erased member holds no phone, so that phone finds nobody (a new sign-up)."""
    active = conn.execute(
        select(member_phones.c.member_id).where(member_phones.c.phone_index == phone_index)
    ).first()
    if active is not None:  # the active holder; were it merged since, its survivor
        found = _survivor(conn, str(active.member_id))
        if found is not None:
            return found
    merged = conn.execute(
        select(members.c.member_id)
        .where(members.c.phone_index == phone_index, members.c.status == "merged")
        .order_by(members.c.member_id)
        .limit(_MERGED_SCAN)
    ).scalars()
    for member_id in list(merged):
        survivor = _survivor(conn, str(member_id))
        if survivor is not None:
            return survivor
    return None


def sign_up(
    db: Database,
    conn: Connection,
    keys: MemberKeys,
    *,
    phone: str,
    name: str | None,
    now: datetime,
) -> tuple[str, bool]:
    """(member id, created) for the E.164 `phone`: its member when it has one, else a new
    member who consented in the app. Call inside `db.transact`, last before the session."""
    phone_index = blind_index(keys, "phone", phone)
    existing = member_for_phone(conn, phone_index)
    if existing is not None:
        return existing, False
    at = now.isoformat()
    member = Member(
        member_id=new_member_id(millis(now)),
        phone_index=phone_index,
        phone_sealed=encrypt_field(keys, "phone", phone),
        phone_masked=mask_phone(phone),
        name_sealed=None if name is None else encrypt_field(keys, "name", name),
        key_id=keys.key_id,
        registered_at=at,
        registered_station=None,
        consent_at=at,
        consent_channel=CONSENT_CHANNEL,
        tier=None,
        status="active",
        merged_into=None,
        overdraft=0,
        denied=False,
        event_id=None,
    )
    book = Book(conn, now, lock=False)  # a new id: nobody else holds this row
    book.add_member(member)
    book.touch(member)
    book.flush()
    append_changes(db, conn, [("member", member.member_id)], now)
    return member.member_id, True
