"""The simulated forecourt: N pumps, the sales they are due to play, and the ground truth."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from decimal import Decimal

from .framer import FIRST_ADDRESS, LAST_ADDRESS
from .messages import Decimals
from .sim_pump import PRICES, ScriptedSale, SimulatedPump

__all__ = ["Forecourt"]

_AMOUNTS = (50, 100, 150, 200, 300)


class Forecourt:
    """Pumps 0x50.. (fuelling points 1..N) with their queues of scripted and random sales."""

    def __init__(
        self,
        *,
        pumps: int,
        script: Sequence[ScriptedSale],
        random_sales: int | None,
        interval_s: float,
        fill_s: float | None,
        decimals: Decimals,
        rng: random.Random,
        on_sale_completed: Callable[[dict[str, str]], None] | None,
    ) -> None:
        if not 1 <= pumps <= LAST_ADDRESS - FIRST_ADDRESS + 1:
            raise ValueError(f"{pumps} pumps do not fit the DART address range")
        self.completed: list[dict[str, str]] = []
        self._callback = on_sale_completed
        self._rng = rng
        self._decimals = decimals
        self._random_left = random_sales
        self.pumps = [
            SimulatedPump(
                FIRST_ADDRESS + index,
                index + 1,
                decimals=decimals,
                totals={n: Decimal(rng.randint(1_000_000, 99_999_999)).scaleb(-2) for n in (1, 2)},
                fill_s=fill_s if fill_s is not None else max(interval_s * 0.5, 0.05),
                interval_s=interval_s,
                on_completed=self._record,
            )
            for index in range(pumps)
        ]
        self.by_address = {pump.address: pump for pump in self.pumps}
        for sale in script:
            if not 1 <= sale.fuelling_point <= pumps:
                raise ValueError(f"scripted sale on fuelling point {sale.fuelling_point}")
            self.pumps[sale.fuelling_point - 1].orders.append(sale)

    @property
    def finished(self) -> bool:
        """Every scripted and random sale has been played to completion."""
        pumps_done = all(not pump.busy and not pump.orders for pump in self.pumps)
        return pumps_done and self._random_left == 0

    def close(self) -> None:
        """Closing time: no sale starts any more (queued ones are dropped); a pump mid-sale
        still finishes it."""
        self._random_left = 0
        for pump in self.pumps:
            pump.orders.clear()

    def tick(self, now: float) -> None:
        for pump in self.pumps:
            if not pump.busy and not pump.orders and self._random_left != 0:
                pump.orders.append(self._random_sale(pump.fuelling_point))
                if self._random_left is not None:
                    self._random_left -= 1
            pump.tick(now)

    def _random_sale(self, fuelling_point: int) -> ScriptedSale:
        rng = self._rng
        nozzle = rng.choice((1, 2))
        price = PRICES[nozzle]
        if rng.random() < 0.3:
            return ScriptedSale(fuelling_point, nozzle, price, amount=Decimal(rng.choice(_AMOUNTS)))
        litres = Decimal(rng.randint(300, 6000)).scaleb(-self._decimals.volume)
        return ScriptedSale(fuelling_point, nozzle, price, volume=litres)

    def _record(self, sale: dict[str, str]) -> None:
        self.completed.append(sale)
        if self._callback is not None:
            self._callback(sale)


class ClosingTime:
    """Turns a closing signal into `Forecourt.close()`, and calls `on_closed` once, when the
    last sale in progress has completed (from then on the ground truth is final)."""

    def __init__(
        self,
        forecourt: Forecourt,
        closing: threading.Event | None,
        on_closed: Callable[[], None] | None,
    ) -> None:
        self._forecourt = forecourt
        self._closing = closing
        self._on_closed = on_closed
        self._done = False

    def check(self) -> None:
        if self._done or self._closing is None or not self._closing.is_set():
            return
        self._forecourt.close()
        if self._forecourt.finished:
            self._done = True
            if self._on_closed is not None:
                self._on_closed()
