"""HQ's side of the 数电发票 queue: the list, handing requests to the tax platform, and the
decision (issued with the invoice number, or rejected with a reason), each audited.

A request is `requested` until HQ decides; `filed_at` says it was handed to the platform's
adapter. Filing writes outside the database first and marks the request afterwards, so a
crash in between files it again next time (the `file` adapter rewrites the same file).
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import partial
from typing import Any, Literal

from sqlalchemy import Connection, func, or_, select, update

from cloud_sync.core.privacy import MemberKeys

from .aggregates import chain_zone
from .audit import record_audit
from .database import Database
from .errors import LedgerError
from .member_invoices import invoice_answer
from .schema import stations
from .schema_app import invoice_requests
from .tax_platform import TaxPlatform

__all__ = [
    "INVOICE_STATUSES",
    "MAX_FILE_BATCH",
    "decide_invoice",
    "file_invoices",
    "invoice_counts",
    "invoice_queue",
    "mask_email",
]

INVOICE_STATUSES = ("requested", "issued", "rejected")
MAX_FILE_BATCH = 500
MAX_REASON = 200
_PAGE_MAX = 200
_INVOICE_NO = re.compile(r"[0-9A-Za-z-]{8,40}")
_REQUEST_ID = re.compile(r"[0-9a-f]{32}")


def mask_email(email: str) -> str:
    """`n***@example.com`: HQ sees where the invoice goes, not the whole address."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def _hq_row(keys: MemberKeys, row: Any, station_name: str | None) -> dict[str, Any]:
    answer = invoice_answer(keys, row)
    return {
        **answer,
        "member_id": row.member_id,
        "station_name": station_name,
        "email": mask_email(answer["email"]),
        "decided_by": row.decided_by,
    }


def invoice_counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(
        select(invoice_requests.c.status, func.count()).group_by(invoice_requests.c.status)
    ).all()
    counts = dict.fromkeys(INVOICE_STATUSES, 0) | {str(s): int(n) for s, n in rows}
    counts["unfiled"] = int(
        conn.execute(
            select(func.count()).where(
                invoice_requests.c.status == "requested", invoice_requests.c.filed_at.is_(None)
            )
        ).scalar_one()
    )
    return counts


def invoice_queue(
    conn: Connection,
    keys: MemberKeys,
    *,
    status: str | None = None,
    before: str | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """Requests, oldest waiting first for `requested`, newest first otherwise; paged."""
    if status is not None and status not in INVOICE_STATUSES:
        raise LedgerError("invoice.filter", "status is requested, issued or rejected")
    limit = max(1, min(limit, _PAGE_MAX))
    oldest_first = status == "requested"
    stmt = select(invoice_requests, stations.c.name).join_from(
        invoice_requests,
        stations,
        stations.c.station_id == invoice_requests.c.station_id,
        isouter=True,
    )
    if status is not None:
        stmt = stmt.where(invoice_requests.c.status == status)
    ms_col, id_col = invoice_requests.c.requested_ms, invoice_requests.c.request_id
    if before:
        ms, _, request_id = before.partition("|")
        if not ms.isdigit() or len(ms) > 15:
            raise LedgerError("invoice.filter", "the cursor is the `next` of the last page")
        if oldest_first:
            stmt = stmt.where(or_(ms_col > int(ms), (ms_col == int(ms)) & (id_col > request_id)))
        else:
            stmt = stmt.where(or_(ms_col < int(ms), (ms_col == int(ms)) & (id_col < request_id)))
    order = (ms_col, id_col) if oldest_first else (ms_col.desc(), id_col.desc())
    rows = conn.execute(stmt.order_by(*order).limit(limit + 1)).all()
    page = rows[:limit]
    cursor = f"{page[-1].requested_ms}|{page[-1].request_id}" if len(rows) > limit else None
    return {
        "invoices": [_hq_row(keys, r, r.name) for r in page],
        "next": cursor,
        "counts": invoice_counts(conn),
    }


def _one(conn: Connection, request_id: str) -> Any:
    row = None
    if _REQUEST_ID.fullmatch(request_id):
        row = conn.execute(
            select(invoice_requests).where(invoice_requests.c.request_id == request_id)
        ).first()
    if row is None:
        raise LedgerError("invoice.unknown", "no invoice request with that id")
    return row


def decide_invoice(
    conn: Connection,
    keys: MemberKeys,
    *,
    request_id: str,
    decision: Literal["issue", "reject"],
    invoice_no: str | None,
    reason: str | None,
    actor: str,
    now: datetime,
) -> dict[str, Any]:
    """Mark a waiting request issued (its invoice number) or rejected (a reason); audited."""
    row = _one(conn, request_id)
    at = now.astimezone(chain_zone(conn)).isoformat(timespec="seconds")  # as people read it
    values: dict[str, Any] = {"decided_at": at, "decided_by": actor}
    if decision == "issue":
        number = (invoice_no or "").strip()
        if not _INVOICE_NO.fullmatch(number):
            raise LedgerError("invoice.number", "the invoice number is 8 to 40 letters or digits")
        values |= {"status": "issued", "invoice_no": number}
    else:
        text = " ".join((reason or "").split())
        if not 1 <= len(text) <= MAX_REASON:
            raise LedgerError("invoice.reason", f"give a reason of 1 to {MAX_REASON} characters")
        values |= {"status": "rejected", "reason": text}
    done = conn.execute(
        update(invoice_requests)
        .where(
            invoice_requests.c.request_id == row.request_id,
            invoice_requests.c.status == "requested",
        )
        .values(values)
    )
    if not done.rowcount:  # decided already (perhaps a moment ago, by someone else)
        raise LedgerError("invoice.decided", f"the request is {_one(conn, request_id).status}")
    record_audit(
        conn,
        actor=actor,
        action=f"invoice.{decision}",
        target=row.request_id,
        at=now,
        before={"status": "requested", "sale_id": row.sale_id},
        after={k: v for k, v in values.items() if k in ("status", "invoice_no", "reason")},
    )
    return _hq_row(keys, _one(conn, request_id), None)


def _mark_filed(conn: Connection, request_id: str, now: datetime) -> None:
    conn.execute(
        update(invoice_requests)
        .where(invoice_requests.c.request_id == request_id, invoice_requests.c.filed_at.is_(None))
        .values(filed_at=now.astimezone(chain_zone(conn)).isoformat(timespec="seconds"))
    )


def file_invoices(
    db: Database,
    keys: MemberKeys,
    platform: TaxPlatform,
    now: datetime,
    *,
    actor: str,
    limit: int = MAX_FILE_BATCH,
) -> int:
    """Hand waiting, unfiled requests to the platform, oldest first; how many were filed.

    The platform sees the whole request (the buyer's email unmasked: the invoice is mailed
    to it); a request is marked filed only after the platform took it.
    """
    rows = db.read(
        lambda conn: conn.execute(
            select(invoice_requests)
            .where(invoice_requests.c.status == "requested", invoice_requests.c.filed_at.is_(None))
            .order_by(invoice_requests.c.requested_ms, invoice_requests.c.request_id)
            .limit(max(1, min(limit, MAX_FILE_BATCH)))
        ).all()
    )
    filed = 0
    for row in rows:
        platform.file({**invoice_answer(keys, row), "member_id": row.member_id})
        db.transact(partial(_mark_filed, request_id=str(row.request_id), now=now))
        filed += 1
    if filed:
        db.transact(
            lambda conn: record_audit(
                conn,
                actor=actor,
                action="invoice.file",
                target=None,
                at=now,
                after={"filed": filed, "platform": platform.name},
            )
        )
    return filed
