"""The member's own history in the app: sales at every station with each sale's points
receipt, and redemptions, newest first, a bounded page at a time.

Pages are keyset pages: the cursor is an opaque token of the last row's sort key, so a page
costs one index range (`ix_sales_member`, `ix_redemptions_member`) however deep the member
pages. A member merged into another sees the merged ids' history as its own. The receipt is
what the station sent with the points (the pricing steps): from the sale's own event, or
from the event that attached the member to the sale later, and only from an event that
names the member (or an id merged into it): a sale taken off another member and attached
to this one never shows the other member's receipt (none when no event of this member's
carries one).
Each sale says whether the member asked for its e-invoice (their live request, else
their latest refused one), so the app shows its status rather than offering to ask again.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Connection, and_, or_, select

from .errors import LedgerError
from .member_admin import family_of
from .member_progress import fen
from .schema import events, journals, lots, redemptions, sales, stations
from .schema_app import invoice_requests

__all__ = [
    "DEFAULT_PAGE",
    "MAX_PAGE",
    "decode_cursor",
    "encode_cursor",
    "redemptions_page",
    "sales_page",
]

DEFAULT_PAGE = 20
MAX_PAGE = 50
_CURSOR_MAX = 400  # characters of an encoded cursor; ours are far shorter
_KEY_MAX = 128  # characters of one part of a cursor's key


def encode_cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(parts))).decode("ascii").rstrip("=")


def decode_cursor(text: str, parts: int) -> tuple[str, ...]:
    """The key a cursor we gave out holds; `member_app.cursor` for anything else."""
    problem = LedgerError("member_app.cursor", "the cursor is not one this list gave out")
    if not text or len(text) > _CURSOR_MAX:
        raise problem
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise problem from None
    if (
        not isinstance(value, list)
        or len(value) != parts
        or not all(isinstance(v, str) and 0 < len(v) <= _KEY_MAX for v in value)
    ):
        raise problem
    return tuple(value)


def _station_names(conn: Connection, ids: set[str]) -> dict[str, str | None]:
    if not ids:
        return {}
    stmt = select(stations.c.station_id, stations.c.name).where(
        stations.c.station_id.in_(sorted(ids))
    )
    return {row.station_id: row.name for row in conn.execute(stmt)}


def _earn_lots(conn: Connection, sale_ids: Sequence[str]) -> dict[str, list[Any]]:
    """Each sale's earn lots (ix_lots_sale) with the event that booked them."""
    stmt = (
        select(lots.c.sale_id, lots.c.points, lots.c.expires_at, journals.c.event_id)
        .join(journals, journals.c.journal_id == lots.c.journal_id)
        .where(lots.c.sale_id.in_(list(sale_ids)), lots.c.source == "earn")
    )
    found: dict[str, list[Any]] = {}
    for row in conn.execute(stmt):
        found.setdefault(row.sale_id, []).append(row)
    return found


def _invoices(
    conn: Connection, sale_ids: Sequence[str], family: Sequence[str]
) -> dict[str, dict[str, str]]:
    """The member's own invoice request of each sale that has one: the live one (at most one
    per sale), else the latest refused one. Another member's request on the same sale (before
    an undo moved the sale) is never shown."""
    if not sale_ids:
        return {}
    r = invoice_requests.c
    stmt = (
        select(r.sale_id, r.request_id, r.status)
        .where(r.sale_id.in_(list(sale_ids)), r.member_id.in_(list(family)))
        .order_by(r.sale_id, r.requested_ms)
    )
    found: dict[str, dict[str, str]] = {}
    for row in conn.execute(stmt):
        kept = found.get(row.sale_id)
        if kept is None or kept["status"] == "rejected":
            found[row.sale_id] = {"request_id": row.request_id, "status": row.status}
    return found


def _receipts(
    conn: Connection, page: Sequence[Any], earned: dict[str, list[Any]], family: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The receipt the station sent for each sale, from the stored events (by their key)
    that name one of the member's ids."""
    wanted = {row.event_id for row in page}
    for rows in earned.values():
        wanted.update(r.event_id for r in rows if r.event_id)
    if not wanted:
        return {}
    stmt = select(events.c.kind, events.c.body).where(
        events.c.event_id.in_(sorted(wanted)),
        events.c.kind.in_(("sale.recorded", "sale.member_attached")),
    )
    found: dict[str, dict[str, Any]] = {}
    for row in conn.execute(stmt):
        payload = (orjson.loads(row.body) or {}).get("payload") or {}
        receipt = payload.get("receipt")
        sale_id = payload.get("sale_id")
        # A member attached later: the attach event's receipt is the one that counted.
        later = row.kind == "sale.member_attached"
        if (
            isinstance(receipt, dict)
            and isinstance(sale_id, str)
            and payload.get("member_id") in family
            and (later or sale_id not in found)
        ):
            found[sale_id] = receipt
    return found


def sales_page(
    conn: Connection, member_id: str, *, before: str | None, limit: int
) -> dict[str, Any]:
    """One page of the member's sales, newest first (by `ended_at`, then sale id)."""
    limit = max(1, min(limit, MAX_PAGE))
    family = family_of(conn, member_id)
    stmt = select(sales).where(sales.c.member_id.in_(family))
    if before is not None:
        at, sale_id = decode_cursor(before, 2)
        stmt = stmt.where(
            or_(sales.c.ended_at < at, and_(sales.c.ended_at == at, sales.c.sale_id < sale_id))
        )
    rows = conn.execute(
        stmt.order_by(sales.c.ended_at.desc(), sales.c.sale_id.desc()).limit(limit + 1)
    ).all()
    page = rows[:limit]
    earned = _earn_lots(conn, [row.sale_id for row in page])
    receipts = _receipts(conn, page, earned, family)
    invoices = _invoices(conn, [row.sale_id for row in page], family)
    names = _station_names(conn, {row.station_id for row in page})
    items = []
    for row in page:
        own = earned.get(row.sale_id, [])
        expiries = sorted({lot.expires_at for lot in own if lot.expires_at is not None})
        items.append(
            {
                "sale_id": row.sale_id,
                "station": {"id": row.station_id, "name": names.get(row.station_id)},
                "ended_at": row.ended_at,
                "grade": row.grade,
                "litres": row.litres,
                "amount_fen": fen(Decimal(row.amount)),
                "points": int(row.points),
                "points_booked": sum(int(lot.points) for lot in own),
                "expires_at": expiries[0] if expiries else None,
                "tier": row.tier,
                "status": row.status,
                "receipt": receipts.get(row.sale_id),
                "invoice": invoices.get(row.sale_id),
            }
        )
    last = page[-1] if page else None
    more = len(rows) > limit and last is not None
    return {
        "sales": items,
        "next": encode_cursor(last.ended_at, last.sale_id) if more and last else None,
        "stations": sorted({row.station_id for row in page}),
    }


def redemptions_page(
    conn: Connection, member_id: str, *, before: str | None, limit: int
) -> dict[str, Any]:
    """One page of the member's redemptions at every station, newest first."""
    limit = max(1, min(limit, MAX_PAGE))
    family = family_of(conn, member_id)
    r = redemptions.c
    stmt = select(r.station_id, r.redemption_id, r.points, r.value_fen, r.at).where(
        r.member_id.in_(family)
    )
    if before is not None:
        at, station_id, redemption_id = decode_cursor(before, 3)
        stmt = stmt.where(
            or_(
                r.at < at,
                and_(r.at == at, r.station_id < station_id),
                and_(r.at == at, r.station_id == station_id, r.redemption_id < redemption_id),
            )
        )
    rows = conn.execute(
        stmt.order_by(r.at.desc(), r.station_id.desc(), r.redemption_id.desc()).limit(limit + 1)
    ).all()
    page = rows[:limit]
    names = _station_names(conn, {row.station_id for row in page})
    items = [
        {
            "redemption_id": row.redemption_id,
            "station": {"id": row.station_id, "name": names.get(row.station_id)},
            "at": row.at,
            "points": int(row.points),
            "value_fen": int(row.value_fen),
        }
        for row in page
    ]
    last = page[-1] if page else None
    more = len(rows) > limit and last is not None
    return {
        "redemptions": items,
        "next": (
            encode_cursor(last.at, last.station_id, last.redemption_id) if more and last else None
        ),
        "stations": sorted({row.station_id for row in page}),
    }
