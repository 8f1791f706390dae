"""Price a sale: the points it earns and the tier discount it is due, with every step shown.

The receipt lists each factor so a cashier, a member or an auditor can redo the sum by hand.
The same function runs at the station and in the cloud, so both sides always agree. Pure:
the sale's facts and the rule set in force go in, a receipt comes out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import (
    ROUND_DOWN,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)
from typing import Any

from cloud_sync.core.ruleset import Bonus, RuleSet

__all__ = [
    "PointsReceipt",
    "ReceiptStep",
    "SaleFacts",
    "applicable_bonus",
    "price_sale",
    "receipt_from_dict",
]

_ONE = Decimal(1)
_ZERO = Decimal(0)
_FEN_PER_YUAN = Decimal(100)
_ROUNDINGS = {"floor": ROUND_DOWN, "half_up": ROUND_HALF_UP}


def _context() -> Context:
    """Exact arithmetic whatever the caller's decimal context; a rounded product raises.

    Operands carry a few digits each, so 100 digits of precision never round; trapping
    Inexact makes sure the single rounding of a receipt is the one the rule set names
    (to_integral_value, which does that rounding, does not signal Inexact).
    """
    return Context(
        prec=100,
        rounding=ROUND_HALF_EVEN,
        traps=[InvalidOperation, DivisionByZero, Overflow, Inexact],
    )


@dataclass(frozen=True)
class SaleFacts:
    """What the dispenser reported: grade code, volume, money and the aware end time."""

    grade: str
    litres: Decimal
    amount: Decimal
    ended_at: datetime


@dataclass(frozen=True)
class ReceiptStep:
    """One line of the receipt; `value` is the running value after this step."""

    code: str  # base | tier | bonus | rounding
    description: str
    factor: Decimal
    value: Decimal


@dataclass(frozen=True)
class PointsReceipt:
    """The points a sale earned and why; stored with the sale and shown to the member.

    The steps' factors multiply to `exact` (the rounding step's factor is 1: rounding is not
    a product), and `exact` rounded by `rounding` gives `points`.
    """

    ruleset_version: int
    grade: str
    tier: str
    bonus_name: str | None
    exact: Decimal
    points: int
    rounding: str
    discount_per_litre: Decimal
    discount_fen: int
    steps: tuple[ReceiptStep, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: Decimals as strings so no reader turns them into floats."""
        return {
            "ruleset_version": self.ruleset_version,
            "grade": self.grade,
            "tier": self.tier,
            "bonus_name": self.bonus_name,
            "exact": str(self.exact),
            "points": self.points,
            "rounding": self.rounding,
            "discount_per_litre": str(self.discount_per_litre),
            "discount_fen": self.discount_fen,
            "steps": [
                {
                    "code": s.code,
                    "description": s.description,
                    "factor": str(s.factor),
                    "value": str(s.value),
                }
                for s in self.steps
            ],
        }


def _field(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in data:
        raise ValueError(f"receipt is missing {key!r}")
    value = data[key]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ValueError(f"receipt field {key!r} has the wrong type")
    if not isinstance(value, kind):
        raise ValueError(f"receipt field {key!r} has the wrong type")
    return value


def _decimal_field(data: Mapping[str, Any], key: str) -> Decimal:
    value = _field(data, key, (str, int, Decimal))
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"receipt field {key!r} is not a decimal: {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"receipt field {key!r} is not a finite decimal")
    return number


def receipt_from_dict(data: Mapping[str, Any]) -> PointsReceipt:
    """Rebuild a stored receipt; unknown keys are ignored so older readers accept newer ones."""
    raw_steps = _field(data, "steps", list)
    steps: list[ReceiptStep] = []
    for raw in raw_steps:
        if not isinstance(raw, Mapping):
            raise ValueError("receipt step must be an object")
        steps.append(
            ReceiptStep(
                code=_field(raw, "code", str),
                description=_field(raw, "description", str),
                factor=_decimal_field(raw, "factor"),
                value=_decimal_field(raw, "value"),
            )
        )
    bonus_name = data.get("bonus_name")
    if bonus_name is not None and not isinstance(bonus_name, str):
        raise ValueError("receipt field 'bonus_name' has the wrong type")
    rounding = _field(data, "rounding", str)
    if rounding not in _ROUNDINGS:
        raise ValueError(f"receipt rounding {rounding!r} is not floor or half_up")
    return PointsReceipt(
        ruleset_version=_field(data, "ruleset_version", int),
        grade=_field(data, "grade", str),
        tier=_field(data, "tier", str),
        bonus_name=bonus_name,
        exact=_decimal_field(data, "exact"),
        points=_field(data, "points", int),
        rounding=rounding,
        discount_per_litre=_decimal_field(data, "discount_per_litre"),
        discount_fen=_field(data, "discount_fen", int),
        steps=tuple(steps),
    )


def _quantity(value: object, name: str) -> Decimal:
    """Litres and amounts are Decimal (or int); a float here would already have lost fen."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"sale {name} must be a Decimal, got {type(value).__name__}")
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"sale {name} must be finite, got {number}")
    if number < 0:
        raise ValueError(f"sale {name} must not be negative, got {number}")
    return number


def applicable_bonus(ruleset: RuleSet, ended_at: datetime, amount: Decimal) -> Bonus | None:
    """The bonus with the largest multiplier applying at ended_at (first listed on a tie).

    Weekdays, dates and time windows are judged on the wall clock of the rule set's zone,
    whatever offset the sale's time was given in.
    """
    local_end = ruleset.local(ended_at)
    best: Bonus | None = None
    for bonus in ruleset.bonuses:
        if bonus.applies(local_end, amount) and (
            best is None or bonus.multiplier > best.multiplier
        ):
            best = bonus
    return best


def price_sale(ruleset: RuleSet, sale: SaleFacts, tier_code: str) -> PointsReceipt:
    """Points = rounding(base x tier multiplier x bonus), rounded once at the end.

    base is litres x points_per_litre (or amount x points_per_yuan for a per-yuan grade);
    a grade without an earn rule earns 0 and the receipt says so. `tier_code` is the tier
    the member holds for this sale (see tiers.tier_at); an unknown code raises KeyError.
    """
    litres = _quantity(sale.litres, "litres")
    amount = _quantity(sale.amount, "amount")
    tier = ruleset.tier(tier_code)
    bonus = applicable_bonus(ruleset, sale.ended_at, amount)
    ctx = _context()

    rule = ruleset.earn.get(sale.grade)
    grade = ruleset.grades.get(sale.grade)
    grade_label = f"{grade.name} ({sale.grade})" if grade else repr(sale.grade)
    if rule is None:
        base = _ZERO
        base_text = f"grade {grade_label} has no earn rule in rule set {ruleset.version}: 0 points"
    elif rule.points_per_litre is not None:
        base = ctx.multiply(litres, rule.points_per_litre)
        base_text = f"{litres} L of {grade_label} × {rule.points_per_litre} points/L"
    else:
        per_yuan = rule.points_per_yuan if rule.points_per_yuan is not None else _ZERO
        base = ctx.multiply(amount, per_yuan)
        base_text = f"{amount} yuan of {grade_label} × {per_yuan} points/yuan"

    after_tier = ctx.multiply(base, tier.multiplier)
    factor = bonus.multiplier if bonus is not None else _ONE
    exact = ctx.multiply(after_tier, factor)
    points = int(exact.to_integral_value(rounding=_ROUNDINGS[ruleset.rounding], context=ctx))

    steps = (
        ReceiptStep("base", base_text, base, base),
        ReceiptStep(
            "tier",
            f"tier {tier.name} ({tier.code}) × {tier.multiplier}",
            tier.multiplier,
            after_tier,
        ),
        ReceiptStep(
            "bonus",
            f"bonus {bonus.name} × {bonus.multiplier}" if bonus else "no bonus applies × 1",
            factor,
            exact,
        ),
        ReceiptStep(
            "rounding", f"{exact} rounded {ruleset.rounding} to whole points", _ONE, Decimal(points)
        ),
    )
    return PointsReceipt(
        ruleset_version=ruleset.version,
        grade=sale.grade,
        tier=tier.code,
        bonus_name=bonus.name if bonus else None,
        exact=exact,
        points=points,
        rounding=ruleset.rounding,
        discount_per_litre=tier.discount_per_litre,
        discount_fen=_discount_fen(ctx, litres, amount, tier.discount_per_litre),
        steps=steps,
    )


def _discount_fen(ctx: Context, litres: Decimal, amount: Decimal, per_litre: Decimal) -> int:
    """litres x discount in yuan, half-up to fen, never more than the sale's own amount."""
    fen = ctx.multiply(ctx.multiply(litres, per_litre), _FEN_PER_YUAN)
    due = int(fen.to_integral_value(rounding=ROUND_HALF_UP, context=ctx))
    cap = int(
        ctx.multiply(amount, _FEN_PER_YUAN).to_integral_value(rounding=ROUND_DOWN, context=ctx)
    )
    return min(due, cap)
