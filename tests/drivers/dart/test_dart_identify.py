"""Recovering a displayed filling's price, and through it its nozzle."""

from __future__ import annotations

from decimal import Decimal

from drivers.dart.identify import nozzle_behind, price_behind, prices_behind
from drivers.dart.messages import Decimals

TWO = Decimals()


def test_price_behind_volume_sales_and_amount_presets() -> None:
    assert price_behind(Decimal("29.24"), Decimal("244.45"), TWO) == Decimal("8.36")
    assert price_behind(Decimal("6.37"), Decimal("50.00"), TWO) == Decimal("7.85")  # preset


def test_price_behind_refuses_to_guess() -> None:
    assert price_behind(Decimal("0.01"), Decimal("0.08"), TWO) is None  # several prices fit
    assert price_behind(Decimal("10.00"), Decimal("78.55"), TWO) is None  # none fits
    # alejomonroy/Full-Colombia-Wayne: 0.428 L for 3477 pesos fits 8123 and 8124 alike
    assert price_behind(Decimal("0.428"), Decimal(3477), Decimals(3, 0, 0)) is None
    assert price_behind(Decimal(0), Decimal(0), TWO) is None


def _behind(
    known: dict[int, Decimal], nozzles: tuple[int, ...]
) -> tuple[int, Decimal | None] | None:
    return nozzle_behind(
        volume=Decimal("10.00"),
        amount=Decimal("78.50"),
        decimals=TWO,
        known_prices=known,
        nozzles=nozzles,
    )


def test_nozzle_behind() -> None:
    lifted_95 = {2: Decimal("8.36")}
    assert _behind(lifted_95, (1, 2)) == (1, Decimal("7.85"))  # the only other nozzle
    assert _behind({1: Decimal("7.85")}, (1, 2)) == (1, Decimal("7.85"))  # the lifted one
    assert _behind(lifted_95, (1, 2, 3)) is None  # nozzle 1 or 3?
    assert _behind({1: Decimal("7.85"), 3: Decimal("7.85")}, (1, 2, 3)) is None


def test_a_small_filling_that_fits_two_prices_still_names_its_nozzle() -> None:
    """Found by the soak: 3.97 L for 31.16 yuan fits 7.85 (volume x price) and 7.84
    (amount / price). Found after a restart with nozzle 2 lifted, the sale was recorded
    with no nozzle and no grade, so it earned no points. Nozzle 1 is the only nozzle whose
    price is unknown, so it is the one; its price is left unknown, not guessed."""
    volume, amount = Decimal("3.97"), Decimal("31.16")
    assert price_behind(volume, amount, TWO) is None
    assert prices_behind(volume, amount, TWO) == [Decimal("7.84"), Decimal("7.85")]
    lifted_95 = {2: Decimal("8.36")}
    found = nozzle_behind(
        volume=volume, amount=amount, decimals=TWO, known_prices=lifted_95, nozzles=(1, 2)
    )
    assert found == (1, None)
    known = {1: Decimal("7.85"), 2: Decimal("8.36")}
    found = nozzle_behind(
        volume=volume, amount=amount, decimals=TWO, known_prices=known, nozzles=(1, 2)
    )
    assert found == (1, Decimal("7.85"))
    # Two nozzles whose prices are unknown: still undecided.
    assert (
        nozzle_behind(volume=volume, amount=amount, decimals=TWO, known_prices={}, nozzles=(1, 2))
        is None
    )
