"""The sanity limits on a manual sale: a pure check, no clock, no store.

A person keys a sale in when the dispenser link is down; a typo (5000 L for 1 yuan) must
not earn points. `check_manual_sale` answers every reason the sale is refused, in the
order of the form's fields; the service that books manual sales raises the first, so the
CLI, the JSON API and the page refuse the same values with the same reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Literal

from ..sale_limit_settings import SaleLimitsSettings

__all__ = [
    "FIELD_OF",
    "ManualSaleFacts",
    "PriceBand",
    "Refusal",
    "StationFacts",
    "check_manual_sale",
    "price_band",
    "time_bounds",
]

_CENT = Decimal("0.01")
_MAX_PUMP = 99

PriceBasis = Literal["grade", "recent", "station"]

# The form field each refusal belongs to (the page marks that field and keeps the others).
FIELD_OF: Mapping[str, str] = {
    "sale.pump_range": "pump",
    "sale.nozzle_range": "nozzle",
    "rules.none": "grade",
    "sale.grade_unknown": "grade",
    "sale.litres_range": "litres",
    "sale.price_band": "unit_price",
    "sale.price_recent": "unit_price",
    "sale.amount_mismatch": "amount",
    "sale.ended_future": "ended_at",
    "sale.ended_old": "ended_at",
}


@dataclass(frozen=True)
class ManualSaleFacts:
    """What the person typed; `unit_price` None means "amount / litres"."""

    pump: int
    nozzle: int | None
    grade: str
    litres: Decimal
    amount: Decimal
    unit_price: Decimal | None
    ended_at: datetime


@dataclass(frozen=True)
class StationFacts:
    """What the station knows: its clock, the rule set in force at the sale's end (grade
    code -> name; None without one) and the grade's recent price at this station."""

    now: datetime
    grades: Mapping[str, str] | None
    ruleset_version: int | None
    recent_price: Decimal | None


@dataclass(frozen=True)
class Refusal:
    code: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def form_field(self) -> str:
        return FIELD_OF.get(self.code, "")


@dataclass(frozen=True)
class PriceBand:
    """The unit prices allowed for a grade, and why: a configured band for the grade, the
    recent price ± tolerance (within the station's band), or the station's band alone."""

    low: Decimal
    high: Decimal
    basis: PriceBasis
    recent: Decimal | None

    def to_dict(self) -> dict[str, str | None]:
        return {
            "low": _yuan(self.low),
            "high": _yuan(self.high),
            "basis": self.basis,
            "recent": None if self.recent is None else _yuan(self.recent),
        }


def _yuan(value: Decimal) -> str:
    """2 decimals, or 3 when the value has them (a pump priced to the tenth of a fen)."""
    places = 3 if value != value.quantize(_CENT) else 2
    return f"{value:.{places}f}"


def _litres(value: Decimal) -> str:
    return f"{value.normalize():f}" if value == value.to_integral_value() else f"{value:f}"


def price_band(grade: str, recent: Decimal | None, limits: SaleLimitsSettings) -> PriceBand:
    """The band a manual sale's unit price must fall in; bounds rounded inwards to fen."""
    configured = limits.grades.get(grade)
    if configured is not None:
        return PriceBand(configured.low, configured.high, "grade", recent)
    if recent is None or not limits.low <= recent <= limits.high:
        # No dispenser sale to go by, or one the station's own band calls absurd.
        return PriceBand(limits.low, limits.high, "station", recent)
    share = Decimal(limits.price_tolerance_pct) / 100
    low = (recent * (1 - share)).quantize(_CENT, rounding=ROUND_CEILING)
    high = (recent * (1 + share)).quantize(_CENT, rounding=ROUND_FLOOR)
    return PriceBand(max(low, limits.low), min(high, limits.high), "recent", recent)


def time_bounds(now: datetime, limits: SaleLimitsSettings) -> tuple[datetime, datetime]:
    """The earliest and the latest end time a manual sale may have."""
    return now - timedelta(days=limits.max_age_days), now + timedelta(seconds=limits.clock_skew_s)


def _pump(sale: ManualSaleFacts) -> list[Refusal]:
    found = []
    if not 1 <= sale.pump <= _MAX_PUMP:
        found.append(Refusal("sale.pump_range", {"pump": str(sale.pump)}))
    if sale.nozzle is not None and not 1 <= sale.nozzle <= _MAX_PUMP:
        found.append(Refusal("sale.nozzle_range", {"nozzle": str(sale.nozzle)}))
    return found


def _grade(sale: ManualSaleFacts, facts: StationFacts) -> list[Refusal]:
    if facts.grades is None:
        return [Refusal("rules.none")]
    if sale.grade in facts.grades:
        return []
    params = {
        "grade": sale.grade,
        "version": str(facts.ruleset_version),
        "known": ", ".join(sorted(facts.grades)),
    }
    return [Refusal("sale.grade_unknown", params)]


def _unit_price(sale: ManualSaleFacts) -> Decimal:
    if sale.unit_price is not None:
        return sale.unit_price
    return (sale.amount / sale.litres).quantize(_CENT, rounding=ROUND_HALF_UP)


def _price_and_amount(
    sale: ManualSaleFacts, facts: StationFacts, limits: SaleLimitsSettings
) -> list[Refusal]:
    """The price within its band, then the amount = litres × price within ±1 fen a litre."""
    price = _unit_price(sale)
    band = price_band(sale.grade, facts.recent_price, limits)
    found = []
    if not band.low <= price <= band.high:
        params = {"price": _yuan(price), "grade": sale.grade}
        params |= {"low": _yuan(band.low), "high": _yuan(band.high)}
        if band.basis == "recent" and band.recent is not None:
            params |= {"recent": _yuan(band.recent), "pct": str(limits.price_tolerance_pct)}
            found.append(Refusal("sale.price_recent", params))
        else:
            found.append(Refusal("sale.price_band", params))
    if sale.unit_price is not None:
        expected = sale.litres * sale.unit_price
        tolerance = max(sale.litres * _CENT, _CENT)
        if abs(sale.amount - expected) > tolerance:
            params = {
                "amount": _yuan(sale.amount),
                "litres": _litres(sale.litres),
                "price": _yuan(sale.unit_price),
                "expected": _yuan(expected.quantize(_CENT, rounding=ROUND_HALF_UP)),
                "tolerance": _yuan(tolerance.quantize(_CENT, rounding=ROUND_FLOOR)),
            }
            found.append(Refusal("sale.amount_mismatch", params))
    return found


def _ended_at(
    sale: ManualSaleFacts, facts: StationFacts, limits: SaleLimitsSettings
) -> list[Refusal]:
    earliest, latest = time_bounds(facts.now, limits)
    shown = sale.ended_at.astimezone(facts.now.tzinfo).isoformat(timespec="seconds")
    if sale.ended_at > latest:
        return [Refusal("sale.ended_future", {"at": shown, "skew": str(limits.clock_skew_s)})]
    if sale.ended_at < earliest:
        return [Refusal("sale.ended_old", {"at": shown, "days": str(limits.max_age_days)})]
    return []


def check_manual_sale(
    sale: ManualSaleFacts, facts: StationFacts, limits: SaleLimitsSettings
) -> tuple[Refusal, ...]:
    """Every reason to refuse `sale`, in the form's order (empty: it may be booked).

    Quantities are Decimal, times aware; the price and amount checks need litres > 0, so a
    sale refused for its litres is not judged on its price as well.
    """
    if sale.ended_at.tzinfo is None or facts.now.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    found = [*_pump(sale), *_grade(sale, facts)]
    if not 0 < sale.litres <= limits.max_litres:
        found.append(
            Refusal(
                "sale.litres_range",
                {"litres": _litres(sale.litres), "max": str(limits.max_litres)},
            )
        )
    else:
        found += _price_and_amount(sale, facts, limits)
    found += _ended_at(sale, facts, limits)
    return tuple(found)
