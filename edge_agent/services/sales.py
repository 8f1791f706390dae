"""Recording fuel sales and their points, exactly once, in one transaction each."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from cloud_sync.core.events import (
    EarnReceipt,
    EarnStep,
    LedgerEntry,
    SaleMemberAttached,
    SaleRecorded,
    SaleReversed,
)
from cloud_sync.core.lots import InsufficientPoints, allocate
from cloud_sync.core.pricing import PointsReceipt, SaleFacts, price_sale
from cloud_sync.core.ruleset import RuleSet, points_expire_at, ruleset_in_force

from ..errors import ServiceError
from ..store import Tx
from ..store.audit import record_audit
from ..store.ids import uuid7
from ..store.ledger import (
    Credit,
    Debit,
    book_credit,
    book_debit,
    expired_from_lot,
    lot_of_sale,
    lots_of_member,
)
from ..store.members import MemberRow, get_member
from ..store.outbox import append_event
from ..store.sales import (
    SaleRow,
    attach_sale_member,
    get_sale,
    insert_sale,
    mark_sale_reversed,
    recent_sales,
    sale_by_source_key,
)
from ..store.sync import get_snapshot
from .manual_sales import enforce_sale_limits
from .points import check_reason
from .sale_limits import ManualSaleFacts
from .station import Station
from .tiers import tier_for_sale

__all__ = [
    "SaleInput",
    "SaleOutcome",
    "SaleView",
    "attach_member",
    "list_sales",
    "record_sale",
    "reverse_sale",
    "sale_view",
]

_CENT = Decimal("0.01")
_MAX_LITRES = Decimal(100_000)
_MAX_AMOUNT = Decimal(10_000_000)


@dataclass(frozen=True)
class SaleInput:
    """A completed sale as a driver or a person reports it; quantities are Decimal."""

    source: str  # dart | ifsf | manual | ...
    pump: int
    grade: str
    litres: Decimal
    amount: Decimal
    ended_at: datetime
    nozzle: int | None = None
    unit_price: Decimal | None = None
    started_at: datetime | None = None
    source_key: str | None = None  # stable key from the driver; None for manual entry
    member_id: str | None = None
    actor: str | None = None  # who keyed a manual sale


@dataclass(frozen=True)
class SaleView:
    sale_id: str
    source: str
    pump: int
    nozzle: int | None
    grade: str
    litres: Decimal
    amount: Decimal
    unit_price: Decimal | None
    ended_at: str
    member_id: str | None
    points: int
    tier: str | None
    ruleset_version: int | None
    status: str
    receipt: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "sale_id": self.sale_id,
            "source": self.source,
            "pump": self.pump,
            "nozzle": self.nozzle,
            "grade": self.grade,
            "litres": _decimal_text(self.litres, 2),
            "amount": _decimal_text(self.amount, 2),
            "unit_price": None if self.unit_price is None else _decimal_text(self.unit_price, 2),
            "ended_at": self.ended_at,
            "member_id": self.member_id,
            "points": self.points,
            "tier": self.tier,
            "ruleset_version": self.ruleset_version,
            "status": self.status,
            "receipt": self.receipt,
        }


@dataclass(frozen=True)
class SaleOutcome:
    sale: SaleView
    created: bool  # False: the same sale was already recorded (a retry or a duplicate)


def _decimal_text(value: Decimal, places: int) -> str:
    """At least `places` decimals, more only when the value really has them."""
    exponent = value.as_tuple().exponent
    shown = max(places, -exponent if isinstance(exponent, int) else places)
    return f"{value:.{shown}f}"


def _scaled(value: Decimal, scale: int, what: str, maximum: Decimal) -> int:
    """`value` in whole units of 1/scale; refused (with the bounds) outside 0..maximum or
    with more decimals than the unit has."""
    places = len(str(scale)) - 1
    refusal = ServiceError(f"sale.{what}", max=str(maximum), places=places, value=str(value)[:24])
    try:
        if not value.is_finite() or value < 0 or value > maximum:
            raise refusal
        scaled = value * scale
        if scaled != scaled.to_integral_value():
            raise refusal
    except InvalidOperation as exc:
        raise refusal from exc
    return int(scaled)


def _view(row: SaleRow, receipt: dict[str, Any] | None = None) -> SaleView:
    """The sale as callers see it; pass `receipt` when it is already at hand as a dict."""
    return SaleView(
        sale_id=row.sale_id,
        source=row.source,
        pump=row.pump,
        nozzle=row.nozzle,
        grade=row.grade,
        litres=Decimal(row.litres_ml) / 1000,
        amount=Decimal(row.amount_fen) / 100,
        unit_price=None if row.unit_price_milli is None else Decimal(row.unit_price_milli) / 1000,
        ended_at=row.ended_at,
        member_id=row.member_id,
        points=row.points,
        tier=row.tier,
        ruleset_version=row.ruleset_version,
        status=row.status,
        receipt=receipt if receipt is not None or row.receipt is None else json.loads(row.receipt),
    )


def _price(
    station: Station,
    tx: Tx,
    member: MemberRow,
    grade: str,
    litres: Decimal,
    amount: Decimal,
    ended_at: datetime,
) -> tuple[PointsReceipt, RuleSet] | None:
    """Price a member's sale under the rule set in force at its end; None without rules."""
    ruleset = ruleset_in_force(station.rulesets(tx), ended_at)
    if ruleset is None:
        return None
    decision = tier_for_sale(tx, member, ruleset, ended_at)
    facts = SaleFacts(grade=grade, litres=litres, amount=amount, ended_at=ended_at)
    return price_sale(ruleset, facts, decision.code), ruleset


def _book_points(
    tx: Tx,
    sale_id: str,
    member: MemberRow,
    priced: tuple[PointsReceipt, RuleSet] | None,
    ended_at: datetime,
    now: datetime,
) -> list[LedgerEntry]:
    """Book the earning lot of a priced sale, expiring as its rule set says.

    The member's cached tier is left to the nightly recalculation: every decision that
    matters (pricing, the member card) computes the tier live from the rolling windows.
    """
    if priced is None or priced[0].points <= 0:
        return []
    receipt, ruleset = priced
    expires_at = points_expire_at(ruleset, ended_at)
    entry_id = book_credit(
        tx,
        Credit(
            member_id=member.member_id,
            kind="earn",
            points=receipt.points,
            booked_at=now.isoformat(),
            expires_at=expires_at,
            sale_id=sale_id,
        ),
    )
    return [
        LedgerEntry(entry_id=entry_id, kind="earn", points=receipt.points, expires_at=expires_at)
    ]


def _earn_receipt(receipt: PointsReceipt | None) -> EarnReceipt | None:
    """The receipt as the sync events carry it (the cloud reprices the sale with it)."""
    if receipt is None:
        return None
    return EarnReceipt(
        ruleset_version=receipt.ruleset_version,
        grade=receipt.grade,
        tier=receipt.tier,
        bonus_name=receipt.bonus_name,
        exact=receipt.exact,
        points=receipt.points,
        rounding=receipt.rounding,
        discount_per_litre=receipt.discount_per_litre,
        discount_fen=receipt.discount_fen,
        steps=[
            EarnStep(code=s.code, description=s.description, factor=s.factor, value=s.value)
            for s in receipt.steps
        ],
    )


def _sale_event(
    row: SaleRow, ended_at: datetime, receipt: PointsReceipt | None, entries: list[LedgerEntry]
) -> SaleRecorded:
    """The sale as the cloud is told it: the dispenser's facts, the member, the points."""
    return SaleRecorded(
        sale_id=row.sale_id,
        source=row.source,
        source_key=row.source_key,
        fuelling_point=row.pump,
        nozzle=row.nozzle,
        grade=row.grade,
        litres=Decimal(row.litres_ml) / 1000,
        amount=Decimal(row.amount_fen) / 100,
        unit_price=None if row.unit_price_milli is None else Decimal(row.unit_price_milli) / 1000,
        started_at=row.started_at,
        ended_at=ended_at,
        recorded_at=row.recorded_at,
        recorded_by=row.recorded_by,
        member_id=row.member_id,
        points=row.points,
        tier=row.tier,
        ruleset_version=row.ruleset_version,
        receipt=_earn_receipt(receipt),
        ledger=entries,
    )


def _manual_facts(sale: SaleInput) -> ManualSaleFacts:
    return ManualSaleFacts(
        pump=sale.pump,
        nozzle=sale.nozzle,
        grade=sale.grade,
        litres=sale.litres,
        amount=sale.amount,
        unit_price=sale.unit_price,
        ended_at=sale.ended_at,
    )


def _same_entry(row: SaleRow, sale: SaleInput, litres_ml: int, amount_fen: int) -> bool:
    """A retried manual entry (same key) must be the same sale, or it is a mistake."""
    return (row.pump, row.nozzle, row.grade, row.litres_ml, row.amount_fen) == (
        sale.pump,
        sale.nozzle,
        sale.grade,
        litres_ml,
        amount_fen,
    ) and (sale.member_id is None or row.member_id == sale.member_id)


def record_sale(station: Station, sale: SaleInput) -> SaleOutcome:
    """Record a completed sale (and its points when a member is attached) exactly once.

    The sale, its ledger entries, its outbox event and (for manual entry) its audit line
    commit in one transaction; the same `source_key` seen again returns the stored sale.
    """
    if sale.pump <= 0:
        raise ServiceError("sale.pump", "pump must be a positive fuelling point number")
    if not sale.grade.strip():
        raise ServiceError("sale.grade", "grade is required")
    if sale.ended_at.tzinfo is None:
        raise ValueError("ended_at must be timezone-aware")
    litres_ml = _scaled(sale.litres, 1000, "litres", _MAX_LITRES)
    amount_fen = _scaled(sale.amount, 100, "amount", _MAX_AMOUNT)
    unit_price = sale.unit_price
    if unit_price is None and sale.litres > 0:
        unit_price = (sale.amount / sale.litres).quantize(_CENT, rounding=ROUND_HALF_UP)
    price_milli = (
        None if unit_price is None else _scaled(unit_price, 1000, "unit_price", _MAX_LITRES)
    )
    if sale.source == "manual" and not sale.actor:
        raise ServiceError("sale.actor", "a manual sale records who keyed it")
    now = station.now()
    sale_id = uuid7()
    source_key = sale.source_key or f"{sale.source}:{station.station_id}:{sale_id}"
    with station.store.write() as tx:
        existing = sale_by_source_key(tx, source_key)
        if existing is not None:
            if sale.source == "manual" and not _same_entry(existing, sale, litres_ml, amount_fen):
                raise ServiceError("sale.key_conflict")
            return SaleOutcome(_view(existing), created=False)
        if sale.source == "manual":
            enforce_sale_limits(station, tx, _manual_facts(sale))
        member = None
        if sale.member_id is not None:
            member = get_member(tx, sale.member_id)
            if member is None or member.status != "active":
                raise ServiceError("member.not_found", f"no member {sale.member_id}")
        ended_at = sale.ended_at.astimezone(station.zone)
        priced = (
            None
            if member is None
            else _price(station, tx, member, sale.grade, sale.litres, sale.amount, ended_at)
        )
        receipt = None if priced is None else priced[0]
        receipt_dict = None if receipt is None else receipt.to_dict()
        row = SaleRow(
            sale_id=sale_id,
            source=sale.source,
            source_key=source_key,
            pump=sale.pump,
            nozzle=sale.nozzle,
            grade=sale.grade,
            litres_ml=litres_ml,
            amount_fen=amount_fen,
            unit_price_milli=price_milli,
            started_at=None if sale.started_at is None else sale.started_at.isoformat(),
            ended_at=ended_at.isoformat(),
            ended_at_ms=int(ended_at.timestamp() * 1000),
            member_id=None if member is None else member.member_id,
            points=0 if receipt is None else receipt.points,
            tier=None if receipt is None else receipt.tier,
            ruleset_version=None if receipt is None else receipt.ruleset_version,
            receipt=None if receipt is None else json.dumps(receipt_dict, ensure_ascii=False),
            status="recorded",
            recorded_at=now.isoformat(),
            recorded_by=sale.actor,
        )
        insert_sale(tx, row)
        entries = [] if member is None else _book_points(tx, sale_id, member, priced, ended_at, now)
        if sale.source == "manual":
            record_audit(
                tx,
                at=now.isoformat(),
                actor=sale.actor or "",
                action="sale.manual",
                subject=sale_id,
                details={
                    "pump": sale.pump,
                    "grade": sale.grade,
                    "litres": str(sale.litres),
                    "amount": str(sale.amount),
                },
            )
        append_event(tx, _sale_event(row, ended_at, receipt, entries), now.isoformat())
        return SaleOutcome(_view(row, receipt_dict), created=True)


def attach_member(station: Station, sale_id: str, member_id: str, *, actor: str) -> SaleOutcome:
    """Attach a member to a recorded sale and book its points; the first cashier wins."""
    now = station.now()
    with station.store.write() as tx:
        row = get_sale(tx, sale_id)
        if row is None:
            raise ServiceError("sale.not_found", f"no sale {sale_id}")
        if row.member_id == member_id:
            return SaleOutcome(_view(row), created=False)
        if row.member_id is not None:
            raise ServiceError("sale.already_attached", "another member is already on this sale")
        if row.status != "recorded":
            raise ServiceError("sale.reversed", "this sale was reversed")
        window = timedelta(minutes=station.settings.station.attach_window_min)
        if now - datetime.fromisoformat(row.recorded_at) > window:
            raise ServiceError(
                "sale.attach_window",
                f"a member can be attached within {window.seconds // 60 + window.days * 1440} "
                "minutes of the sale; a manager can adjust points instead",
            )
        member = get_member(tx, member_id)
        if member is None or member.status != "active":
            raise ServiceError("member.not_found", f"no member {member_id}")
        ended_at = datetime.fromisoformat(row.ended_at)
        litres, amount = Decimal(row.litres_ml) / 1000, Decimal(row.amount_fen) / 100
        priced = _price(station, tx, member, row.grade, litres, amount, ended_at)
        receipt = None if priced is None else priced[0]
        if not attach_sale_member(
            tx,
            sale_id,
            member_id,
            points=0 if receipt is None else receipt.points,
            tier=None if receipt is None else receipt.tier,
            ruleset_version=None if receipt is None else receipt.ruleset_version,
            receipt=None if receipt is None else json.dumps(receipt.to_dict(), ensure_ascii=False),
        ):
            raise ServiceError("sale.already_attached", "another member is already on this sale")
        entries = _book_points(tx, sale_id, member, priced, ended_at, now)
        record_audit(
            tx,
            at=now.isoformat(),
            actor=actor,
            action="sale.member_attached",
            subject=sale_id,
            details={"member_id": member_id},
        )
        updated = get_sale(tx, sale_id)
        assert updated is not None
        attached = SaleMemberAttached(
            sale_id=sale_id,
            member_id=member_id,
            points=updated.points,
            tier=updated.tier,
            ruleset_version=updated.ruleset_version,
            receipt=_earn_receipt(receipt),
            ledger=entries,
            at=now,
        )
        append_event(tx, attached, now.isoformat())
        return SaleOutcome(_view(updated), created=True)


def reverse_sale(station: Station, sale_id: str, *, actor: str, reason: str) -> SaleView:
    """Take back a sale's points (its own lot first) with the manager's reason, audited."""
    check_reason(reason, "a reversal")
    now = station.now()
    with station.store.write() as tx:
        row = get_sale(tx, sale_id)
        if row is None:
            raise ServiceError("sale.not_found", f"no sale {sale_id}")
        if row.status == "reversed":
            raise ServiceError("sale.reversed", "this sale was already reversed")
        entries: list[LedgerEntry] = []
        own_lot = lot_of_sale(tx, sale_id)
        # Points of this sale that already lapsed are gone once; taking them back again
        # from the member's live points would punish them for the nightly job's timing.
        take_back = row.points - (0 if own_lot is None else expired_from_lot(tx, own_lot))
        if row.member_id is not None and take_back > 0:
            lots = lots_of_member(tx, row.member_id)
            chain_draw = 0
            try:
                allocations = allocate(lots, take_back, now, first=own_lot)
            except InsufficientPoints as exc:
                if get_snapshot(tx, row.member_id) is None:
                    raise ServiceError(
                        "points.insufficient",
                        f"cannot reverse: the member has already redeemed these points ({exc})",
                    ) from exc
                # A chain member may have spent these points at another station: take what
                # is here, and the rest from their chain balance (the cloud writes off what
                # the chain no longer holds).
                allocations = (
                    allocate(lots, exc.available, now, first=own_lot) if exc.available else []
                )
                chain_draw = take_back - exc.available
            entry_id = book_debit(
                tx,
                Debit(
                    member_id=row.member_id,
                    kind="reverse",
                    allocations=allocations,
                    booked_at=now.isoformat(),
                    sale_id=sale_id,
                    actor=actor,
                    reason=reason,
                    chain_draw=chain_draw,
                ),
            )
            entries.append(LedgerEntry(entry_id=entry_id, kind="reverse", points=-take_back))
        mark_sale_reversed(tx, sale_id)
        record_audit(
            tx,
            at=now.isoformat(),
            actor=actor,
            action="sale.reversed",
            subject=sale_id,
            details={"reason": reason, "points": row.points, "member_id": row.member_id},
        )
        reversed_event = SaleReversed(
            sale_id=sale_id,
            member_id=row.member_id,
            points=row.points,
            reason=reason,
            actor=actor,
            ledger=entries,
            at=now,
        )
        append_event(tx, reversed_event, now.isoformat())
        updated = get_sale(tx, sale_id)
        assert updated is not None
        return _view(updated)


def list_sales(station: Station, limit: int = 20) -> list[SaleView]:
    if not 1 <= limit <= 10_000:
        raise ServiceError("limit", "limit must be between 1 and 10000")
    with station.store.read() as tx:
        return [_view(row) for row in recent_sales(tx, limit)]


def sale_view(station: Station, sale_id: str) -> SaleView:
    with station.store.read() as tx:
        row = get_sale(tx, sale_id)
    if row is None:
        raise ServiceError("sale.not_found", f"no sale {sale_id}")
    return _view(row)
