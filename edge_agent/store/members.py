"""Members and their plates. Personal fields arrive sealed; this module never sees plaintext.

A member merged into another by the cloud (two registrations of one phone) keeps its row,
with status 'merged', `merged_into` naming the survivor and no phone index of its own, so
its old sales still point somewhere and look-ups lead to the survivor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .database import Tx

__all__ = [
    "MemberRow",
    "PlateRow",
    "SealedMember",
    "count_members",
    "erase_member_data",
    "get_member",
    "insert_member",
    "member_by_phone_index",
    "member_by_plate_index",
    "member_ids",
    "members_merged_into",
    "members_sealed_with_other_keys",
    "plate_owner",
    "plates_of",
    "plates_sealed_with_other_keys",
    "release_phone_index",
    "remove_plate",
    "reseal_member",
    "reseal_plate",
    "set_member_tier",
    "set_plate_owner",
    "update_member_from_cloud",
]


@dataclass(frozen=True)
class MemberRow:
    member_id: str
    phone_index: str | None  # None: merged into another member, or erased
    phone_sealed: str | None
    phone_masked: str
    name_sealed: str | None
    registered_at: str
    registered_at_ms: int
    registered_station: str
    consent_at: str
    consent_channel: str
    tier: str
    tier_since: str | None
    status: str  # active | merged | erased
    merged_into: str | None = None


@dataclass(frozen=True)
class SealedMember:
    """A member's sealed fields, for re-sealing under new keys."""

    member_id: str
    phone_index: str | None
    phone_sealed: str | None
    name_sealed: str | None


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


def remove_plate(tx: Tx, plate_index: str, member_id: str) -> None:
    """Take a plate off a member (the chain removed it); a plate moved on stays moved."""
    tx.execute(
        "DELETE FROM plates WHERE plate_index = ? AND member_id = ?", [plate_index, member_id]
    )


def set_member_tier(tx: Tx, member_id: str, tier: str, since: str) -> None:
    tx.execute(
        "UPDATE members SET tier = ?, tier_since = ? WHERE member_id = ?",
        [tier, since, member_id],
    )


def members_merged_into(tx: Tx, survivor: str) -> list[str]:
    """Every member merged (directly or through another merged member) into `survivor`."""
    rows = tx.execute(
        "WITH RECURSIVE merged (member_id) AS ("
        " SELECT member_id FROM members WHERE merged_into = ?"
        " UNION SELECT m.member_id FROM members m JOIN merged ON m.merged_into = merged.member_id"
        ") SELECT member_id FROM merged ORDER BY member_id",
        [survivor],
    ).fetchall()
    return [str(row[0]) for row in rows]


def update_member_from_cloud(tx: Tx, member: MemberRow) -> None:
    """The chain's word on a member's identity and status; local facts (registration,
    consent) stay as first recorded here."""
    tx.execute(
        "UPDATE members SET phone_index = ?, phone_sealed = ?, phone_masked = ?, "
        "name_sealed = ?, tier = ?, tier_since = ?, status = ?, merged_into = ? "
        "WHERE member_id = ?",
        [
            member.phone_index,
            member.phone_sealed,
            member.phone_masked,
            member.name_sealed,
            member.tier,
            member.tier_since,
            member.status,
            member.merged_into,
            member.member_id,
        ],
    )


def release_phone_index(tx: Tx, member_id: str, merged_into: str) -> None:
    """Mark a member merged into another, giving its phone index up to the survivor."""
    tx.execute(
        "UPDATE members SET phone_index = NULL, status = 'merged', merged_into = ? "
        "WHERE member_id = ?",
        [merged_into, member_id],
    )


def erase_member_data(tx: Tx, member_id: str) -> None:
    """Deletion on request, as the cloud decided it: no personal data, numbers kept."""
    tx.execute(
        "UPDATE members SET phone_index = NULL, phone_sealed = NULL, name_sealed = NULL, "
        "phone_masked = '', status = 'erased', merged_into = NULL WHERE member_id = ?",
        [member_id],
    )
    tx.execute("DELETE FROM plates WHERE member_id = ?", [member_id])


def _other_key(column: str) -> str:
    return f"{column} IS NOT NULL AND substr({column}, 1, length(?) + 1) <> ? || ':'"


def members_sealed_with_other_keys(tx: Tx, key_id: str) -> list[SealedMember]:
    """Members with a phone or name sealed under another key than `key_id`."""
    rows = tx.execute(
        "SELECT member_id, phone_index, phone_sealed, name_sealed FROM members "  # noqa: S608
        f"WHERE ({_other_key('phone_sealed')}) OR ({_other_key('name_sealed')}) "
        "ORDER BY member_id",
        [key_id, key_id, key_id, key_id],
    ).fetchall()
    return [SealedMember(*row) for row in rows]


def plates_sealed_with_other_keys(tx: Tx, key_id: str) -> list[PlateRow]:
    rows = tx.execute(
        "SELECT plate_index, member_id, plate_sealed, attached_at FROM plates "  # noqa: S608
        f"WHERE {_other_key('plate_sealed')} ORDER BY plate_index",
        [key_id, key_id],
    ).fetchall()
    return [PlateRow(*row) for row in rows]


def reseal_member(tx: Tx, member: SealedMember) -> None:
    tx.execute(
        "UPDATE members SET phone_index = ?, phone_sealed = ?, name_sealed = ? WHERE member_id = ?",
        [member.phone_index, member.phone_sealed, member.name_sealed, member.member_id],
    )


def reseal_plate(tx: Tx, old_index: str, plate: PlateRow) -> None:
    """Re-index a plate under new keys; if the chain already placed it, the chain wins."""
    tx.execute("DELETE FROM plates WHERE plate_index = ?", [old_index])
    tx.execute(
        "INSERT INTO plates (plate_index, member_id, plate_sealed, attached_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (plate_index) DO NOTHING",
        [plate.plate_index, plate.member_id, plate.plate_sealed, plate.attached_at],
    )


def member_ids(tx: Tx) -> list[str]:
    rows = tx.execute(
        "SELECT member_id FROM members WHERE status = 'active' ORDER BY member_id"
    ).fetchall()
    return [str(row[0]) for row in rows]


def count_members(tx: Tx) -> int:
    return int(tx.execute("SELECT count(*) FROM members").fetchone()[0])
