"""The virtual cashier: what a person at the till would do with the sales the pumps produce.

It watches the station's recent sales, attaches a sample member to most new ones (through
the same service the cashier page uses) and now and then spends a member's points. It
opens the store with its own connection, like `loyalpump edge …` next to a running agent.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from ..errors import ServiceError
from ..services.members import member_view
from ..services.points import redeem_points
from ..services.sales import attach_member, list_sales
from ..services.station import Station

__all__ = ["CashierStats", "VirtualCashier"]

ACTOR = "demo-cashier"
_RECENT = 200  # sales looked at per pass; far more than a pass ever sees arrive


@dataclass
class CashierStats:
    """What the cashier saw and did; read by the progress line (a snapshot under the lock)."""

    sales: Counter[str] = field(default_factory=Counter)  # by source
    litres: Decimal = Decimal(0)
    attached: int = 0
    points_earned: int = 0
    points_redeemed: int = 0
    redemptions: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # ServiceError codes


class VirtualCashier:
    """Call `step()` every fraction of a second (from one thread); `stats()` from any."""

    def __init__(
        self,
        station: Station,
        member_ids: list[str],
        rng: random.Random,
        *,
        attach_share: float = 0.8,
        redeem_share: float = 0.3,
    ) -> None:
        self._station = station
        self._members = member_ids
        self._rng = rng
        self._attach_share = attach_share
        self._redeem_share = redeem_share
        self._seen: set[str] = set()
        self._stats = CashierStats()
        self._lock = threading.Lock()

    def stats(self) -> CashierStats:
        with self._lock:
            s = self._stats
            return CashierStats(
                Counter(s.sales),
                s.litres,
                s.attached,
                s.points_earned,
                s.points_redeemed,
                s.redemptions,
                Counter(s.refused),
            )

    def step(self) -> None:
        """Look at the newest sales once; attach and redeem as a cashier would."""
        for sale in reversed(list_sales(self._station, _RECENT)):  # oldest first
            if sale.sale_id in self._seen:
                continue
            self._seen.add(sale.sale_id)
            with self._lock:
                self._stats.sales[sale.source] += 1
                self._stats.litres += sale.litres
            if sale.member_id is not None or self._rng.random() >= self._attach_share:
                continue  # a driver without a loyalty card
            member_id = self._rng.choice(self._members)
            try:
                outcome = attach_member(self._station, sale.sale_id, member_id, actor=ACTOR)
            except ServiceError as exc:
                self._refused(exc)
                continue
            with self._lock:
                self._stats.attached += 1
                self._stats.points_earned += outcome.sale.points
            if self._rng.random() < self._redeem_share:
                self._maybe_redeem(member_id)

    def _maybe_redeem(self, member_id: str) -> None:
        """Spend one to three hundred points (1-3 yuan off) when the member has them."""
        balance = member_view(self._station, member_id).points
        if balance < 100:
            return
        points = 100 * self._rng.randint(1, min(3, balance // 100))
        try:
            redeem_points(self._station, member_id, points, actor=ACTOR)
        except ServiceError as exc:
            self._refused(exc)
            return
        with self._lock:
            self._stats.points_redeemed += points
            self._stats.redemptions += 1

    def _refused(self, exc: ServiceError) -> None:
        with self._lock:
            self._stats.refused[exc.code] += 1
