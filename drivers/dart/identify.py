"""Which nozzle a finished filling was on, when the pump no longer says so.

A filling that ended while the agent was down is found again on the pump's display (DC1 5,
DC2), but if the next customer has already lifted a nozzle, DC3 names that nozzle, not the
one the display belongs to. The display's own numbers still carry its price: the pump's
price computer made amount = volume x price (or volume = amount / price for an amount
preset), rounded. The prices that fit point at the nozzle known at one of them or, when
none is known, at the one nozzle whose price is not known yet (after a restart, only the
lifted nozzle's price is); a small filling can fit two neighbouring prices and still name
its nozzle.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from decimal import ROUND_HALF_UP, Decimal

from .messages import Decimals

__all__ = ["nozzle_behind", "price_behind", "prices_behind"]


def prices_behind(volume: Decimal, amount: Decimal, decimals: Decimals) -> list[Decimal]:
    """Every unit price that turns `volume` into `amount` (or back), rounded as a pump does.

    A small filling often fits two neighbouring prices (3.97 L for 31.16 yuan is 7.85 by
    volume x price and 7.84 by amount / price), so all are returned.
    """
    if volume <= 0 or amount <= 0:
        return []
    step = Decimal(1).scaleb(-decimals.price)
    cent = Decimal(1).scaleb(-decimals.amount)
    litre = Decimal(1).scaleb(-decimals.volume)
    guess = (amount / volume).quantize(step)
    return [
        price
        for price in (guess - step, guess, guess + step)
        if price > 0
        and (
            (volume * price).quantize(cent, ROUND_HALF_UP) == amount
            or (amount / price).quantize(litre, ROUND_HALF_UP) == volume
        )
    ]


def price_behind(volume: Decimal, amount: Decimal, decimals: Decimals) -> Decimal | None:
    """The one unit price that turns `volume` into `amount` (or back); None if not unique."""
    fits = prices_behind(volume, amount, decimals)
    return fits[0] if len(fits) == 1 else None


def nozzle_behind(
    *,
    volume: Decimal,
    amount: Decimal,
    decimals: Decimals,
    known_prices: Mapping[int, Decimal],
    nozzles: Collection[int],
) -> tuple[int, Decimal | None] | None:
    """(nozzle, price) of the displayed filling, or None when the numbers do not decide it.

    `known_prices`: prices seen in DC3 for some nozzles (at least the lifted one);
    `nozzles`: the pump's configured nozzles. A single nozzle whose known price fits wins;
    with none known at a fitting price, a single nozzle whose price is unknown wins (its
    price is None when more than one price fits: the nozzle, hence the grade, is still
    certain, and the grade is what the points depend on).
    """
    fits = prices_behind(volume, amount, decimals)
    if not fits:
        return None
    candidates = set(nozzles) | set(known_prices)
    matching = [n for n in candidates if known_prices.get(n) in fits]
    unknown = [n for n in candidates if n not in known_prices]
    if len(matching) == 1:
        return matching[0], known_prices[matching[0]]
    if not matching and len(unknown) == 1:
        return unknown[0], fits[0] if len(fits) == 1 else None
    return None
