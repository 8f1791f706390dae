"""数电发票 requests from the member app: one per sale, queued for the tax platform.

The member names a sale of their own (merged ids' sales included), a buyer (a company with
its unified social credit code, or a person without one) and an email. The request keeps
the sale's amount in fen and its grade and litres as the invoice's line; the buyer's name,
code and email are sealed under the chain's keys like a member's phone.

One live request per sale (a partial unique index: rejected ones do not count): the same
body again answers the stored request (a retry after a lost answer), another body is
refused, and concurrent requests store one. A live request of anyone else (the sale changed
hands and that request was issued already) is refused without a word of it.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from sqlalchemy import Connection, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from cloud_sync.core.privacy import MemberKeys, decrypt_field, encrypt_field
from cloud_sync.core.tax_id import TaxIdError, normalize_uscc

from .aggregates import chain_zone
from .database import Database
from .errors import LedgerError
from .member_admin import ERASED_MARK, family_of
from .member_checkin import MemberGone
from .member_signed_in import signed_in_member
from .postings import millis
from .rulesets import RuleBook
from .schema import sales
from .schema_app import invoice_requests

__all__ = [
    "EMAIL_FIELD",
    "MAX_BUYER_NAME",
    "MAX_EMAIL",
    "NAME_FIELD",
    "TAX_ID_FIELD",
    "InvoiceAsk",
    "InvoiceExists",
    "invoice_answer",
    "member_invoices",
    "request_invoice",
    "validate_ask",
]

MAX_BUYER_NAME = 100
MAX_EMAIL = 254
MAX_SALE_ID = 64
_PAGE_MAX = 100
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"[^@\s]{{1,64}}@{_LABEL}(?:\.{_LABEL})+")
# Fields sealed under the chain's keys (the name binds each ciphertext to its column).
NAME_FIELD, TAX_ID_FIELD, EMAIL_FIELD = "invoice.buyer_name", "invoice.tax_id", "invoice.email"


@dataclass(frozen=True)
class InvoiceAsk:
    """A request as validated: what a retry must repeat to be the same request."""

    sale_id: str
    buyer_name: str
    tax_id: str | None  # None: a person
    email: str

    @property
    def buyer_kind(self) -> str:
        return "personal" if self.tax_id is None else "company"


class InvoiceExists(LedgerError):
    """The sale has a request with another buyer or email; `stored` is that request."""

    def __init__(self, stored: dict[str, Any]) -> None:
        super().__init__("member_app.invoice_exists", "this sale has an invoice request already")
        self.stored = stored


def validate_ask(sale_id: str, buyer_name: str, tax_id: str | None, email: str) -> InvoiceAsk:
    """Tidy and check what the member typed; LedgerError names the field at fault."""
    if not 1 <= len(sale_id) <= MAX_SALE_ID:
        raise LedgerError("not_found", "no such sale")
    name = " ".join(buyer_name.split())
    if not 1 <= len(name) <= MAX_BUYER_NAME or any(
        unicodedata.category(char).startswith("C") for char in name
    ):
        raise LedgerError(
            "member_app.buyer_name", f"the buyer's name is 1 to {MAX_BUYER_NAME} characters"
        )
    code = None
    if tax_id is not None and tax_id.strip():
        try:
            code = normalize_uscc(tax_id)
        except TaxIdError as exc:
            raise LedgerError("member_app.tax_id", str(exc)) from exc
    address = email.strip().lower()
    if len(address) > MAX_EMAIL or not _EMAIL.fullmatch(address):
        raise LedgerError("member_app.email", "enter an email address such as name@example.com")
    return InvoiceAsk(sale_id=sale_id, buyer_name=name, tax_id=code, email=address)


def _fen(amount: str) -> int:
    try:
        fen = Decimal(amount) * 100
    except InvalidOperation as exc:  # pragma: no cover - stored sales are validated
        raise LedgerError("not_found", "the sale's amount is unreadable") from exc
    return int(fen.to_integral_value())


def _lines(conn: Connection, rules: RuleBook, sale: Any) -> list[dict[str, Any]]:
    """The invoice's lines: the sale's grade (with its name in the rules it was priced
    under), litres and amount. A fuel sale is one grade, so one line."""
    ruleset = None if sale.ruleset_version is None else rules.get(conn, int(sale.ruleset_version))
    grade = None if ruleset is None else ruleset.grades.get(sale.grade)
    return [
        {
            "grade": sale.grade,
            "grade_name": sale.grade if grade is None else grade.name,
            "litres": sale.litres,
            "amount_fen": _fen(sale.amount),
        }
    ]


def _unseal(keys: MemberKeys, field: str, sealed: str) -> str:
    """The clear value; the erasure marker as it is (PIPL erasure writes it in clear)."""
    return sealed if sealed == ERASED_MARK else decrypt_field(keys, field, sealed)


def invoice_answer(keys: MemberKeys, row: Any) -> dict[str, Any]:
    """A stored request as the member sees it (their own buyer data unsealed)."""
    return {
        "request_id": row.request_id,
        "sale_id": row.sale_id,
        "station_id": row.station_id,
        "buyer_kind": row.buyer_kind,
        "buyer_name": _unseal(keys, NAME_FIELD, row.buyer_name_sealed),
        "tax_id": None
        if row.tax_id_sealed is None
        else decrypt_field(keys, TAX_ID_FIELD, row.tax_id_sealed),
        "email": _unseal(keys, EMAIL_FIELD, row.email_sealed),
        "amount_fen": int(row.amount_fen),
        "lines": orjson.loads(row.lines),
        "status": row.status,
        "requested_at": row.requested_at,
        "filed_at": row.filed_at,
        "decided_at": row.decided_at,
        "invoice_no": row.invoice_no,
        "reason": row.reason,
    }


def _stored(conn: Connection, sale_id: str) -> Any:
    """The sale's live (not rejected) request, if any: at most one (the partial index)."""
    return conn.execute(
        select(invoice_requests).where(
            invoice_requests.c.sale_id == sale_id, invoice_requests.c.status != "rejected"
        )
    ).first()


def _same(keys: MemberKeys, row: Any, ask: InvoiceAsk) -> bool:
    answer = invoice_answer(keys, row)
    return (answer["buyer_name"], answer["tax_id"], answer["email"]) == (
        ask.buyer_name,
        ask.tax_id,
        ask.email,
    )


def _replay(keys: MemberKeys, row: Any, ask: InvoiceAsk, family: list[str]) -> dict[str, Any]:
    """The stored request of the member's own; another member's is never shown."""
    if row.member_id not in family:
        raise LedgerError("member_app.invoice_exists", "this sale has an invoice request already")
    answer = invoice_answer(keys, row)
    if not _same(keys, row, ask):
        raise InvoiceExists(answer)
    return answer


def request_invoice(
    db: Database,
    conn: Connection,
    keys: MemberKeys,
    rules: RuleBook,
    *,
    member_id: str,
    ask: InvoiceAsk,
    now: datetime,
) -> tuple[dict[str, Any], bool]:
    """(the request, True) when stored now; (the stored one, False) on a repeat."""
    member = signed_in_member(conn, member_id)
    if member is None:
        raise MemberGone(member_id)
    of_sale = select(sales).where(sales.c.sale_id == ask.sale_id)
    if db.dialect == "postgresql":  # a push taking the member off the sale waits, or we do
        of_sale = of_sale.with_for_update()
    sale = conn.execute(of_sale).first()
    family = family_of(conn, member.member_id)
    if sale is None or sale.member_id not in family:
        raise LedgerError("not_found", "no such sale")  # another member's sale is no sale
    stored = _stored(conn, ask.sale_id)
    if stored is not None:
        return _replay(keys, stored, ask, family), False
    if sale.status != "recorded":
        raise LedgerError("member_app.sale_reversed", "the sale was reversed: nothing to invoice")
    lines = _lines(conn, rules, sale)
    values = {
        "request_id": uuid.uuid4().hex,
        "sale_id": ask.sale_id,
        "member_id": member.member_id,
        "station_id": sale.station_id,
        "buyer_kind": ask.buyer_kind,
        "buyer_name_sealed": encrypt_field(keys, NAME_FIELD, ask.buyer_name),
        "tax_id_sealed": None
        if ask.tax_id is None
        else encrypt_field(keys, TAX_ID_FIELD, ask.tax_id),
        "email_sealed": encrypt_field(keys, EMAIL_FIELD, ask.email),
        "amount_fen": sum(line["amount_fen"] for line in lines),
        "lines": orjson.dumps(lines).decode(),
        "status": "requested",
        "requested_at": now.astimezone(chain_zone(conn)).isoformat(timespec="seconds"),
        "requested_ms": millis(now),
    }
    insert = pg_insert if db.dialect == "postgresql" else sqlite_insert
    stmt = insert(invoice_requests).values(values).on_conflict_do_nothing()
    inserted = conn.execute(stmt.returning(invoice_requests.c.request_id)).first()
    row = _stored(conn, ask.sale_id)  # ours, or the one a concurrent request stored first
    if inserted is None:
        return _replay(keys, row, ask, family), False
    return invoice_answer(keys, row), True


def member_invoices(
    conn: Connection, keys: MemberKeys, member_id: str, *, before: str | None, limit: int
) -> dict[str, Any]:
    """The member's requests, newest first; `next` is the cursor of the following page."""
    member = signed_in_member(conn, member_id)
    if member is None:
        raise MemberGone(member_id)
    limit = max(1, min(limit, _PAGE_MAX))
    family = family_of(conn, member.member_id)
    stmt = select(invoice_requests).where(invoice_requests.c.member_id.in_(family))
    if before:
        ms, _, request_id = before.partition("|")
        if not ms.isdigit() or len(ms) > 15:
            raise LedgerError("member_app.cursor", "the cursor is the `next` of the last page")
        stmt = stmt.where(
            or_(
                invoice_requests.c.requested_ms < int(ms),
                (invoice_requests.c.requested_ms == int(ms))
                & (invoice_requests.c.request_id < request_id),
            )
        )
    rows = conn.execute(
        stmt.order_by(
            invoice_requests.c.requested_ms.desc(), invoice_requests.c.request_id.desc()
        ).limit(limit + 1)
    ).all()
    page = rows[:limit]
    cursor = f"{page[-1].requested_ms}|{page[-1].request_id}" if len(rows) > limit else None
    return {"invoices": [invoice_answer(keys, r) for r in page], "next": cursor}
