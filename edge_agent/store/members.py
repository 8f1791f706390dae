"""Members and their plates. Personal fields arrive sealed; this module never sees plaintext."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .database import Tx

__all__ = [
    "MemberRow",
    "PlateRow",
    "count_members",
    "get_member",
    "insert_member",
    "member_by_phone_index",
    "member_by_plate_index",
    "member_ids",
    "plate_owner",
    "plates_of",
    "set_member_tier",
    "set_plate_owner",
]


@dataclass(frozen=True)
class MemberRow:
    member_id: str
    phone_index: str
    phone_sealed: str
    phone_masked: str
    name_sealed: str | None
    registered_at: str
    registered_at_ms: int
    registered_station: str
    consent_at: str
    consent_channel: str
    tier: str
    tier_since: str | None
    status: str


@dataclass(frozen=True)
class PlateRow:
    plate_index: str
    member_id: str
    plate_sealed: str
    attached_at: str


_MEMBER_COLUMNS = ", ".join(MemberRow.__dataclass_fields__)


def _member(row: Any) -> MemberRow | None:
    return None if row is None else MemberRow(*row)


def insert_member(tx: Tx, member: MemberRow) -> None:
    tx.table("members").insert(vars(member))


def get_member(tx: Tx, member_id: str) -> MemberRow | None:
    sql = f"SELECT {_MEMBER_COLUMNS} FROM members WHERE member_id = ?"  # noqa: S608
    return _member(tx.execute(sql, [member_id]).fetchone())


def member_by_phone_index(tx: Tx, phone_index: str) -> MemberRow | None:
    sql = f"SELECT {_MEMBER_COLUMNS} FROM members WHERE phone_index = ?"  # noqa: S608
    return _member(tx.execute(sql, [phone_index]).fetchone())


def member_by_plate_index(tx: Tx, plate_index: str) -> MemberRow | None:
    columns = ", ".join(f"m.{name}" for name in MemberRow.__dataclass_fields__)
    sql = (
        f"SELECT {columns} FROM plates p JOIN members m USING (member_id) "  # noqa: S608
        "WHERE p.plate_index = ?"
    )
    return _member(tx.execute(sql, [plate_index]).fetchone())


def plates_of(tx: Tx, member_id: str) -> list[PlateRow]:
    rows = tx.execute(
        "SELECT plate_index, member_id, plate_sealed, attached_at FROM plates "
        "WHERE member_id = ? ORDER BY attached_at, plate_index",
        [member_id],
    ).fetchall()
    return [PlateRow(*row) for row in rows]


def plate_owner(tx: Tx, plate_index: str) -> str | None:
    row = tx.execute("SELECT member_id FROM plates WHERE plate_index = ?", [plate_index]).fetchone()
    return None if row is None else str(row[0])


def set_plate_owner(tx: Tx, plate: PlateRow) -> None:
    """Attach a plate; a plate belongs to one member at a time, so this moves it."""
    tx.execute(
        "INSERT INTO plates (plate_index, member_id, plate_sealed, attached_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (plate_index) DO UPDATE SET "
        "member_id = excluded.member_id, plate_sealed = excluded.plate_sealed, "
        "attached_at = excluded.attached_at",
        [plate.plate_index, plate.member_id, plate.plate_sealed, plate.attached_at],
    )


def set_member_tier(tx: Tx, member_id: str, tier: str, since: str) -> None:
    tx.execute(
        "UPDATE members SET tier = ?, tier_since = ? WHERE member_id = ?",
        [tier, since, member_id],
    )


def member_ids(tx: Tx) -> list[str]:
    rows = tx.execute(
        "SELECT member_id FROM members WHERE status = 'active' ORDER BY member_id"
    ).fetchall()
    return [str(row[0]) for row in rows]


def count_members(tx: Tx) -> int:
    return int(tx.execute("SELECT count(*) FROM members").fetchone()[0])
