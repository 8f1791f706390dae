"""Turning a driver's completed fuel sale into a recorded sale, exactly once.

The driver's `sale_key` becomes the store's `source_key`, so the same physical sale seen
again (a reconnect, a catch-up, a restart) finds the sale already recorded. Nothing a
dispenser reports is refused here: quantities are brought to the store's precision, an
unmapped grade is recorded as such, and the sale waits for a cashier to attach a member.
"""

from __future__ import annotations

import logging
from decimal import ROUND_HALF_UP, Decimal

from drivers.events import FuelSale

from ..store.sales import last_sale_on_pump
from .sales import SaleInput, SaleOutcome, record_sale, sale_view
from .station import Station

__all__ = ["UNMAPPED_GRADE", "ingest_fuel_sale"]

UNMAPPED_GRADE = "unmapped"
_MILLILITRE = Decimal("0.001")
_FEN = Decimal("0.01")
_PRICE = Decimal("0.001")
log = logging.getLogger(__name__)


def _exact(value: Decimal, quantum: Decimal, what: str, sale: FuelSale) -> Decimal:
    rounded = value.quantize(quantum, rounding=ROUND_HALF_UP)
    if rounded != value:
        log.warning("sale %s: %s %s rounded to %s", sale.sale_key, what, value, rounded)
    return rounded


def _already_recorded_as_last(station: Station, sale: FuelSale) -> SaleOutcome | None:
    """A sale known only as its fuelling point's latest (`FuelSale.identity`), such as a
    filling read back from a pump's display without its nozzle: if the last sale recorded
    for that fuelling point has the same figures, it is that sale, seen again after a
    restart under a key that could not name it the same way."""
    if sale.identity != "last_on_point":
        return None
    with station.store.read() as tx:
        last = last_sale_on_pump(tx, sale.source, sale.fuelling_point)
    if last is None or (last.litres_ml, last.amount_fen) != (
        int(sale.volume * 1000),
        int(sale.amount * 100),
    ):
        return None
    return SaleOutcome(sale_view(station, last.sale_id), created=False)


def ingest_fuel_sale(station: Station, sale: FuelSale) -> SaleOutcome:
    """Record a dispenser sale (durably, before the driver acknowledges it)."""
    seen = _already_recorded_as_last(station, sale)
    if seen is not None:
        return seen
    grade = sale.grade or UNMAPPED_GRADE
    if sale.grade is None:
        log.warning(
            "sale %s on fuelling point %s: nozzle %s has no grade in the site map",
            sale.sale_key,
            sale.fuelling_point,
            sale.nozzle,
        )
    return record_sale(
        station,
        SaleInput(
            source=sale.source,
            source_key=sale.sale_key,
            pump=sale.fuelling_point,
            nozzle=sale.nozzle,
            grade=grade,
            litres=_exact(sale.volume, _MILLILITRE, "volume", sale),
            amount=_exact(sale.amount, _FEN, "amount", sale),
            unit_price=None
            if sale.unit_price is None
            else _exact(sale.unit_price, _PRICE, "unit price", sale),
            started_at=sale.started_at,
            ended_at=sale.ended_at,
        ),
    )
