"""What drivers tell the application: completed fuel sales and pump state changes.

Quantities are `Decimal` exactly as the dispenser reported them; the application decides
what a sale is worth. `sale_key` identifies the physical sale on its link and stays the
same when the same sale is seen again (a reconnect, a catch-up, a restart of the agent),
so the application can record it exactly once.

Some dispensers cannot always give a sale a key that survives a restart. Such a sale says
so with `identity="last_on_point"`: it is the fuelling point's most recent sale, and it may
have been recorded before under another key. The application treats it as the sale it
last recorded for that fuelling point when that one has the same volume and amount.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

__all__ = [
    "Clock",
    "FuelSale",
    "PumpStatus",
    "RetryDelay",
    "SaleIdentity",
    "SaleSink",
    "StatusSink",
]

SaleIdentity = Literal["key", "last_on_point"]
"""How a sale is recognised when seen again: by `sale_key` alone ("key"), or, as well, as
the fuelling point's last recorded sale if the volume and amount match ("last_on_point")."""


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
    identity: SaleIdentity = "key"  # see the module's docstring


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

RetryDelay = Callable[[int], float]
"""Seconds to wait before retry number n (1 for the first) of something that failed n times
in a row: the application's backoff schedule, handed to a driver for its reconnect loop."""
