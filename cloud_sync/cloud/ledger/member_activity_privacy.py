"""PIPL for what a member did in the app: check-ins, invoice requests and feedback in the
member's export, and what their erasure removes.

Erasure keeps the ledger and the facts HQ counts (check-in days and points, a request's sale,
amount and status, a rating) and drops what identifies or was written by the person: the
buyer's name and email of every invoice request (a company's tax id is the company's and
stays), and feedback comments. A request still waiting is rejected at once, so no invoice is
issued to an address that is gone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from cloud_sync.core.privacy import MemberKeys

from .aggregates import chain_zone
from .member_admin import ERASED_MARK
from .member_invoices import invoice_answer
from .schema_app import checkins, feedback, invoice_requests

__all__ = ["ERASED_REASON", "activity_export", "erase_activity"]

ERASED_REASON = "会员已注销 the member's account was deleted"


def activity_export(conn: Connection, keys: MemberKeys, family: list[str]) -> dict[str, Any]:
    """The member's check-ins, invoice requests (buyer data unsealed) and feedback."""
    days = conn.execute(
        select(checkins).where(checkins.c.member_id.in_(family)).order_by(checkins.c.day)
    )
    requests = conn.execute(
        select(invoice_requests)
        .where(invoice_requests.c.member_id.in_(family))
        .order_by(invoice_requests.c.requested_ms)
    )
    said = conn.execute(
        select(feedback).where(feedback.c.member_id.in_(family)).order_by(feedback.c.at_ms)
    )
    return {
        "checkins": [{str(k): v for k, v in r._mapping.items()} for r in days],
        "invoice_requests": [invoice_answer(keys, r) for r in requests],
        "feedback": [
            {k: r._mapping[k] for k in ("station_id", "sale_id", "rating", "comment", "at")}
            for r in said
        ],
    }


def erase_activity(conn: Connection, family: list[str], now: datetime) -> dict[str, int]:
    """Drop the buyer's name and email, end waiting requests, blank the comments.

    The sealed columns get the erasure marker in clear (no key is needed, and a sealed value
    always starts with its key id, so the two never mix up)."""
    at = now.astimezone(chain_zone(conn)).isoformat(timespec="seconds")
    mine = invoice_requests.c.member_id.in_(family)
    waiting = conn.execute(
        update(invoice_requests)
        .where(mine, invoice_requests.c.status == "requested")
        .values(status="rejected", reason=ERASED_REASON, decided_at=at, decided_by="system")
        .returning(invoice_requests.c.request_id)
    ).all()
    scrubbed = conn.execute(
        update(invoice_requests)
        .where(mine)
        .values(buyer_name_sealed=ERASED_MARK, email_sealed=ERASED_MARK)
        .returning(invoice_requests.c.request_id)
    ).all()
    blanked = conn.execute(
        update(feedback)
        .where(feedback.c.member_id.in_(family), feedback.c.comment != "")
        .values(comment="")
        .returning(feedback.c.feedback_id)
    ).all()
    return {
        "invoice_requests_scrubbed": len(scrubbed),
        "invoice_requests_ended": len(waiting),
        "feedback_comments_removed": len(blanked),
    }
