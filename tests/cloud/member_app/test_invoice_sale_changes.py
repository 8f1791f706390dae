"""An invoice request follows its sale through the ledger: an attach undone at the till
(`sale.detached`) or a reversal ends the waiting request, the right member then asks for
their own, another member's request is never shown, and HQ neither issues nor files a
request whose sale is no longer the requester's. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from cloud_sync.cloud.ledger.errors import LedgerError
from cloud_sync.cloud.ledger.member_invoices_hq import decide_invoice, file_invoices
from cloud_sync.cloud.ledger.schema import hq_audit, sales, station_flags
from cloud_sync.cloud.ledger.schema_app import invoice_requests
from cloud_sync.cloud.ledger.tax_platform import FileTaxPlatform
from tests.cloud.hq.seed_chain import NOW

from .conftest import MemberApp
from .reads_support import Third, third_station
from .test_invoices import URL, ask, post

pytestmark = pytest.mark.usefixtures("cloud_db_url")

A_BUYER = {"buyer_name": "甲公司的张三", "tax_id": None, "email": "zhang@a-example.com"}
B_BUYER = {"buyer_name": "乙", "tax_id": None, "email": "yi@b-example.com"}


def _attached_to_a(mapp: MemberApp) -> tuple[Third, str, str, str]:
    """S003 sells 40 L, the cashier attaches A, A asks for an invoice: (S003, A, B, sale)."""
    s3 = third_station(mapp)
    a = s3.register("13900139021", NOW - timedelta(days=100))
    b = s3.register("13900139022", NOW - timedelta(days=100))
    sale = s3.station.sale(None, "40.00", NOW - timedelta(hours=3))
    s3.station.attach(sale, a, "40.00", NOW - timedelta(hours=3) + timedelta(minutes=1))
    s3.push(NOW - timedelta(hours=2))
    answer = post(mapp, a, ask(sale, **A_BUYER))
    assert answer.status_code == 201, answer.text
    return s3, a, b, sale


def _undo_and_attach_b(s3: Third, a: str, b: str, sale: str) -> None:
    s3.station.detach(sale, a, 40, NOW - timedelta(hours=1))
    s3.station.attach(sale, b, "40.00", NOW - timedelta(hours=1) + timedelta(minutes=1))
    s3.push(NOW - timedelta(minutes=30))


def _rows(mapp: MemberApp, sale: str) -> list[Any]:
    return mapp.ledger.db.read(
        lambda conn: list(
            conn.execute(
                select(invoice_requests)
                .where(invoice_requests.c.sale_id == sale)
                .order_by(invoice_requests.c.requested_ms, invoice_requests.c.request_id)
            )
        )
    )


def _no_trace_of_a(text: str) -> None:
    for clear in ("甲公司", "zhang@", "a-example"):
        assert clear not in text


def test_an_undone_attach_ends_the_wrong_members_request_and_the_right_one_asks(
    mapp: MemberApp,
) -> None:
    s3, a, b, sale = _attached_to_a(mapp)
    _undo_and_attach_b(s3, a, b, sale)
    (ended,) = _rows(mapp, sale)
    assert (ended.status, ended.reason, ended.decided_by) == (
        "rejected",
        "the sale's member changed",
        "ledger",
    )
    mine = mapp.client.get(URL, headers=mapp.auth(a)).json()["invoices"]
    assert [(i["status"], i["reason"]) for i in mine] == [("rejected", "the sale's member changed")]

    answer = post(mapp, b, ask(sale, **B_BUYER))
    assert answer.status_code == 201, answer.text
    _no_trace_of_a(answer.text)
    assert (answer.json()["buyer_name"], answer.json()["status"]) == ("乙", "requested")
    assert post(mapp, b, ask(sale, **B_BUYER)).status_code == 200  # B's retry: B's request
    assert post(mapp, a, ask(sale, **A_BUYER)).json()["error"] == "not_found"  # not A's sale
    assert sorted(r.status for r in _rows(mapp, sale)) == ["rejected", "requested"]
    audit = mapp.ledger.db.read(
        lambda conn: conn.execute(
            select(hq_audit.c.actor).where(
                hq_audit.c.action == "invoice.reject", hq_audit.c.target == ended.request_id
            )
        ).all()
    )
    assert [row.actor for row in audit] == ["ledger"]


def test_an_issued_request_of_another_member_is_refused_without_a_word_of_it(
    mapp: MemberApp,
) -> None:
    s3, a, b, sale = _attached_to_a(mapp)
    (request,) = _rows(mapp, sale)
    mapp.ledger.db.transact(
        lambda conn: decide_invoice(
            conn,
            mapp.ledger.chain_keys,
            request_id=request.request_id,
            decision="issue",
            invoice_no="26310000000012345678",
            reason=None,
            actor="admin",
            now=NOW - timedelta(hours=2),
        )
    )
    _undo_and_attach_b(s3, a, b, sale)
    assert [r.status for r in _rows(mapp, sale)] == ["issued"]  # it exists at the platform
    flags = mapp.ledger.db.read(
        lambda conn: conn.execute(
            select(station_flags.c.code, station_flags.c.suspends).where(
                station_flags.c.station_id == "S003"
            )
        ).all()
    )
    assert [(f.code, bool(f.suspends)) for f in flags] == [("invoice.issued_sale_changed", False)]

    answer = post(mapp, b, ask(sale, **B_BUYER))
    assert answer.status_code == 409
    assert answer.json() == {
        "error": "member_app.invoice_exists",
        "detail": "this sale has an invoice request already",
    }
    _no_trace_of_a(answer.text)


def test_a_reversal_ends_the_waiting_request(mapp: MemberApp) -> None:
    s3, a, _, sale = _attached_to_a(mapp)
    s3.station.reverse(sale, a, 40, NOW - timedelta(hours=1))
    s3.push(NOW - timedelta(minutes=30))
    (ended,) = _rows(mapp, sale)
    assert (ended.status, ended.reason, ended.decided_by) == (
        "rejected",
        "the sale was reversed",
        "ledger",
    )
    again = post(mapp, a, ask(sale, **A_BUYER))
    assert (again.status_code, again.json()["error"]) == (409, "member_app.sale_reversed")


@pytest.mark.parametrize("change", ["reversed", "other member"])
def test_hq_neither_issues_nor_files_a_request_whose_sale_changed(
    mapp: MemberApp, tmp_path: Path, change: str
) -> None:
    """A request still waiting while its sale changed (written before the push rejected
    such requests): issuing is refused, filing skips it."""
    _, _, b, sale = _attached_to_a(mapp)
    (request,) = _rows(mapp, sale)
    values = {"status": "reversed"} if change == "reversed" else {"member_id": b}
    mapp.ledger.db.transact(
        lambda conn: conn.execute(update(sales).where(sales.c.sale_id == sale).values(**values))
    )
    outbox = tmp_path / "outbox"
    platform = FileTaxPlatform(outbox)
    keys = mapp.ledger.chain_keys
    assert file_invoices(mapp.ledger.db, keys, platform, NOW, actor="admin") == 0
    assert not outbox.exists() or list(outbox.iterdir()) == []
    with pytest.raises(LedgerError) as refused:
        mapp.ledger.db.transact(
            lambda conn: decide_invoice(
                conn,
                keys,
                request_id=request.request_id,
                decision="issue",
                invoice_no="26310000000012345678",
                reason=None,
                actor="admin",
                now=NOW,
            )
        )
    assert refused.value.code == "invoice.sale_changed"
    (row,) = _rows(mapp, sale)
    assert (row.status, row.filed_at, row.invoice_no) == ("requested", None, None)
    rejected = mapp.ledger.db.transact(
        lambda conn: decide_invoice(
            conn,
            keys,
            request_id=request.request_id,
            decision="reject",
            invoice_no=None,
            reason="the sale changed",
            actor="admin",
            now=NOW,
        )
    )
    assert rejected["status"] == "rejected"
