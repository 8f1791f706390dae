"""Turn a completed filling into the application's `FuelSale`, with a key that survives restarts.

A DART pump has no transaction number and no clock. What it does keep is a volume total per
nozzle (DC101) that only ever grows, so the total right after a sale names that sale:
`dart:{link}:{address:02X}:{nozzle}:{volume_total}`. Seen again after an agent restart (the
pump still shows the completed filling), the same sale gets the same key.

When no totals can be had (a listener on a bus whose controller never asks for them, a pump
that does not answer CD101), the key falls back to a fingerprint of what was seen,
`dart:{link}:{address:02X}:{nozzle}:fp:{volume}:{amount}:{observed_at}`, flagged
`details["key_basis"] = "fingerprint"`. Because it contains the time of observation, such a
sale seen again after a restart gets a different key and can be counted twice.

A filling found completed after the fact, with the next customer's nozzle already lifted and
no nozzle matching its price, is still a sale: it is recorded with its exact figures, the
nozzle unknown, under `dart:{link}:{address:02X}:unknown:{volume}:{amount}`. That key is
stable while the pump shows that filling, so a restart does not double it. The same
filling may have been recorded under its totals key before the restart, though, so such a
sale carries `identity="last_on_point"` (`details["key_basis"] = "display"`): the
application matches it against the last sale it recorded for the fuelling point.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from ..events import FuelSale, SaleIdentity
from .pump import CompletedFilling

__all__ = ["build_sale", "fingerprint_key", "totals_key"]


def totals_key(link: str, address: int, nozzle: int, volume_total: Decimal) -> str:
    return f"dart:{link}:{address:02X}:{nozzle}:{volume_total}"


def fingerprint_key(
    link: str, address: int, nozzle: int, volume: Decimal, amount: Decimal, observed_at: datetime
) -> str:
    return f"dart:{link}:{address:02X}:{nozzle}:fp:{volume}:{amount}:{observed_at.isoformat()}"


def build_sale(
    *,
    link: str,
    address: int,
    fuelling_point: int,
    grades: Mapping[int, str],
    filling: CompletedFilling,
    mode: str,
) -> FuelSale:
    """The FuelSale for `filling`; `grades` maps nozzle numbers to the rule set's grade codes."""
    details = {
        "address": f"0x{address:02X}",
        "mode": mode,
        "dart_status": str(int(filling.final_state)),
        "seen": "live" if filling.seen_live else "already-completed",
    }
    identity: SaleIdentity = "key"
    if filling.nozzle_unknown:
        key = f"dart:{link}:{address:02X}:unknown:{filling.volume}:{filling.amount}"
        details |= {"key_basis": "display", "nozzle_basis": "unknown"}
        identity = "last_on_point"  # the display names the pump's last filling, not which
    elif filling.volume_total is not None:
        key = totals_key(link, address, filling.nozzle, filling.volume_total)
        details |= {"key_basis": "totals", "volume_total": str(filling.volume_total)}
    else:
        key = fingerprint_key(
            link, address, filling.nozzle, filling.volume, filling.amount, filling.completed_at
        )
        details["key_basis"] = "fingerprint"
    if filling.nozzle_inferred:
        details["nozzle_basis"] = "price"  # the display's price named the nozzle
    grade = None if filling.nozzle_unknown else grades.get(filling.nozzle)
    if grade is None and not filling.nozzle_unknown:
        details["grade"] = f"nozzle {filling.nozzle} has no grade in the site map"
    return FuelSale(
        sale_key=key,
        source="dart",
        fuelling_point=fuelling_point,
        nozzle=None if filling.nozzle_unknown else filling.nozzle,
        grade=grade,
        volume=filling.volume,
        amount=filling.amount,
        unit_price=filling.unit_price,
        ended_at=filling.completed_at,
        details=details,
        identity=identity,
    )
