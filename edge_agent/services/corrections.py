"""What a manager's correction will do, before it is done: the reversal a sale row offers.

The page shows a sale by its short number; the manager confirms a reversal that names the
member and the points it takes back, then `reverse_sale` books it (with its reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ServiceError
from ..store.ledger import expired_from_lot, lot_of_sale
from ..store.members import get_member
from ..store.sales import get_sale
from .sales import SaleView, sale_view
from .station import Station

__all__ = ["ReversalPreview", "reversal_preview"]


@dataclass(frozen=True)
class ReversalPreview:
    sale: SaleView
    member_id: str | None
    phone_masked: str | None
    take_back: int  # points the reversal takes from the member (lapsed ones are gone already)
    reversible: bool  # False: already reversed

    def to_dict(self) -> dict[str, Any]:
        return {
            "sale": self.sale.to_dict(),
            "member": None
            if self.member_id is None
            else {"member_id": self.member_id, "phone_masked": self.phone_masked},
            "take_back": self.take_back,
            "reversible": self.reversible,
        }


def reversal_preview(station: Station, sale_id: str) -> ReversalPreview:
    """The sale, its member (masked) and the points a reversal would take back."""
    with station.store.read() as tx:
        row = get_sale(tx, sale_id)
        if row is None:
            raise ServiceError("sale.not_found", f"no sale {sale_id}")
        member = None if row.member_id is None else get_member(tx, row.member_id)
        own_lot = lot_of_sale(tx, sale_id)
        lapsed = 0 if own_lot is None else expired_from_lot(tx, own_lot)
    reversible = row.status == "recorded"
    return ReversalPreview(
        sale=sale_view(station, sale_id),
        member_id=row.member_id,
        phone_masked=None if member is None else member.phone_masked,
        take_back=max(0, row.points - lapsed) if reversible and row.member_id else 0,
        reversible=reversible,
    )
