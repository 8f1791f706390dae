"""Registering, finding and showing members. Plaintext personal data lives only here, in memory.

A member's points are the chain's view when the cloud has sent a snapshot of the member:
the snapshot's live lots minus its overdraft, plus this station's own events the cloud had
not seen when it built the snapshot. Without a snapshot the local ledger is the whole truth.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cloud_sync.core.events import MemberRegistered, PlateAttached
from cloud_sync.core.identity import (
    IdentityError,
    mask_phone,
    normalize_phone,
    normalize_plate,
    parse_identifier,
)
from cloud_sync.core.lots import spendable
from cloud_sync.core.privacy import DecryptionError, blind_index, encrypt_field

from ..errors import ServiceError
from ..store import Tx
from ..store.audit import record_audit
from ..store.ids import uuid7
from ..store.ledger import booked_balance, lots_of_member
from ..store.members import (
    MemberRow,
    PlateRow,
    get_member,
    insert_member,
    member_by_phone_index,
    member_by_plate_index,
    members_merged_into,
    plate_owner,
    plates_of,
    set_member_tier,
    set_plate_owner,
)
from ..store.outbox import append_event, member_events_after
from ..store.sync import MemberSnapshot, get_snapshot
from .station import Station
from .tiers import current_tier

__all__ = [
    "Balance",
    "MemberView",
    "add_plate",
    "event_points",
    "find_member",
    "member_balance",
    "member_view",
    "register_member",
    "resolve_member",
    "survivor_of",
]

_EXPIRY_NOTICE_DAYS = 30
_MAX_MERGE_HOPS = 16
log = logging.getLogger(__name__)
_SALE_KINDS = frozenset({"sale.recorded", "sale.member_attached", "sale.reversed", "sale.detached"})


@dataclass(frozen=True)
class Balance:
    """A member's points now: the chain view with a snapshot, else the local ledger."""

    points: int
    expiring_30d: int
    snapshot: MemberSnapshot | None
    local_points: int  # spendable in this station's own lots


def event_points(kind: str, payload: dict[str, Any]) -> int:
    """How an own outbox event moves the member's chain balance."""
    if kind in _SALE_KINDS:
        return sum(int(entry.get("points", 0)) for entry in payload.get("ledger") or [])
    if kind == "points.redeemed":
        return -int(payload["points"])
    if kind == "points.adjusted":
        return int(payload["points"])
    return 0  # points.expired: the cloud expires lots by their date itself


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def member_balance(tx: Tx, member_id: str, now: datetime) -> Balance:
    lots = lots_of_member(tx, member_id)
    local = spendable(lots, now)
    soon = now + timedelta(days=_EXPIRY_NOTICE_DAYS)
    snapshot = get_snapshot(tx, member_id)
    if snapshot is None:
        expiring = sum(
            lot.remaining
            for lot in lots
            if lot.expires_at is not None and now < lot.expires_at <= soon
        )
        return Balance(local, expiring, None, local)
    live = [
        (lot.points, _moment(lot.expires_at))
        for lot in snapshot.lots
        if lot.expires_at is None or datetime.fromisoformat(lot.expires_at) > now
    ]
    own = member_events_after(
        tx,
        [member_id, *members_merged_into(tx, member_id)],
        snapshot.as_of_epoch,
        snapshot.as_of_seq,
    )
    chain = (
        sum(points for points, _ in live)
        - snapshot.overdraft
        + sum(event_points(event.kind, event.payload) for event in own)
    )
    expiring = sum(points for points, at in live if at is not None and at <= soon)
    return Balance(max(0, chain), expiring, snapshot, local)


def survivor_of(tx: Tx, member: MemberRow | None) -> MemberRow | None:
    """The member itself, or the member it was merged into (following merges)."""
    for _ in range(_MAX_MERGE_HOPS):
        if member is None or member.status != "merged" or member.merged_into is None:
            return member
        member = get_member(tx, member.merged_into)
    return None


@dataclass(frozen=True)
class MemberView:
    """What a cashier or the CLI sees of a member; the phone is always masked."""

    member_id: str
    phone_masked: str
    name: str | None
    plates: tuple[str, ...]
    tier: str
    points: int
    points_expiring_30d: int
    booked_points: int
    registered_at: str

    def to_dict(self) -> dict[str, object]:
        return {
            "member_id": self.member_id,
            "phone_masked": self.phone_masked,
            "name": self.name,
            "plates": list(self.plates),
            "tier": self.tier,
            "points": self.points,
            "points_expiring_30d": self.points_expiring_30d,
            "booked_points": self.booked_points,
            "registered_at": self.registered_at,
        }


def _identity_refused(exc: IdentityError) -> ServiceError:
    return ServiceError(exc.code, str(exc))


def _phone_index(station: Station, e164: str) -> str:
    return blind_index(station.keys, "phone", e164)


def _plate_index(station: Station, plate: str) -> str:
    return blind_index(station.keys, "plate", plate)


def _normalized_plates(raw_plates: Sequence[str]) -> list[str]:
    plates: list[str] = []
    for raw in raw_plates:
        try:
            plate = normalize_plate(raw)
        except IdentityError as exc:
            raise _identity_refused(exc) from exc
        if plate not in plates:
            plates.append(plate)
    return plates


def _attach_plate(
    station: Station, tx: Tx, member_id: str, plate: str, *, actor: str, move: bool, at: str
) -> None:
    index = _plate_index(station, plate)
    owner = plate_owner(tx, index)
    if owner == member_id:
        return
    if owner is not None and not move:
        raise ServiceError(
            "plate.taken",
            f"plate {plate} belongs to another member; move it explicitly to reassign it",
        )
    row = PlateRow(index, member_id, encrypt_field(station.keys, "plate", plate), at)
    set_plate_owner(tx, row)
    record_audit(
        tx,
        at=at,
        actor=actor,
        action="plate.moved" if owner else "plate.attached",
        subject=member_id,
        details={"plate_index": index, "from_member": owner},
    )
    attached = PlateAttached(
        member_id=member_id,
        plate_index=index,
        plate_sealed=row.plate_sealed,
        from_member=owner,
        at=datetime.fromisoformat(at),
    )
    append_event(tx, attached, at)


def register_member(
    station: Station,
    *,
    phone: str,
    plates: Sequence[str] = (),
    name: str | None = None,
    consent_channel: str,
    actor: str,
    move_plates: bool = False,
) -> MemberView:
    """Register a member with recorded consent; one phone, any number of plates."""
    try:
        e164 = normalize_phone(phone)
    except IdentityError as exc:
        raise _identity_refused(exc) from exc
    normalized = _normalized_plates(plates)
    clean_name = (name or "").strip() or None
    if clean_name is not None and len(clean_name) > 64:
        raise ServiceError("member.name_too_long", "name is longer than 64 characters")
    now = station.now()
    at = now.isoformat()
    with station.store.write() as tx:
        if member_by_phone_index(tx, _phone_index(station, e164)) is not None:
            raise ServiceError(
                "member.exists", f"{mask_phone(e164)} is already registered as a member"
            )
        phone_index = _phone_index(station, e164)
        phone_sealed = encrypt_field(station.keys, "phone", e164)
        member = MemberRow(
            member_id=uuid7(),
            phone_index=phone_index,
            phone_sealed=phone_sealed,
            phone_masked=mask_phone(e164),
            name_sealed=None
            if clean_name is None
            else encrypt_field(station.keys, "name", clean_name),
            registered_at=at,
            registered_at_ms=int(now.timestamp() * 1000),
            registered_station=station.station_id,
            consent_at=at,
            consent_channel=consent_channel,
            tier="",
            tier_since=None,
            status="active",
        )
        insert_member(tx, member)
        record_audit(
            tx,
            at=at,
            actor=actor,
            action="member.registered",
            subject=member.member_id,
            details={"consent_channel": consent_channel, "station": station.station_id},
        )
        registered = MemberRegistered(
            member_id=member.member_id,
            phone_index=phone_index,
            phone_sealed=phone_sealed,
            phone_masked=member.phone_masked,
            name_sealed=member.name_sealed,
            registered_at=now,
            consent_at=now,
            consent_channel=consent_channel,
            key_id=station.keys.key_id,
        )
        append_event(tx, registered, at)
        for plate in normalized:
            _attach_plate(
                station, tx, member.member_id, plate, actor=actor, move=move_plates, at=at
            )
        tier = current_tier(station, tx, member, now)
        if tier is not None:
            set_member_tier(tx, member.member_id, tier, at)
        return _view(station, tx, member.member_id, now)


def add_plate(
    station: Station, member_id: str, plate: str, *, actor: str, move: bool = False
) -> MemberView:
    (normalized,) = _normalized_plates([plate])
    now = station.now()
    with station.store.write() as tx:
        if get_member(tx, member_id) is None:
            raise ServiceError("member.not_found", f"no member {member_id}")
        _attach_plate(
            station, tx, member_id, normalized, actor=actor, move=move, at=now.isoformat()
        )
        return _view(station, tx, member_id, now)


def resolve_member(
    station: Station,
    tx: Tx,
    *,
    phone: str | None = None,
    plate: str | None = None,
    q: str | None = None,
) -> MemberRow:
    """Find a member by exactly one of phone, plate or a free search string."""
    try:
        if q is not None:
            identifier = parse_identifier(q)
            kind, value = identifier.kind, identifier.value
        elif phone is not None:
            kind, value = "phone", normalize_phone(phone)
        elif plate is not None:
            kind, value = "plate", normalize_plate(plate)
        else:
            raise ServiceError("member.identifier_missing", "give a phone number or a plate")
    except IdentityError as exc:
        raise _identity_refused(exc) from exc
    if kind == "phone":
        member = member_by_phone_index(tx, _phone_index(station, value))
        shown = mask_phone(value)
    else:
        member = member_by_plate_index(tx, _plate_index(station, value))
        shown = value
    member = survivor_of(tx, member)
    if member is None or member.status != "active":
        raise ServiceError("member.not_found", f"{shown} is not a member yet")
    return member


def find_member(
    station: Station, *, phone: str | None = None, plate: str | None = None, q: str | None = None
) -> MemberView:
    now = station.now()
    with station.store.read() as tx:
        member = resolve_member(station, tx, phone=phone, plate=plate, q=q)
        return _view(station, tx, member.member_id, now)


def member_view(station: Station, member_id: str) -> MemberView:
    """A member by id; a member merged into another shows as the survivor."""
    now = station.now()
    with station.store.read() as tx:
        member = survivor_of(tx, get_member(tx, member_id))
        if member is None:
            raise ServiceError("member.not_found", f"no member {member_id}")
        return _view(station, tx, member.member_id, now)


def _opened(station: Station, field_name: str, token: str) -> str | None:
    try:
        return station.decrypt(field_name, token)
    except DecryptionError as exc:
        log.warning("a member's %s cannot be shown: %s", field_name, exc)
        return None


def _view(station: Station, tx: Tx, member_id: str, now: datetime) -> MemberView:
    member = get_member(tx, member_id)
    if member is None:
        raise ServiceError("member.not_found", f"no member {member_id}")
    balance = member_balance(tx, member_id, now)
    tier = current_tier(station, tx, member, now)
    plates = (_opened(station, "plate", row.plate_sealed) for row in plates_of(tx, member_id))
    return MemberView(
        member_id=member.member_id,
        phone_masked=member.phone_masked,
        name=None if member.name_sealed is None else _opened(station, "name", member.name_sealed),
        plates=tuple(plate for plate in plates if plate is not None),
        tier=tier if tier is not None else (member.tier or "standard"),
        points=balance.points,
        points_expiring_30d=balance.expiring_30d,
        booked_points=booked_balance(tx, member_id),
        registered_at=member.registered_at,
    )
