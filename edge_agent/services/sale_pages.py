"""The sales list a page at a time, newest first, for a till reading a whole shift.

A page starts after a cursor: `before` (a sale id: the sales after it in the list) or
`before_time` (the sales that ended before that moment), never both. A full page names
its last sale as `next`; asking again with `before=next` continues exactly where it
stopped. The order is the sale's end time, then the order sales were stored, and a page
is a keyset query, so sales recorded during the walk (they end now, so they sort before
the cursor) neither shift a page nor appear twice: a walk from a first page down to
`next = None` sees every sale stored before it began, once. A sale stored later with an
older end time (a manual entry keyed after the fact) sorts where it ended; a walk that has
passed that point does not go back for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..errors import ServiceError
from ..store.sales import sale_position, sales_before
from .sales import SaleView
from .sales import _view as view_of_row  # the one SaleRow -> SaleView mapping
from .station import Station

__all__ = ["MAX_PAGE", "SalePage", "page_sales"]

MAX_PAGE = 500


@dataclass(frozen=True)
class SalePage:
    sales: list[SaleView]
    next: str | None  # the cursor of the following page (`before=`), None at the end


def page_sales(
    station: Station,
    limit: int = 20,
    *,
    before: str | None = None,
    before_time: datetime | None = None,
) -> SalePage:
    """One page of sales; raises ServiceError for a bad limit, two cursors or an unknown one."""
    if not 1 <= limit <= MAX_PAGE:
        raise ServiceError("limit", f"limit must be between 1 and {MAX_PAGE}")
    if before is not None and before_time is not None:
        raise ServiceError("sales.cursor", "give before or before_time, not both")
    if before_time is not None and before_time.tzinfo is None:
        before_time = before_time.replace(tzinfo=station.zone)  # station-local wall time
    with station.store.read() as tx:
        position: tuple[int, int] | None = None
        if before is not None:
            position = sale_position(tx, before)
            if position is None:
                raise ServiceError("sale.not_found", f"no sale {before}")
        elif before_time is not None:
            position = (int(before_time.timestamp() * 1000), 0)
        rows = sales_before(tx, position, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return SalePage(
        sales=[view_of_row(row) for row in rows],
        next=rows[-1].sale_id if more else None,
    )
