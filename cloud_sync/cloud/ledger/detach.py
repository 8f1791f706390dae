"""`sale.detached`: a station undid an attach at its till (docs/sync.md, "Undoing an attach").

The member's points of the sale are taken back as a reversal takes them (its own lots
first, what was spent elsewhere written off, what repaid an overdraft owed again), the
sale's lots stop naming the sale, and the sale is left without a member, so the station's
next `sale.member_attached` of it applies as a first attach would.

Events of one station apply in `seq` order, so an undo never arrives before its attach; if
the attach itself was rejected, the undo finds no member on the sale and is rejected too
(`sale.not_attached`), which leaves the cloud where the station ends up once it attaches
the right member. A waiting invoice request of the sale is rejected in the same push
(invoice_sales.py): it was the undone member's. Trust: only the station that recorded the
sale may undo (`own_sale`), only the member on the sale, and only within
`TrustPolicy.detach_window_s` of the attach.
"""

from __future__ import annotations

from datetime import timedelta

from cloud_sync.core.events import SaleDetached

from .context import Context
from .invoice_sales import MEMBER_CHANGED
from .payload import Rejected, parse_moment
from .postings import millis, reverse_earn
from .trust import Flag

__all__ = ["sale_detached"]


def sale_detached(ctx: Context, e: SaleDetached) -> None:
    sale_id = e.sale_id
    sale = ctx.book.sale(sale_id)
    if sale is None:
        raise Rejected("sale.unknown", f"no sale {sale_id}")
    ctx.own_sale(sale.station_id, sale_id)
    if sale.status != "recorded":
        raise Rejected("sale.reversed", f"sale {sale_id} was reversed")
    if sale.member_id is None:
        raise Rejected("sale.not_attached", f"sale {sale_id} has no member to take off")
    member = ctx.member(e.member_id)
    on_sale = ctx.book.active(sale.member_id)
    if on_sale is None or on_sale.member_id != member.member_id:
        raise Rejected(
            "sale.other_member", f"sale {sale_id} is not on member {e.member_id}'s account"
        )
    own = ctx.book.lots_of_sale(sale_id)
    # When the points were earned: the attach's time (or the sale's end for a sale
    # recorded with its member); a sale that earned nothing is dated by its end.
    earned_ms = min((lot.earned_ms for lot in own), default=millis(parse_moment(sale.ended_at)))
    late_ms = millis(e.at) - earned_ms - ctx.trust.detach_window_s * 1000
    if late_ms > 0:
        window = timedelta(seconds=ctx.trust.detach_window_s)
        detail = f"sale {sale_id}: an attach is undone within {window} of it, not later"
        # Shown to HQ; never a suspension on its own (a station's window set wider than ours).
        who = member.member_id
        ctx.flag(Flag("detach.late", detail, points=sale.points, member_id=who, suspends=False))
        raise Rejected("detach.late", detail)
    reverse_earn(
        ctx.book,
        member,
        own,
        claimed=sum(lot.points for lot in own),  # what was booked (a held excess never was)
        recomputed=sale.recomputed,
        booking=ctx.booking(e.at),
        kind="detach",
    )
    for lot in own:
        lot.sale_id = None  # a later attach's lots are the sale's own
        lot.dirty = True
    sale.member_id = None
    sale.points = 0
    sale.tier = None
    sale.ruleset_version = None
    sale.recomputed = None
    sale.dirty = True
    ctx.sale_changed(sale_id, MEMBER_CHANGED)  # its waiting invoice request ends with it
