"""Building what a station would push: events sealed and indexed with the chain's keys."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cloud_sync.core.events import Event, MemberRegistered, PlateAttached
from cloud_sync.core.identity import mask_phone, normalize_phone, normalize_plate
from cloud_sync.core.privacy import MemberKeys, blind_index, encrypt_field

__all__ = ["ADMIN_TOKEN", "AT", "EventLog", "member_events"]

ADMIN_TOKEN = "hq-admin-token-for-tests-0123456789"
AT = "2026-12-01T08:00:00+08:00"


def member_events(
    keys: MemberKeys, phone: str, plate: str | None = None
) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """A new member's `member.registered` (and `plate.attached`) payloads, station-style."""
    member_id = str(uuid.uuid4())
    e164 = normalize_phone(phone)
    at = datetime.fromisoformat(AT)
    typed: list[Event] = [
        MemberRegistered(
            member_id=member_id,
            phone_index=blind_index(keys, "phone", e164),
            phone_sealed=encrypt_field(keys, "phone", e164),
            phone_masked=mask_phone(e164),
            registered_at=at,
            consent_at=at,
            consent_channel="cli",
            key_id=keys.key_id,
        )
    ]
    if plate is not None:
        normalized = normalize_plate(plate)
        typed.append(
            PlateAttached(
                member_id=member_id,
                plate_index=blind_index(keys, "plate", normalized),
                plate_sealed=encrypt_field(keys, "plate", normalized),
                at=at,
            )
        )
    events = [(event.kind, event.payload()) for event in typed]
    return member_id, events


@dataclass
class EventLog:
    """A station's outbox in miniature: dense sequence numbers in one epoch."""

    station_id: str
    epoch: int = 1
    events: list[dict[str, Any]] = field(default_factory=list)

    def add(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        event = {
            "event_id": str(uuid.uuid4()),
            "seq": len(self.events) + 1,
            "epoch": self.epoch,
            "kind": kind,
            "payload": payload,
            "created_at": AT,
        }
        self.events.append(event)
        return event

    def batch(self, first: int = 1, last: int | None = None) -> dict[str, Any]:
        """The push body for events `first`..`last` (1-based, inclusive)."""
        chosen = self.events[first - 1 : last]
        return {"station_id": self.station_id, "epoch": self.epoch, "events": chosen}
