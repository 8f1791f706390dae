"""What drivers tell the application: completed fuel sales and pump state changes.

Quantities are `Decimal` exactly as the dispenser reported them; the application decides
what a sale is worth. `sale_key` identifies the physical sale on its link and stays the
same when the same sale is seen again (a reconnect, a catch-up, a restart of the agent),
so the application can record it exactly once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

__all__ = ["Clock", "FuelSale", "PumpStatus", "SaleSink", "StatusSink"]


@dataclass(frozen=True)
class FuelSale:
    sale_key: str  # stable and unique per physical sale on this link
    source: str  # "dart" | "ifsf"
    fuelling_point: int
    nozzle: int | None
    grade: str | None  # grade code from the site map; None when the map has no entry
    volume: Decimal  # litres
    amount: Decimal  # yuan
    unit_price: Decimal | None  # yuan per litre
    ended_at: datetime  # aware
    started_at: datetime | None = None
    details: Mapping[str, str] = field(default_factory=dict)  # protocol facts for audit


@dataclass(frozen=True)
class PumpStatus:
    """A fuelling point's state as the cashier's pump board shows it."""

    source: str
    fuelling_point: int
    state: str  # idle | calling | authorized | filling | completed | offline | error
    nozzle: int | None
    at: datetime
    volume: Decimal | None = None
    amount: Decimal | None = None


SaleSink = Callable[[FuelSale], Awaitable[None]]
"""Commits a sale durably; a driver acknowledges a sale only after this returns."""

StatusSink = Callable[[PumpStatus], Awaitable[None]]

Clock = Callable[[], datetime]
