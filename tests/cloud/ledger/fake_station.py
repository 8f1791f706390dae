"""A station on paper: builds outbox events exactly as edge_agent's services do, with the
shared pure core (privacy, identity, pricing), so ledger tests need no station store."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from cloud_sync.core.events import (
    EarnReceipt,
    Event,
    LedgerEntry,
    MemberRegistered,
    PlateAttached,
    SaleDetached,
    SaleMemberAttached,
    SaleRecorded,
    SaleReversed,
)
from cloud_sync.core.identity import mask_phone, normalize_phone, normalize_plate
from cloud_sync.core.pricing import SaleFacts, price_sale
from cloud_sync.core.privacy import MemberKeys, blind_index, encrypt_field
from cloud_sync.core.ruleset import RuleSet, points_expire_at
from cloud_sync.core.ruleset.parser import parse_ruleset_json
from cloud_sync.core.wire import PushRequest
from tests.support import RULESETS

SHANGHAI = ZoneInfo("Asia/Shanghai")
RULES_TEXT = (RULESETS / "sample.json").read_text(encoding="utf-8")
RULES: RuleSet = parse_ruleset_json(RULES_TEXT)  # version 3: 92# earns 1 point per litre
_ids = itertools.count(1)


def member_id(n: int) -> str:
    """A member id whose order the test chooses (merges keep the smallest)."""
    return f"01900000-0000-7000-8000-{n:012d}"


def fresh_member_id() -> str:
    return member_id(100_000 + next(_ids))


@dataclass
class FakeStation:
    station_id: str
    keys: MemberKeys  # the chain's keys once enrolled; its own before
    epoch: int = 1
    seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)

    def emit(self, kind: str, payload: dict[str, Any], at: datetime) -> dict[str, Any]:
        self.seq += 1
        event = {
            "event_id": str(uuid.uuid4()),
            "seq": self.seq,
            "epoch": self.epoch,
            "kind": kind,
            "payload": payload,
            "created_at": at.isoformat(),
        }
        self.events.append(event)
        return event

    def send(self, event: Event, at: datetime) -> dict[str, Any]:
        """Emit a typed event as the station's outbox stores it (its canonical JSON)."""
        return self.emit(event.kind, event.payload(), at)

    def request(self, events: list[dict[str, Any]] | None = None, **extra: Any) -> PushRequest:
        """A push of the given events (default: all emitted and not yet taken)."""
        if events is None:
            events, self.events = self.events, []
        return PushRequest(station_id=self.station_id, epoch=self.epoch, events=events, **extra)

    def register(
        self, phone: str, at: datetime, *, mid: str | None = None, name: str | None = None
    ) -> str:
        mid = mid or fresh_member_id()
        e164 = normalize_phone(phone)
        self.send(
            MemberRegistered(
                member_id=mid,
                phone_index=blind_index(self.keys, "phone", e164),
                phone_sealed=encrypt_field(self.keys, "phone", e164),
                phone_masked=mask_phone(e164),
                name_sealed=None if name is None else encrypt_field(self.keys, "name", name),
                registered_at=at,
                consent_at=at,
                consent_channel="counter",
                key_id=self.keys.key_id,
            ),
            at,
        )
        return mid

    def plate(self, mid: str, plate: str, at: datetime, *, from_member: str | None = None) -> None:
        canonical = normalize_plate(plate)
        self.send(
            PlateAttached(
                member_id=mid,
                plate_index=blind_index(self.keys, "plate", canonical),
                plate_sealed=encrypt_field(self.keys, "plate", canonical),
                from_member=from_member,
                at=at,
            ),
            at,
        )

    def sale(
        self,
        mid: str | None,
        litres: str,
        at: datetime,
        *,
        grade: str = "92",
        claimed: int | None = None,
        version: int | None = None,
        tier: str = "standard",
    ) -> str:
        """A dispenser sale priced under the sample rules; `claimed` overrides the points."""
        sale_id = str(uuid.uuid4())
        amount = (Decimal(litres) * Decimal("7.50")).quantize(Decimal("0.01"))
        receipt = price_sale(RULES, SaleFacts(grade, Decimal(litres), amount, at), tier)
        points = receipt.points if claimed is None else claimed
        typed = EarnReceipt.model_validate(receipt.to_dict())
        if version is not None:
            typed = typed.model_copy(update={"ruleset_version": version})
        expires = points_expire_at(RULES, at)
        ledger = []
        if mid is not None and points > 0:
            ledger.append(
                LedgerEntry(entry_id=next(_ids), kind="earn", points=points, expires_at=expires)
            )
        self.send(
            SaleRecorded(
                sale_id=sale_id,
                source="dart",
                source_key=f"dart:{self.station_id}:{sale_id}",
                fuelling_point=1,
                nozzle=1,
                grade=grade,
                litres=Decimal(litres),
                amount=amount,
                unit_price=Decimal("7.50"),
                ended_at=at,
                recorded_at=at.isoformat(),
                member_id=mid,
                points=points if mid is not None else 0,
                tier=tier if mid is not None else None,
                ruleset_version=(version or RULES.version) if mid is not None else None,
                receipt=typed if mid is not None else None,
                ledger=ledger,
            ),
            at,
        )
        return sale_id

    def attach(self, sale_id: str, mid: str, litres: str, at: datetime) -> None:
        receipt = price_sale(
            RULES, SaleFacts("92", Decimal(litres), Decimal(litres) * 7, at), "standard"
        )
        expires = points_expire_at(RULES, at)
        self.send(
            SaleMemberAttached(
                sale_id=sale_id,
                member_id=mid,
                points=receipt.points,
                tier="standard",
                ruleset_version=RULES.version,
                receipt=EarnReceipt.model_validate(receipt.to_dict()),
                ledger=[
                    LedgerEntry(
                        entry_id=next(_ids), kind="earn", points=receipt.points, expires_at=expires
                    )
                ],
                at=at,
            ),
            at,
        )

    def detach(
        self, sale_id: str, mid: str, points: int, at: datetime, *, attach_no: int = 1
    ) -> None:
        """Undo the attach of `mid` to the sale, as the till's undo does."""
        self.send(
            SaleDetached(
                sale_id=sale_id,
                member_id=mid,
                attach_no=attach_no,
                points=points,
                at=at,
                reason="wrong member",
                actor="cashier",
                ledger=[LedgerEntry(entry_id=next(_ids), kind="reverse", points=-points)]
                if points
                else [],
            ),
            at,
        )

    def reverse(self, sale_id: str, mid: str | None, points: int, at: datetime) -> None:
        self.send(
            SaleReversed(
                sale_id=sale_id,
                member_id=mid,
                points=points,
                reason="pump test",
                actor="manager",
                ledger=[LedgerEntry(entry_id=next(_ids), kind="reverse", points=-points)],
                at=at,
            ),
            at,
        )

    def redeem(
        self,
        mid: str,
        points: int,
        at: datetime,
        *,
        allowance_id: str | None = None,
        redemption_id: str | None = None,
    ) -> str:
        # Raw, not `PointsRedeemed`: tests forge values no model would build (2**70 points).
        redemption_id = redemption_id or str(uuid.uuid4())
        payload: dict[str, Any] = {
            "redemption_id": redemption_id,
            "member_id": mid,
            "points": points,
            "value_fen": points,
            "entry_id": next(_ids),
            "actor": "cashier",
            "ruleset_version": RULES.version,
            "at": at.isoformat(),
        }
        if allowance_id is not None:
            payload["allowance_id"] = allowance_id
        self.emit("points.redeemed", payload, at)
        return redemption_id

    def adjust(self, mid: str, points: int, at: datetime, **extra: Any) -> None:
        """Raw, not `PointsAdjusted`: tests forge values no model would build."""
        self.emit(
            "points.adjusted",
            {
                "member_id": mid,
                "points": points,
                "reason": "goodwill",
                "actor": "manager",
                "entry_id": next(_ids),
                "at": at.isoformat(),
                **extra,
            },
            at,
        )
