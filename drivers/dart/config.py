"""Site configuration of one DART pump: its address, fuelling point, nozzles and decimals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .framer import FIRST_ADDRESS, LAST_ADDRESS
from .messages import Decimals

__all__ = ["DartPumpConfig"]

_NOZZLES = range(1, 16)


@dataclass(frozen=True)
class DartPumpConfig:
    """One pump (one DART address) on the link, as the site configuration describes it."""

    address: int
    fuelling_point: int
    nozzles: Mapping[int, str]  # nozzle number -> grade code of the rule set
    volume_decimals: int = 2
    amount_decimals: int = 2
    price_decimals: int = 2

    def __post_init__(self) -> None:
        if not FIRST_ADDRESS <= self.address <= LAST_ADDRESS:
            raise ValueError(f"DART address 0x{self.address:02X} outside 0x50-0x6F")
        if self.fuelling_point < 1:
            raise ValueError(f"fuelling_point must be 1 or more, not {self.fuelling_point}")
        for nozzle in self.nozzles:
            if nozzle not in _NOZZLES:
                raise ValueError(f"nozzle {nozzle} outside 1-15")
        for places in (self.volume_decimals, self.amount_decimals, self.price_decimals):
            if not 0 <= places <= 8:
                raise ValueError(f"decimal places {places} outside 0-8")

    @property
    def decimals(self) -> Decimals:
        return Decimals(self.volume_decimals, self.amount_decimals, self.price_decimals)
