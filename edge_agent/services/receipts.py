"""The member's receipt for an attach, a redemption or a sign-up, and printing it.

A receipt is made from what the store holds when it is asked for (so a reprint shows the
same fill and points, and the balance at the time of printing, which it says). Printing
goes to the printer of `[printer]` (edge_agent/receipts/printer.py) as ESC/POS bytes; a
printer that cannot be reached is a refusal the cashier sees, never a hung till.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from cloud_sync.core.ruleset import RuleSet, ruleset_in_force

from ..errors import ServiceError
from ..receipts.escpos import encode_receipt
from ..receipts.model import FuelLine, Receipt, ReceiptKind
from ..receipts.printer import Printer, PrinterError
from ..store import Tx
from ..store.ledger import entry_by_op_id
from ..store.members import MemberRow, get_member
from ..store.sales import get_sale
from .members import member_balance, survivor_of
from .station import Station
from .tiers import current_tier
from .till import sale_no

__all__ = ["RECEIPT_KINDS", "make_receipt", "print_receipt", "summarise_steps"]

# What the till asks a receipt of: a sale (its attach), a redemption id, a member (sign-up).
RECEIPT_KINDS: tuple[str, ...] = ("sale", "redemption", "member")
_ROUNDING = {"floor": "向下取整", "half_up": "四舍五入"}


def _num(value: Decimal) -> str:
    """A decimal without trailing zeros: 40.00 -> '40', 1.50 -> '1.5'."""
    return format(value.normalize(), "f")


def _ruleset(rulesets: Sequence[RuleSet], version: int | None) -> RuleSet | None:
    return next((r for r in rulesets if r.version == version), None)


def _tier_name(ruleset: RuleSet | None, code: str) -> str:
    try:
        return code if ruleset is None else ruleset.tier(code).name
    except KeyError:
        return code


def summarise_steps(
    receipt: dict[str, Any], ruleset: RuleSet | None, litres: Decimal, amount: Decimal
) -> tuple[str, ...]:
    """The points receipt's steps in a few short lines a member can check by hand."""
    lines: list[str] = []
    steps = {step["code"]: step for step in receipt.get("steps", [])}
    base = steps.get("base")
    rule = None if ruleset is None else ruleset.earn.get(str(receipt.get("grade")))
    if base is not None:
        value = _num(Decimal(base["value"]))
        if rule is not None and rule.points_per_litre is not None:
            lines.append(f"{_num(litres)}升 × {_num(rule.points_per_litre)}分/升 = {value}")
        elif rule is not None and rule.points_per_yuan is not None:
            lines.append(f"{_num(amount)}元 × {_num(rule.points_per_yuan)}分/元 = {value}")
        else:
            lines.append(f"基础积分 {value}")
    tier, bonus = steps.get("tier"), steps.get("bonus")
    if tier is not None and Decimal(tier["factor"]) != 1:
        name = _tier_name(ruleset, str(receipt.get("tier")))
        lines.append(f"{name} ×{_num(Decimal(tier['factor']))} = {_num(Decimal(tier['value']))}")
    if bonus is not None and Decimal(bonus["factor"]) != 1:
        name = str(receipt.get("bonus_name") or "加倍")
        lines.append(f"{name} ×{_num(Decimal(bonus['factor']))} = {_num(Decimal(bonus['value']))}")
    exact, points = Decimal(str(receipt.get("exact", "0"))), int(receipt.get("points", 0))
    if exact != points:
        how = _ROUNDING.get(str(receipt.get("rounding")), "取整")
        lines.append(f"{how} = {points}")
    return tuple(lines)


def _member(tx: Tx, member_id: str | None) -> MemberRow:
    member = survivor_of(tx, None if member_id is None else get_member(tx, member_id))
    if member is None or member.status != "active":
        raise ServiceError("member.not_found", f"no member {member_id}")
    return member


def _base(station: Station, tx: Tx, kind: ReceiptKind, number: str, member: MemberRow) -> Receipt:
    now = station.now()
    ruleset = ruleset_in_force(station.rulesets(tx), now)
    tier = current_tier(station, tx, member, now) or member.tier or "standard"
    return Receipt(
        kind=kind,
        header=station.settings.printer.header or station.station_id,
        station_id=station.station_id,
        printed_at=now,
        number=number,
        phone_masked=member.phone_masked,
        tier_name=_tier_name(ruleset, tier),
        balance=member_balance(tx, member.member_id, now).points,
        footer=station.settings.printer.footer,
    )


def _attach(station: Station, tx: Tx, sale_id: str) -> Receipt:
    row = get_sale(tx, sale_id)
    if row is None:
        raise ServiceError("sale.not_found", f"no sale {sale_id}")
    if row.member_id is None:
        raise ServiceError("receipt.no_member", "no member is on this sale")
    base = _base(station, tx, "attach", sale_no(sale_id), _member(tx, row.member_id))
    ruleset = _ruleset(station.rulesets(tx), row.ruleset_version)
    points = json.loads(row.receipt) if row.receipt else {}
    litres, amount = Decimal(row.litres_ml) / 1000, Decimal(row.amount_fen) / 100
    grade = None if ruleset is None else ruleset.grades.get(row.grade)
    fuel = FuelLine(
        pump=row.pump,
        grade=row.grade if grade is None else grade.name,
        litres=litres,
        unit_price=None if row.unit_price_milli is None else Decimal(row.unit_price_milli) / 1000,
        amount_fen=row.amount_fen,
        discount_fen=int(points.get("discount_fen", 0)),
        ended_at=datetime.fromisoformat(row.ended_at).astimezone(station.zone),
    )
    return replace(
        base,
        fuel=fuel,
        points_earned=row.points,
        steps=summarise_steps(points, ruleset, litres, amount) if points else (),
        tier_name=_tier_name(ruleset, row.tier) if row.tier else base.tier_name,
    )


def _redemption(station: Station, tx: Tx, redemption_id: str) -> Receipt:
    entry = entry_by_op_id(tx, redemption_id)
    if entry is None or entry.kind != "redeem":
        raise ServiceError("redemption.not_found", f"no redemption {redemption_id}")
    member = _member(tx, entry.member_id)
    base = _base(station, tx, "redemption", sale_no(redemption_id), member)
    return replace(base, redeemed_points=-entry.points, redeemed_fen=entry.value_fen or 0)


def make_receipt(station: Station, kind: str, ref: str) -> Receipt:
    """The receipt of a sale's attach (`sale`, its id), a redemption (`redemption`, its
    id) or a sign-up (`member`, the member's id)."""
    if kind not in RECEIPT_KINDS:
        raise ServiceError("receipt.kind", f"a receipt is of {', '.join(RECEIPT_KINDS)}")
    with station.store.read() as tx:
        if kind == "sale":
            return _attach(station, tx, ref)
        if kind == "redemption":
            return _redemption(station, tx, ref)
        member = _member(tx, ref)
        return _base(station, tx, "signup", sale_no(member.member_id), member)


def print_receipt(
    station: Station, printer: Printer | None, kind: str, ref: str
) -> tuple[Receipt, int]:
    """Make the receipt and send it to the printer: (the receipt, bytes sent)."""
    if printer is None:
        raise ServiceError("printer.none", "no receipt printer is configured ([printer] kind)")
    receipt = make_receipt(station, kind, ref)
    job = encode_receipt(receipt)
    try:
        printer.send(job)
    except PrinterError as exc:
        raise ServiceError("printer.unreachable", str(exc)) from exc
    return receipt, len(job)
