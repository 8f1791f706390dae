"""Points lots: which earned points a debit consumes.

Every earning creates a lot with an expiry date. Debits (redemption, reversal, negative
adjustment, expiry) consume lots, soonest-expiring first, so members lose as little as
possible to expiry. Pure: the store feeds lots in and records the allocations out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

__all__ = ["InsufficientPoints", "Lot", "allocate", "spend_order", "spendable"]


@dataclass(frozen=True)
class Lot:
    lot_id: int
    remaining: int
    expires_at: datetime | None  # None: never expires
    earned_seq: int  # tie-breaker: older lots first among equal expiry


class InsufficientPoints(ValueError):
    def __init__(self, wanted: int, available: int) -> None:
        super().__init__(f"needs {wanted} points, only {available} spendable")
        self.wanted = wanted
        self.available = available


def _is_live(lot: Lot, at: datetime) -> bool:
    return lot.remaining > 0 and (lot.expires_at is None or lot.expires_at > at)


def spend_order(lots: Iterable[Lot], at: datetime) -> list[Lot]:
    """Live lots in the order debits consume them: soonest expiry first, then oldest."""
    live = [lot for lot in lots if _is_live(lot, at)]
    return sorted(
        live,
        key=lambda lot: (lot.expires_at is None, lot.expires_at or at, lot.earned_seq),
    )


def spendable(lots: Iterable[Lot], at: datetime) -> int:
    """Points usable at `at`: expired lots never count, whether or not expiry was booked."""
    return sum(lot.remaining for lot in lots if _is_live(lot, at))


def allocate(
    lots: Sequence[Lot], points: int, at: datetime, *, first: int | None = None
) -> list[tuple[int, int]]:
    """Return (lot_id, points) pairs covering `points`, or raise InsufficientPoints.

    `first` names a lot to drain before the usual order, expired or not: a sale's reversal
    takes back the points that sale earned before touching anything else.
    """
    if points <= 0:
        raise ValueError("points to allocate must be positive")
    ordered = spend_order(lots, at)
    if first is not None:
        # The named lot goes first even if it has expired unbooked: reversing a sale whose
        # points already lapsed takes back those lapsed points, not the member's live ones.
        own = [lot for lot in lots if lot.lot_id == first and lot.remaining > 0]
        ordered = own + [lot for lot in ordered if lot.lot_id != first]
    available = sum(lot.remaining for lot in ordered)
    if available < points:
        raise InsufficientPoints(points, available)
    allocations: list[tuple[int, int]] = []
    left = points
    for lot in ordered:
        take = min(lot.remaining, left)
        allocations.append((lot.lot_id, take))
        left -= take
        if left == 0:
            break
    return allocations
