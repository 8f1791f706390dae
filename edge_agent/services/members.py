"""Registering, finding and showing members. Plaintext personal data lives only here, in memory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cloud_sync.loyalty.identity import (
    IdentityError,
    mask_phone,
    normalize_phone,
    normalize_plate,
    parse_identifier,
)
from cloud_sync.loyalty.lots import spendable
from cloud_sync.loyalty.privacy import blind_index, decrypt_field, encrypt_field

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
    plate_owner,
    plates_of,
    set_member_tier,
    set_plate_owner,
)
from ..store.outbox import append_event
from .station import Station
from .tiers import current_tier

__all__ = [
    "MemberView",
    "add_plate",
    "find_member",
    "member_view",
    "register_member",
    "resolve_member",
]

_EXPIRY_NOTICE_DAYS = 30


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
    append_event(
        tx,
        "plate.attached",
        {
            "member_id": member_id,
            "plate_index": index,
            "plate_sealed": row.plate_sealed,
            "from_member": owner,
            "at": at,
        },
        at,
    )


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
        member = MemberRow(
            member_id=uuid7(),
            phone_index=_phone_index(station, e164),
            phone_sealed=encrypt_field(station.keys, "phone", e164),
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
        append_event(
            tx,
            "member.registered",
            {
                "member_id": member.member_id,
                "phone_index": member.phone_index,
                "phone_sealed": member.phone_sealed,
                "phone_masked": member.phone_masked,
                "name_sealed": member.name_sealed,
                "registered_at": at,
                "consent_at": at,
                "consent_channel": consent_channel,
                "key_id": station.keys.key_id,
            },
            at,
        )
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
    now = station.now()
    with station.store.read() as tx:
        if get_member(tx, member_id) is None:
            raise ServiceError("member.not_found", f"no member {member_id}")
        return _view(station, tx, member_id, now)


def _view(station: Station, tx: Tx, member_id: str, now: datetime) -> MemberView:
    member = get_member(tx, member_id)
    if member is None:
        raise ServiceError("member.not_found", f"no member {member_id}")
    lots = lots_of_member(tx, member_id)
    soon = now + timedelta(days=_EXPIRY_NOTICE_DAYS)
    expiring = sum(
        lot.remaining for lot in lots if lot.expires_at is not None and now < lot.expires_at <= soon
    )
    tier = current_tier(station, tx, member, now)
    return MemberView(
        member_id=member.member_id,
        phone_masked=member.phone_masked,
        name=None
        if member.name_sealed is None
        else decrypt_field(station.keys, "name", member.name_sealed),
        plates=tuple(
            decrypt_field(station.keys, "plate", row.plate_sealed)
            for row in plates_of(tx, member_id)
        ),
        tier=tier if tier is not None else (member.tier or "standard"),
        points=spendable(lots, now),
        points_expiring_30d=expiring,
        booked_points=booked_balance(tx, member_id),
        registered_at=member.registered_at,
    )
