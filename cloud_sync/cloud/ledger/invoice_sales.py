"""An invoice request follows its sale: it stands only while the sale is recorded and still
the requester's (merged ids count as the requester).

When a push takes a member off a sale (`sale.detached`) or reverses it, the sale's waiting
requests are rejected in that push's transaction (`decided_by` `ledger`), so the buyer data
of the member who asked is never another member's business and HQ never issues an invoice
for fuel that was someone else's or given back. An invoice already issued stays (it exists
at the tax platform); it is shown to HQ as a flag of the event, for a red-letter (红冲)
correction. HQ's issue and filing ask `sale_still_theirs` in the transaction that acts.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Connection, select, update

from .aggregates import chain_zone
from .audit import record_audit
from .schema import sales
from .schema_app import invoice_requests
from .trust import Flag
from .views import _survivor

__all__ = [
    "LEDGER_ACTOR",
    "MEMBER_CHANGED",
    "SALE_REVERSED",
    "end_requests_of_changed_sales",
    "sale_still_theirs",
]

LEDGER_ACTOR = "ledger"
MEMBER_CHANGED = "the sale's member changed"
SALE_REVERSED = "the sale was reversed"


def sale_still_theirs(conn: Connection, sale_id: str, member_id: str) -> bool:
    """The sale is recorded and its member is `member_id` or one merged with it."""
    sale = conn.execute(
        select(sales.c.status, sales.c.member_id).where(sales.c.sale_id == sale_id)
    ).first()
    if sale is None or sale.status != "recorded" or sale.member_id is None:
        return False
    on_sale, asker = _survivor(conn, sale.member_id), _survivor(conn, member_id)
    return on_sale is not None and asker is not None and on_sale.member_id == asker.member_id


def end_requests_of_changed_sales(
    conn: Connection, changed: Mapping[str, tuple[str, str]], now: datetime
) -> list[tuple[str, Flag]]:
    """Reject the waiting requests of sales a push changed (sale id → (event id, why)),
    audited as the ledger; the flags for HQ of the requests already issued."""
    if not changed:
        return []
    at = now.astimezone(chain_zone(conn)).isoformat(timespec="seconds")
    rows = conn.execute(
        select(invoice_requests)
        .where(
            invoice_requests.c.sale_id.in_(sorted(changed)),
            invoice_requests.c.status.in_(("requested", "issued")),
        )
        .order_by(invoice_requests.c.request_id)
    ).all()
    flags: list[tuple[str, Flag]] = []
    for row in rows:
        event_id, why = changed[row.sale_id]
        if row.status == "issued":
            detail = (
                f"sale {row.sale_id}: {why} after invoice {row.invoice_no} was issued for it "
                "(a red-letter correction may be due)"
            )
            flag = Flag(
                "invoice.issued_sale_changed", detail, member_id=row.member_id, suspends=False
            )
            flags.append((event_id, flag))
            continue
        done = conn.execute(
            update(invoice_requests)
            .where(
                invoice_requests.c.request_id == row.request_id,
                invoice_requests.c.status == "requested",
            )
            .values(status="rejected", reason=why, decided_at=at, decided_by=LEDGER_ACTOR)
        )
        if done.rowcount:
            record_audit(
                conn,
                actor=LEDGER_ACTOR,
                action="invoice.reject",
                target=row.request_id,
                at=now,
                before={"status": "requested", "sale_id": row.sale_id},
                after={"status": "rejected", "reason": why},
            )
    return flags
