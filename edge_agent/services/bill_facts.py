"""What a bill is, read from the store: its amount, the member's tier discount on it and
what earlier redemptions against it already took off (the arithmetic is `bill.py`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from cloud_sync.core.ruleset import RuleSet, ruleset_in_force

from ..errors import ServiceError
from ..store import Tx
from ..store.members import MemberRow
from ..store.prices import redeemed_against_sale
from ..store.sales import get_sale
from .bill import tier_discount_fen
from .station import Station
from .tiers import current_tier, tier_for_sale

__all__ = ["MAX_BILL_FEN", "Bill", "BillAmount", "bill_amount"]

MAX_BILL_FEN = 100_000_000  # one million yuan: more than a tanker's fill
_FEN = Decimal(100)
_ML = Decimal(1000)


@dataclass(frozen=True)
class Bill:
    """What a redemption is against: a recorded sale, or an amount the cashier typed (and
    its litres, for the tier's discount a litre). Neither: a redemption without a bill."""

    sale_id: str | None = None
    amount: Decimal | None = None
    litres: Decimal | None = None

    @property
    def empty(self) -> bool:
        return self.sale_id is None and self.amount is None


@dataclass(frozen=True)
class BillAmount:
    bill_fen: int
    discount_fen: int
    redeemed_fen: int
    sale_id: str | None


def _whole(value: Decimal, scale: Decimal) -> int | None:
    try:
        scaled = value * scale
        if not scaled.is_finite() or scaled != scaled.to_integral_value():
            return None
        return int(scaled)
    except InvalidOperation:
        return None


def _typed_bill(station: Station, bill: Bill) -> tuple[int, Decimal]:
    assert bill.amount is not None
    fen = _whole(bill.amount, _FEN)
    if fen is None or not 1 <= fen <= MAX_BILL_FEN:
        raise ServiceError("bill.amount", max=f"{MAX_BILL_FEN // 100}.00")
    max_litres = station.settings.sale_limits.max_litres
    litres = bill.litres if bill.litres is not None else Decimal(0)
    ml = _whole(litres, _ML)
    if ml is None or not 0 <= ml <= max_litres * 1000:
        raise ServiceError("bill.litres", max=str(max_litres))
    return fen, litres


def _discount_of(ruleset: RuleSet | None, tier: str | None, litres: Decimal, fen: int) -> int:
    if ruleset is None or tier is None:
        return 0
    try:
        per_litre = ruleset.tier(tier).discount_per_litre
    except KeyError:  # a tier an older rule set had
        return 0
    return tier_discount_fen(litres, per_litre, fen)


def bill_amount(
    station: Station, tx: Tx, member: MemberRow, bill: Bill, now: datetime
) -> BillAmount | None:
    """The bill's figures for this member (None without a bill); refuses a sale that is
    unknown, reversed or another member's."""
    if bill.sale_id is not None and (bill.amount is not None or bill.litres is not None):
        raise ServiceError("bill.one_source")
    if bill.amount is not None:
        fen, litres = _typed_bill(station, bill)
        ruleset = ruleset_in_force(station.rulesets(tx), now)
        tier = current_tier(station, tx, member, now)
        return BillAmount(fen, _discount_of(ruleset, tier, litres, fen), 0, None)
    if bill.sale_id is None:
        if bill.litres is not None:  # litres of what? a bill needs its amount
            raise ServiceError("bill.amount", max=f"{MAX_BILL_FEN // 100}.00")
        return None
    row = get_sale(tx, bill.sale_id)
    if row is None:
        raise ServiceError("sale.not_found", f"no sale {bill.sale_id}")
    if row.status != "recorded":
        raise ServiceError("sale.reversed", "this sale was reversed")
    if row.member_id is not None and row.member_id != member.member_id:
        raise ServiceError("bill.other_member")
    if row.member_id is not None and row.receipt is not None:
        discount = int(json.loads(row.receipt).get("discount_fen", 0))  # as the receipt said
    else:
        ended_at = datetime.fromisoformat(row.ended_at)
        ruleset = ruleset_in_force(station.rulesets(tx), ended_at)
        tier = None if ruleset is None else tier_for_sale(tx, member, ruleset, ended_at).code
        discount = _discount_of(ruleset, tier, Decimal(row.litres_ml) / _ML, row.amount_fen)
    redeemed = redeemed_against_sale(tx, row.sale_id)
    return BillAmount(row.amount_fen, discount, redeemed, row.sale_id)
