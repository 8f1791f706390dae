"""How members are seen: HQ's view (decrypted plates) and the stations' deltas (sealed).

Both read the member's current state: live lots, overdraft, plates; a merged member is
shown as its survivor.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from cloud_sync.core.identity import normalize_phone, normalize_plate
from cloud_sync.core.privacy import MemberKeys, blind_index, decrypt_field
from cloud_sync.core.wire import DenyEntry, LotSnapshot, MemberDelta, PlateDelta

from .errors import LedgerError
from .postings import millis
from .schema import lots, member_phones, members, plates

__all__ = ["deny_entries", "find_member", "member_deltas", "member_view", "spendable_points"]

_CHUNK = 500
_MAX_HOPS = 64


def _survivor(conn: Connection, member_id: str) -> Any:
    row = conn.execute(select(members).where(members.c.member_id == member_id)).first()
    hops = 0
    while row is not None and row.status == "merged" and row.merged_into and hops < _MAX_HOPS:
        row = conn.execute(select(members).where(members.c.member_id == row.merged_into)).first()
        hops += 1
    return row


def member_view(
    conn: Connection, chain: MemberKeys, member_id: str, now: datetime
) -> dict[str, Any] | None:
    row = _survivor(conn, member_id)
    if row is None:
        return None
    now_ms = millis(now)
    live = conn.execute(
        select(lots.c.remaining, lots.c.expires_at, lots.c.expires_ms)
        .where(lots.c.member_id == row.member_id, lots.c.remaining > 0)
        .order_by(lots.c.expires_ms.is_(None), lots.c.expires_ms, lots.c.earned_ms)
    ).all()
    lot_list = [
        {"points": int(lot.remaining), "expires_at": lot.expires_at}
        for lot in live
        if lot.expires_ms is None or lot.expires_ms > now_ms
    ]
    sealed_plates = conn.execute(
        select(plates.c.plate_sealed)
        .where(plates.c.member_id == row.member_id)
        .order_by(plates.c.attached_at, plates.c.plate_index)
    ).scalars()
    merged_from = conn.execute(
        select(members.c.member_id)
        .where(members.c.merged_into == row.member_id)
        .order_by(members.c.member_id)
    ).scalars()
    spendable = sum(lot["points"] for lot in lot_list)
    return {
        "member_id": row.member_id,
        "status": row.status,
        "phone_masked": row.phone_masked,
        "name": None if row.name_sealed is None else decrypt_field(chain, "name", row.name_sealed),
        "plates": [decrypt_field(chain, "plate", sealed) for sealed in sealed_plates],
        "tier": row.tier,
        "points": spendable - int(row.overdraft),
        "overdraft": int(row.overdraft),
        "lots": lot_list,
        "registered_at": row.registered_at,
        "registered_station": row.registered_station,
        "merged_from": list(merged_from),
        "denied": bool(row.denied),
    }


def find_member(
    conn: Connection,
    chain: MemberKeys,
    *,
    phone: str | None,
    plate: str | None,
    now: datetime,
) -> dict[str, Any] | None:
    """Find by phone or plate (normalized here; IdentityError on bad input)."""
    if (phone is None) == (plate is None):
        raise LedgerError("member.identifier", "give exactly one of a phone number or a plate")
    if phone is not None:
        index = blind_index(chain, "phone", normalize_phone(phone))
        member_id = conn.execute(
            select(member_phones.c.member_id).where(member_phones.c.phone_index == index)
        ).scalar_one_or_none()
    else:
        index = blind_index(chain, "plate", normalize_plate(plate or ""))
        member_id = conn.execute(
            select(plates.c.member_id).where(plates.c.plate_index == index)
        ).scalar_one_or_none()
    return None if member_id is None else member_view(conn, chain, member_id, now)


def member_deltas(
    conn: Connection, member_ids: Sequence[str], as_of_epoch: int, as_of_seq: int
) -> list[MemberDelta]:
    """Current state of these members, sealed as the chain keeps it, in the order given."""
    rows: dict[str, Any] = {}
    plate_map: dict[str, list[PlateDelta]] = {}
    lot_map: dict[str, list[LotSnapshot]] = {}
    for start in range(0, len(member_ids), _CHUNK):
        chunk = list(member_ids[start : start + _CHUNK])
        for row in conn.execute(select(members).where(members.c.member_id.in_(chunk))):
            rows[row.member_id] = row
        for row in conn.execute(
            select(plates)
            .where(plates.c.member_id.in_(chunk))
            .order_by(plates.c.attached_at, plates.c.plate_index)
        ):
            plate_map.setdefault(row.member_id, []).append(
                PlateDelta(plate_index=row.plate_index, plate_sealed=row.plate_sealed)
            )
        for row in conn.execute(
            select(lots.c.member_id, lots.c.remaining, lots.c.expires_at)
            .where(lots.c.member_id.in_(chunk), lots.c.remaining > 0)
            .order_by(
                lots.c.expires_ms.is_(None), lots.c.expires_ms, lots.c.earned_ms, lots.c.lot_id
            )
        ):
            lot_map.setdefault(row.member_id, []).append(
                LotSnapshot(points=int(row.remaining), expires_at=row.expires_at)
            )
    deltas = []
    for member_id in member_ids:
        if member_id not in rows:
            continue
        row = rows[member_id]
        # HQ's erasure (member_privacy) keeps the member's points but drops its phone:
        # stations hear "erased" and drop the identity.
        erased = row.status == "active" and row.phone_index is None
        active = row.status == "active" and not erased
        deltas.append(
            MemberDelta(
                member_id=row.member_id,
                status="active" if active else "erased" if erased else "merged",
                merged_into=row.merged_into,
                phone_index=row.phone_index,
                phone_sealed=row.phone_sealed,
                phone_masked=row.phone_masked,
                name_sealed=row.name_sealed,
                key_id=row.key_id,
                registered_at=row.registered_at,
                tier=row.tier,
                plates=plate_map.get(member_id, []) if active else [],
                lots=lot_map.get(member_id, []) if active else [],
                overdraft=int(row.overdraft),
                as_of_epoch=as_of_epoch,
                as_of_seq=as_of_seq,
            )
        )
    return deltas


def deny_entries(conn: Connection, member_ids: Sequence[str]) -> list[DenyEntry]:
    found: dict[str, DenyEntry] = {}
    for start in range(0, len(member_ids), _CHUNK):
        chunk = list(member_ids[start : start + _CHUNK])
        stmt = select(members.c.member_id, members.c.denied, members.c.overdraft).where(
            members.c.member_id.in_(chunk)
        )
        for row in conn.execute(stmt):
            found[row.member_id] = DenyEntry(
                member_id=row.member_id, denied=bool(row.denied), overdraft=int(row.overdraft)
            )
    return [found[m] for m in member_ids if m in found]


def spendable_points(conn: Connection, member_id: str, now: datetime) -> int:
    """Live lots less the overdraft: what the member may redeem now."""
    now_ms = millis(now)
    live = conn.execute(
        select(lots.c.remaining, lots.c.expires_ms).where(
            lots.c.member_id == member_id, lots.c.remaining > 0
        )
    ).all()
    overdraft = conn.execute(
        select(members.c.overdraft).where(members.c.member_id == member_id)
    ).scalar_one()
    held = sum(int(r.remaining) for r in live if r.expires_ms is None or r.expires_ms > now_ms)
    return held - int(overdraft)
