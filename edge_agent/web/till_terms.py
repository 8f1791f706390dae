"""Redemption against a bill, as arithmetic the till shows before anything is booked (pure).

The rule set says how many points buy one yuan and the fewest points one redemption may
use; points must convert to whole fen, so they go in steps. Against a bill, the points can
take off at most what is still due after the tier discount; the amount to collect is the
bill less the discount less the points' value. The booking itself (and every refusal that
matters) stays with the redemption service; this only lets the cashier see the numbers.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from cloud_sync.core.ruleset import RedeemPolicy

from ..services.sales import SaleView

__all__ = [
    "MAX_BILL_FEN",
    "Bill",
    "Quote",
    "RedeemTerms",
    "bill_of_sale",
    "entered_bill",
    "max_off",
    "parse_yuan",
    "quote",
    "redeem_terms",
]

MAX_BILL_FEN = 100_000_000  # one million yuan: far beyond any fill, short of absurd
_YUAN = re.compile(r"[0-9]{1,7}(\.[0-9]{1,2})?")


@dataclass(frozen=True)
class RedeemTerms:
    points_per_yuan: int
    min_points: int
    step: int  # points come in multiples of this, so their value is whole fen
    balance: int
    usable: int  # the most of the balance one redemption can use (0: below the minimum)

    def value_fen(self, points: int) -> int:
        return points * 100 // self.points_per_yuan

    @property
    def least(self) -> int:
        """The fewest points one redemption can use: the minimum, rounded up to a step."""
        return max(self.step, -(-self.min_points // self.step) * self.step)


@dataclass(frozen=True)
class Bill:
    amount_fen: int
    discount_fen: int  # the tier discount on this sale (0 for an entered bill)
    sale_id: str | None = None
    number: str | None = None  # the sale's short number

    @property
    def due_fen(self) -> int:
        return max(0, self.amount_fen - self.discount_fen)


@dataclass(frozen=True)
class Quote:
    points: int
    value_fen: int
    bill: Bill | None
    to_collect_fen: int | None  # None without a bill


def redeem_terms(policy: RedeemPolicy, balance: int) -> RedeemTerms:
    ppy = policy.points_per_yuan
    step = ppy // math.gcd(100, ppy)
    usable = max(0, balance) // step * step
    terms = RedeemTerms(ppy, policy.min_points, step, balance, usable)
    if usable < terms.least:
        terms = RedeemTerms(ppy, policy.min_points, step, balance, 0)
    return terms


def _points_worth(terms: RedeemTerms, fen: int) -> int:
    """The most points (a multiple of the step) worth no more than `fen`."""
    return fen * terms.points_per_yuan // 100 // terms.step * terms.step


def max_off(terms: RedeemTerms, bill: Bill | None) -> int:
    """The most points this customer can use now, on this bill when there is one."""
    most = terms.usable
    if bill is not None:
        most = min(most, _points_worth(terms, bill.due_fen))
    return most if most >= terms.least else 0


def quote(terms: RedeemTerms, points: int, bill: Bill | None) -> Quote | str:
    """The redemption's numbers, or the message key of why it cannot be done."""
    refusal = _refusal(terms, points)
    if refusal is not None:
        return refusal
    value = terms.value_fen(points)
    if bill is None:
        return Quote(points, value, None, None)
    if value > bill.due_fen:
        return "redeem.over_bill"
    return Quote(points, value, bill, bill.due_fen - value)


def _refusal(terms: RedeemTerms, points: int) -> str | None:
    """Why these points cannot be redeemed at all, whatever the bill; None if they can."""
    checks = (
        (points <= 0, "redeem.not_positive"),
        (points < terms.min_points, "redeem.below_min"),
        (points % terms.step != 0, "redeem.bad_step"),
        (points > terms.balance, "redeem.over_balance"),
    )
    return next((key for failed, key in checks if failed), None)


def parse_yuan(text: str) -> int | None:
    """Yuan as typed (digits, at most 2 decimals, above zero, at most a million) in fen."""
    cleaned = text.strip().removeprefix("¥").strip()
    if not _YUAN.fullmatch(cleaned):
        return None
    whole, _, cents = cleaned.partition(".")
    fen = int(whole) * 100 + int(cents.ljust(2, "0") or "0")
    return fen if 0 < fen <= MAX_BILL_FEN else None


def entered_bill(fen: int) -> Bill:
    return Bill(amount_fen=fen, discount_fen=0)


def bill_of_sale(sale: SaleView, number: str) -> Bill:
    discount = 0
    if sale.receipt:
        discount = int(sale.receipt.get("discount_fen", 0) or 0)
    return Bill(int(sale.amount * 100), discount, sale.sale_id, number)
