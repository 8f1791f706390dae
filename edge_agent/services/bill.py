"""Redemption against a bill: the arithmetic, pure (no clock, no store).

For a bill (a sale or an amount the cashier typed) and a member: the redemption rate and
minimum, the tier discount, the most points this bill can take ("max off"), whether all
the member's points fit ("use all"), and for a chosen number of points what they take off
and the amount left to collect. Points buy whole fen only, and never more than is due:
points cannot be given back as change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

__all__ = ["BillFacts", "BillQuote", "Refused", "fen_text", "quote", "tier_discount_fen"]

_FEN_PER_YUAN = Decimal(100)


def fen_text(fen: int) -> str:
    """Fen as yuan with 2 decimals ("12.05"); never a float."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def tier_discount_fen(litres: Decimal, per_litre: Decimal, amount_fen: int) -> int:
    """litres × the tier's discount a litre, half-up to fen, never more than the bill
    (the same rule as the pricing receipt's `discount_fen`)."""
    due = int((litres * per_litre * _FEN_PER_YUAN).to_integral_value(rounding=ROUND_HALF_UP))
    return max(0, min(due, amount_fen))


@dataclass(frozen=True)
class BillFacts:
    """What the quote is computed from; the service gathers them in one transaction.

    - `bill_fen`: the bill before the discount, None for a redemption without a bill;
    - `discount_fen`: the tier discount on that bill;
    - `redeemed_fen`: what earlier redemptions against the same sale already took off;
    - `headroom`: points the station's offline allowance still lets this member redeem
      (None: no allowance applies, the station is not in a chain).
    """

    points_per_yuan: int
    min_points: int
    balance: int
    bill_fen: int | None = None
    discount_fen: int = 0
    redeemed_fen: int = 0
    headroom: int | None = None


@dataclass(frozen=True)
class Refused:
    """Why the chosen points cannot be redeemed; `code` is in the error catalogue."""

    code: str
    params: Mapping[str, object]
    message: str = ""  # the service's English line, when the refusal came from there


@dataclass(frozen=True)
class BillQuote:
    facts: BillFacts
    step: int  # points come in multiples of this (each buys a whole number of fen)
    due_fen: int | None  # bill - discount - earlier redemptions
    max_points: int  # "max off": the most points this bill can take (0: none)
    all_points: int  # "use all": the balance, in whole steps
    all_fits: bool  # all_points can be redeemed against this bill at once
    points: int | None  # the chosen points, if any
    value_fen: int  # what the chosen points take off
    collect_fen: int | None  # the amount left to collect
    refused: Refused | None  # why the chosen points cannot be redeemed

    def to_dict(self) -> dict[str, Any]:
        f = self.facts
        due = self.due_fen
        return {
            "points_per_yuan": f.points_per_yuan,
            "min_points": f.min_points,
            "step": self.step,
            "balance": f.balance,
            "bill_fen": f.bill_fen,
            "bill": None if f.bill_fen is None else fen_text(f.bill_fen),
            "discount_fen": f.discount_fen,
            "discount": fen_text(f.discount_fen),
            "redeemed_fen": f.redeemed_fen,
            "due_fen": due,
            "due": None if due is None else fen_text(due),
            "headroom": f.headroom,
            "max_points": self.max_points,
            "max_value": fen_text(value_of(f, self.max_points)),
            "all_points": self.all_points,
            "all_fits": self.all_fits,
            "points": self.points,
            "value_fen": self.value_fen,
            "value": fen_text(self.value_fen),
            "collect_fen": self.collect_fen,
            "collect": None if self.collect_fen is None else fen_text(self.collect_fen),
            "balance_after": f.balance - (self.points or 0) if self.refused is None else f.balance,
            "refused": None if self.refused is None else self.refused.code,
        }


def step_of(points_per_yuan: int) -> int:
    """The smallest number of points worth a whole number of fen."""
    return points_per_yuan // math.gcd(100, points_per_yuan)


def value_of(facts: BillFacts, points: int) -> int:
    """Fen off for `points` (a multiple of the step)."""
    return points * 100 // facts.points_per_yuan


def _max_points(facts: BillFacts, step: int, due_fen: int | None) -> int:
    cap = facts.balance
    if facts.headroom is not None:
        cap = min(cap, facts.headroom)
    if due_fen is not None:
        fen_per_step = 100 // math.gcd(100, facts.points_per_yuan)
        cap = min(cap, due_fen // fen_per_step * step)
    best = max(0, cap) // step * step
    return best if best >= facts.min_points else 0


def _refusal(
    facts: BillFacts, step: int, points: int, max_points: int, due: int | None
) -> Refused | None:
    rate = {"points_per_yuan": facts.points_per_yuan}
    if points <= 0:
        return Refused("redeem.not_positive", {})
    if points < facts.min_points:
        return Refused("redeem.min_points", {"min_points": facts.min_points, **rate})
    if points % step:
        return Refused("redeem.not_whole_fen", {"step": step, **rate})
    if points > facts.balance:
        return Refused("points.insufficient", {"available": facts.balance, "asked": points})
    if due is not None and value_of(facts, points) > due:
        params = {"points": points, "value": fen_text(value_of(facts, points))}
        params |= {"due": fen_text(due), "max_points": max_points}
        return Refused("redeem.over_bill", params)
    return None  # the allowance's own refusals name the allowance: the service raises them


def quote(facts: BillFacts, points: int | None = None) -> BillQuote:
    """The bill's redemption figures, and for `points` what they take off (or why not)."""
    if facts.points_per_yuan <= 0 or facts.min_points < 0 or facts.balance < 0:
        raise ValueError("a redemption rate is positive; a minimum and a balance are not negative")
    step = step_of(facts.points_per_yuan)
    due = None
    if facts.bill_fen is not None:
        due = max(0, facts.bill_fen - facts.discount_fen - facts.redeemed_fen)
    max_points = _max_points(facts, step, due)
    all_points = facts.balance // step * step
    all_fits = 0 < all_points <= max_points
    refused = None if points is None else _refusal(facts, step, points, max_points, due)
    value = 0 if points is None or refused is not None else value_of(facts, points)
    collect = None if due is None else due - value
    return BillQuote(
        facts=facts,
        step=step,
        due_fen=due,
        max_points=max_points,
        all_points=all_points,
        all_fits=all_fits,
        points=points,
        value_fen=value,
        collect_fen=collect,
        refused=refused,
    )
