"""A member's own plates, added and removed in the app.

A plate is normalized (`cloud_sync.core.identity`) and sealed under the chain's keys exactly
as a station seals it, found by its blind index. A plate belongs to one member at a time:
one that another member holds is refused without saying whose (a cashier who sees both cars
moves a plate at the counter), and only below the member's limit, which is checked first
so a member at the limit learns nothing of anyone's plates. Adds are taken at the member's
word (no vehicle licence is checked yet), so each attempt counts towards a daily limit
(`take_plate_attempt`, refused ones too: a member cannot test plates without end). Each
change is audited as the member and goes into the changes feed, so every station's copy of
the member gains or loses the plate at its next pull.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from cloud_sync.core.identity import normalize_plate
from cloud_sync.core.privacy import MemberKeys, blind_index, decrypt_field, encrypt_field

from .audit import record_audit
from .changes import append_changes
from .database import Database, serials
from .errors import LedgerError
from .postings import millis
from .schema import members, plates
from .schema_app import member_plate_adds

__all__ = [
    "MAX_PLATES",
    "PLATE_ADDS_PER_DAY",
    "add_plate",
    "member_plates",
    "remove_plate",
    "take_plate_attempt",
]

MAX_PLATES = 5  # plates one member keeps in the app (a fleet's cars are a fleet account)
PLATE_ADDS_PER_DAY = 10  # add attempts per member in any 24 hours, refused ones included
_DAY_MS = 24 * 3600 * 1000
_PLATE_TEXT_MAX = 32  # characters typed; the longest plate is 8


def member_plates(conn: Connection, keys: MemberKeys, member_id: str) -> list[dict[str, Any]]:
    """The member's plates, oldest first, unsealed (ix_plates_member)."""
    stmt = (
        select(plates.c.plate_sealed, plates.c.attached_at)
        .where(plates.c.member_id == member_id)
        .order_by(plates.c.attached_at, plates.c.plate_index)
    )
    return [
        {"plate": decrypt_field(keys, "plate", row.plate_sealed), "attached_at": row.attached_at}
        for row in conn.execute(stmt)
    ]


def _index(keys: MemberKeys, raw: str) -> tuple[str, str]:
    """(normalized plate, its blind index); IdentityError (422 plate.*) on a bad plate."""
    if len(raw) > _PLATE_TEXT_MAX:
        raise LedgerError("plate.format", "not a valid plate")
    plate = normalize_plate(raw)
    return plate, blind_index(keys, "plate", plate)


def _lock_member(db: Database, conn: Connection, member_id: str) -> None:
    """One plate change per member at a time (PostgreSQL; SQLite has one writer), so the
    limit holds under parallel requests."""
    if db.dialect == "postgresql":
        conn.execute(
            select(members.c.member_id).where(members.c.member_id == member_id).with_for_update()
        )


def take_plate_attempt(db: Database, conn: Connection, member_id: str, now: datetime) -> int:
    """Count one add attempt of the member: 0 to go on, or the seconds until the oldest
    counted attempt leaves the 24 hours (nothing counted then). Run in a transaction of its
    own before the add, so a refused add stays counted; the member's row is locked, so
    parallel attempts are counted one after another."""
    _lock_member(db, conn, member_id)
    now_ms = millis(now)
    conn.execute(delete(member_plate_adds).where(member_plate_adds.c.at_ms <= now_ms - _DAY_MS))
    recent = list(
        conn.execute(
            select(member_plate_adds.c.at_ms)
            .where(member_plate_adds.c.member_id == member_id)
            .order_by(member_plate_adds.c.at_ms.desc())
            .limit(PLATE_ADDS_PER_DAY)
        ).scalars()
    )
    if len(recent) >= PLATE_ADDS_PER_DAY:
        leaves_ms = int(recent[-1]) + _DAY_MS - now_ms
        return max(1, -(-leaves_ms // 1000))
    numbered = {column: n[0] for column, n in serials(conn, member_plate_adds, 1).items()}
    conn.execute(insert(member_plate_adds).values(member_id=member_id, at_ms=now_ms, **numbered))
    return 0


def add_plate(
    db: Database, conn: Connection, keys: MemberKeys, member_id: str, raw: str, now: datetime
) -> tuple[list[dict[str, Any]], bool]:
    """Attach a plate to the member: (the member's plates, True when it was added now).

    The member's own plate again changes nothing. Two members racing for one plate: the
    primary key lets one in, the other's transaction is run again and finds it taken."""
    plate, index = _index(keys, raw)
    _lock_member(db, conn, member_id)
    owner = conn.execute(
        select(plates.c.member_id).where(plates.c.plate_index == index)
    ).scalar_one_or_none()
    if owner == member_id:
        return member_plates(conn, keys, member_id), False
    held = conn.execute(
        select(func.count()).select_from(plates).where(plates.c.member_id == member_id)
    ).scalar_one()
    if int(held) >= MAX_PLATES:  # before whose the plate is: the limit says nothing of others
        raise LedgerError(
            "member_app.plate_limit", f"a member keeps at most {MAX_PLATES} plates: remove one"
        )
    if owner is not None:
        raise LedgerError("member_app.plate_taken", "that plate belongs to another member")
    conn.execute(
        insert(plates).values(
            plate_index=index,
            member_id=member_id,
            plate_sealed=encrypt_field(keys, "plate", plate),
            attached_at=now.isoformat(),
        )
    )
    record_audit(
        conn,
        actor=f"member:{member_id}",
        action="member.plate_added",
        target=member_id,
        at=now,
        after={"plates": int(held) + 1},
    )
    append_changes(db, conn, [("member", member_id)], now)
    return member_plates(conn, keys, member_id), True


def remove_plate(
    db: Database, conn: Connection, keys: MemberKeys, member_id: str, raw: str, now: datetime
) -> list[dict[str, Any]]:
    """Take a plate off the member; `not_found` when the member does not hold it (whether
    someone else does or nobody: the answer is the same)."""
    _, index = _index(keys, raw)
    _lock_member(db, conn, member_id)
    done = conn.execute(
        delete(plates).where(plates.c.plate_index == index, plates.c.member_id == member_id)
    )
    if done.rowcount != 1:
        raise LedgerError("not_found", "the member holds no such plate")
    left = member_plates(conn, keys, member_id)
    record_audit(
        conn,
        actor=f"member:{member_id}",
        action="member.plate_removed",
        target=member_id,
        at=now,
        after={"plates": len(left)},
    )
    append_changes(db, conn, [("member", member_id)], now)
    return left
