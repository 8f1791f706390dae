"""`[sale_limits]` of station.toml: what a person may key in as a manual sale.

Safe defaults for a forecourt of cars; a truck stop raises `max_litres` (up to a tanker's
30,000). Prices are written as text (`"7.50"`): money never passes through a binary float,
and the environment override of a text key takes its value as it is.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["GradeBand", "SaleLimitsSettings"]

# yuan per litre (or per kg), up to 3 decimals, above zero and below 1,000
_PRICE = r"^\d{1,3}(\.\d{1,3})?$"
PriceText = Annotated[str, Field(pattern=_PRICE)]
_GRADE = r"^[A-Za-z0-9#_-]{1,16}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _PriceBand(_Strict):
    """A unit-price band in yuan a litre: above 0, its minimum below its maximum."""

    price_min: PriceText
    price_max: PriceText

    @model_validator(mode="after")
    def _ordered(self) -> _PriceBand:
        if Decimal(self.price_min) <= 0:
            raise ValueError("price_min must be above 0")
        if Decimal(self.price_min) >= Decimal(self.price_max):
            raise ValueError("price_min must be below price_max")
        return self

    @property
    def low(self) -> Decimal:
        return Decimal(self.price_min)

    @property
    def high(self) -> Decimal:
        return Decimal(self.price_max)


class GradeBand(_PriceBand):
    """A fixed price band for one grade; it replaces the recent-price band for that grade."""


class SaleLimitsSettings(_PriceBand):
    """Manual sales outside these are refused with the reason (docs/contracts.md §2).

    - `max_litres`: litres of one sale (more than 0, at most this).
    - `price_min` / `price_max`: the unit price of any grade, always.
    - `price_tolerance_pct`: the unit price within this many per cent of the grade's recent
      price at this station (the dispensers' own sales of the last 7 days), when known.
    - `grades`: a fixed band per grade code instead (`[sale_limits.grades."92"]`).
    - `clock_skew_s`: how far past the station's clock an end time may be.
    - `max_age_days`: how old an end time may be (a sale keyed in after an outage).
    """

    max_litres: Annotated[int, Field(strict=True, ge=1, le=30_000)] = 200
    price_min: PriceText = "1.00"
    price_max: PriceText = "20.00"
    price_tolerance_pct: Annotated[int, Field(strict=True, ge=1, le=100)] = 30
    clock_skew_s: Annotated[int, Field(strict=True, ge=0, le=3600)] = 300
    max_age_days: Annotated[int, Field(strict=True, ge=1, le=30)] = 7
    grades: dict[Annotated[str, Field(pattern=_GRADE)], GradeBand] = Field(default_factory=dict)
