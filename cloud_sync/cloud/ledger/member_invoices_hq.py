"""HQ's side of the 数电发票 queue: the list, handing requests to the tax platform, and the
decision (issued with the invoice number, or rejected with a reason), each audited.

A request is `requested` until HQ decides; `filed_at` says it was handed to the platform's
adapter. Each request is filed in a transaction of its own that reads it (row locked),
checks it is still waiting and its sale still recorded and the requester's, hands it to the
platform and marks it, so an erasure or a push that ended it meanwhile wins; a crash after
the handing files it again next time (the `file` adapter rewrites the same file). Issuing
checks the sale in the transaction that marks the request issued.
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
from .invoice_sales import sale_still_theirs
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
    local, at, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if at else email  # (an erased member's marker as it is)


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


def _one(conn: Connection, request_id: str, *, lock: bool = False) -> Any:
    row = None
    if _REQUEST_ID.fullmatch(request_id):
        stmt = select(invoice_requests).where(invoice_requests.c.request_id == request_id)
        row = conn.execute(stmt.with_for_update() if lock else stmt).first()
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
    row = _one(conn, request_id, lock=conn.dialect.name == "postgresql")
    at = now.astimezone(chain_zone(conn)).isoformat(timespec="seconds")  # as people read it
    values: dict[str, Any] = {"decided_at": at, "decided_by": actor}
    if decision == "issue":
        number = (invoice_no or "").strip()
        if not _INVOICE_NO.fullmatch(number):
            raise LedgerError("invoice.number", "the invoice number is 8 to 40 letters or digits")
        values |= {"status": "issued", "invoice_no": number}
        if row.status == "requested" and not sale_still_theirs(conn, row.sale_id, row.member_id):
            raise LedgerError(
                "invoice.sale_changed",
                "the sale was reversed or is no longer the requester's: reject the request",
            )
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


def _file_one(
    conn: Connection, keys: MemberKeys, platform: TaxPlatform, request_id: str, now: datetime
) -> bool:
    """File one request if it is still waiting, unfiled and its sale's; True when filed."""
    row = _one(conn, request_id, lock=conn.dialect.name == "postgresql")
    if (
        row.status != "requested"
        or row.filed_at is not None
        or not sale_still_theirs(conn, row.sale_id, row.member_id)
    ):
        return False
    platform.file({**invoice_answer(keys, row), "member_id": row.member_id})
    conn.execute(
        update(invoice_requests)
        .where(invoice_requests.c.request_id == request_id)
        .values(filed_at=now.astimezone(chain_zone(conn)).isoformat(timespec="seconds"))
    )
    return True


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
    to it). A request whose sale was reversed or changed hands is skipped: HQ rejects it
    (the push that changed the sale has usually done so already).
    """
    request_ids = db.read(
        lambda conn: list(
            conn.execute(
                select(invoice_requests.c.request_id)
                .where(
                    invoice_requests.c.status == "requested", invoice_requests.c.filed_at.is_(None)
                )
                .order_by(invoice_requests.c.requested_ms, invoice_requests.c.request_id)
                .limit(max(1, min(limit, MAX_FILE_BATCH)))
            ).scalars()
        )
    )
    filed = 0
    for request_id in request_ids:
        file_one = partial(_file_one, keys=keys, platform=platform, request_id=request_id, now=now)
        filed += db.transact(file_one)
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
