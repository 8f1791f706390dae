"""Which nozzle a finished filling was on, when the pump no longer says so.

A filling that ended while the agent was down is found again on the pump's display (DC1 5,
DC2), but if the next customer has already lifted a nozzle, DC3 names that nozzle, not the
one the display belongs to. The display's own numbers still carry its price: the pump's
price computer made amount = volume x price (or volume = amount / price for an amount
preset), rounded, so the price is recovered exactly when only one price fits; it then
points at the nozzle with that price.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from decimal import ROUND_HALF_UP, Decimal

from .messages import Decimals

__all__ = ["nozzle_behind", "price_behind"]


def price_behind(volume: Decimal, amount: Decimal, decimals: Decimals) -> Decimal | None:
    """The one unit price that turns `volume` into `amount` (or back); None if not unique."""
    if volume <= 0 or amount <= 0:
        return None
    step = Decimal(1).scaleb(-decimals.price)
    cent = Decimal(1).scaleb(-decimals.amount)
    litre = Decimal(1).scaleb(-decimals.volume)
    guess = (amount / volume).quantize(step)
    fits = [
        price
        for price in (guess - step, guess, guess + step)
        if price > 0
        and (
            (volume * price).quantize(cent, ROUND_HALF_UP) == amount
            or (amount / price).quantize(litre, ROUND_HALF_UP) == volume
        )
    ]
    return fits[0] if len(fits) == 1 else None


def nozzle_behind(
    *,
    volume: Decimal,
    amount: Decimal,
    decimals: Decimals,
    known_prices: Mapping[int, Decimal],
    nozzles: Collection[int],
) -> tuple[int, Decimal] | None:
    """(nozzle, price) of the displayed filling, or None when the numbers do not decide it.

    `known_prices`: prices seen in DC3 for some nozzles (at least the lifted one);
    `nozzles`: the pump's configured nozzles. A single nozzle with the recovered price wins;
    with none known at that price, a single nozzle whose price is unknown wins.
    """
    price = price_behind(volume, amount, decimals)
    if price is None:
        return None
    candidates = set(nozzles) | set(known_prices)
    matching = [n for n in candidates if known_prices.get(n) == price]
    unknown = [n for n in candidates if n not in known_prices]
    if len(matching) == 1:
        return matching[0], price
    if not matching and len(unknown) == 1:
        return unknown[0], price
    return None
