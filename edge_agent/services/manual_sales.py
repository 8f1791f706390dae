"""The manual-sale form's facts and limits: grades in force, recent prices, time bounds.

`enforce_sale_limits` runs inside the transaction that books a manual sale (`record_sale`),
so every way in (CLI, JSON API, page) is judged by the same check on the same facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from cloud_sync.core.ruleset import RuleSet, ruleset_in_force

from ..errors import ServiceError
from ..store import Tx
from ..store.prices import recent_unit_prices
from .sale_limits import (
    ManualSaleFacts,
    PriceBand,
    StationFacts,
    check_manual_sale,
    price_band,
    time_bounds,
)
from .station import Station

__all__ = [
    "GradeChoice",
    "enforce_sale_limits",
    "grade_choices",
    "manual_sale_form",
    "manual_source_key",
    "recent_price",
]

RECENT_DAYS = 7  # dispenser sales this recent set a grade's price
RECENT_SALES = 20  # the median of at most this many of them
_MILLI = Decimal(1000)


@dataclass(frozen=True)
class GradeChoice:
    """A grade of the rule set in force, as the form's dropdown shows it."""

    code: str
    name: str
    band: PriceBand

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "price": self.band.to_dict()}


def recent_price(tx: Tx, grade: str, now: datetime) -> Decimal | None:
    """The median unit price of the grade's latest dispenser sales here (None: none lately).

    The lower median of the last `RECENT_SALES`, so one odd sale (a pump's test fill, a
    price change mid-day) never sets the band by itself.
    """
    since_ms = int((now - timedelta(days=RECENT_DAYS)).timestamp() * 1000)
    prices = sorted(recent_unit_prices(tx, grade, since_ms, RECENT_SALES))
    if not prices:
        return None
    return (Decimal(prices[(len(prices) - 1) // 2]) / _MILLI).normalize()


def manual_source_key(station: Station, key: str) -> str:
    """The sale key of a manual entry the client named (its retries are recorded once)."""
    return f"manual:{station.station_id}:key:{key}"


def _in_force(station: Station, tx: Tx, at: datetime) -> RuleSet | None:
    return ruleset_in_force(station.rulesets(tx), at)


def enforce_sale_limits(station: Station, tx: Tx, sale: ManualSaleFacts) -> None:
    """Raise the first reason the manual sale is refused (ServiceError with its values)."""
    now = station.now()
    ruleset = _in_force(station, tx, min(sale.ended_at, now))
    facts = StationFacts(
        now=now,
        grades=None if ruleset is None else {c: g.name for c, g in ruleset.grades.items()},
        ruleset_version=None if ruleset is None else ruleset.version,
        recent_price=recent_price(tx, sale.grade, now),
    )
    refusals = check_manual_sale(sale, facts, station.settings.sale_limits)
    if refusals:
        first = refusals[0]
        if first.code == "rules.none":
            raise ServiceError("rules.none", "no rule set is in force; load one first")
        raise ServiceError(first.code, **first.params)


def grade_choices(station: Station) -> tuple[int | None, list[GradeChoice]]:
    """The rule set in force now (its version) and its grades with their price bands."""
    limits = station.settings.sale_limits
    now = station.now()
    with station.store.read() as tx:
        ruleset = _in_force(station, tx, now)
        if ruleset is None:
            return None, []
        choices = [
            GradeChoice(code, grade.name, price_band(code, recent_price(tx, code, now), limits))
            for code, grade in sorted(ruleset.grades.items())
        ]
    return ruleset.version, choices


def manual_sale_form(station: Station) -> dict[str, Any]:
    """Everything the manual-sale form shows before a key is pressed: the grades (with
    their recent price and allowed band), the litres limit and the end-time bounds."""
    limits = station.settings.sale_limits
    version, choices = grade_choices(station)
    now = station.now().replace(microsecond=0)
    earliest, latest = time_bounds(now, limits)
    return {
        "ruleset_version": version,
        "grades": [choice.to_dict() for choice in choices],
        "max_litres": limits.max_litres,
        "price_tolerance_pct": limits.price_tolerance_pct,
        "ended_at": {
            "default": now.isoformat(),
            "earliest": earliest.isoformat(),
            "latest": latest.isoformat(),
        },
    }
