"""Each sale on `GET /m/api/v1/me/sales` says whether an e-invoice was asked for it and how far
it went (`invoice: null | {request_id, status}`), so the page shows a status, not a second
"request invoice"; SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from sqlalchemy import event

from cloud_sync.cloud.ledger.member_invoices_hq import decide_invoice
from cloud_sync.core.privacy import MemberKeys
from tests.cloud.ledger.fake_station import member_id

from .activity_support import member_sales
from .conftest import MemberApp

pytestmark = pytest.mark.usefixtures("cloud_db_url")

SALES = "/m/api/v1/me/sales"


def _ask(mapp: MemberApp, member: str, sale_id: str, tax_id: str | None = None) -> str:
    body = {"sale_id": sale_id, "buyer_name": "张三", "tax_id": tax_id, "email": "a@example.com"}
    answer = mapp.client.post("/m/api/v1/me/invoices", json=body, headers=mapp.auth(member))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["request_id"])


def _decide(
    mapp: MemberApp, keys: MemberKeys, request_id: str, decision: Literal["issue", "reject"]
) -> None:
    mapp.ledger.db.transact(
        lambda conn: decide_invoice(
            conn,
            keys,
            request_id=request_id,
            decision=decision,
            invoice_no="25310000000012345678" if decision == "issue" else None,
            reason="抬头与税号不符" if decision == "reject" else None,
            actor="admin:test",
            now=mapp.clock(),
        )
    )


def _invoices(mapp: MemberApp, member: str, **params: Any) -> dict[str, Any]:
    answer = mapp.client.get(SALES, headers=mapp.auth(member), params=params)
    assert answer.status_code == 200, answer.text
    return {sale["sale_id"]: sale["invoice"] for sale in answer.json()["sales"]}


def test_each_sale_shows_its_invoice_request_and_its_status(
    mapp: MemberApp, chain_keys: MemberKeys
) -> None:
    member = mapp.seeded.members[0]
    recorded = [s.sale_id for s in member_sales(mapp, member) if s.status == "recorded"]
    first, second = recorded[:2]
    assert set(_invoices(mapp, member).values()) == {None}  # nothing asked yet

    asked = _ask(mapp, member, first)
    shown = _invoices(mapp, member)
    assert shown[first] == {"request_id": asked, "status": "requested"}
    assert [sale for sale, invoice in shown.items() if invoice is not None] == [first]

    other = _ask(mapp, member, second)
    _decide(mapp, chain_keys, asked, "issue")
    _decide(mapp, chain_keys, other, "reject")
    shown = _invoices(mapp, member)
    assert shown[first] == {"request_id": asked, "status": "issued"}
    assert shown[second] == {"request_id": other, "status": "rejected"}


def test_a_request_asked_by_a_merged_id_shows_on_the_survivor_s_list(mapp: MemberApp) -> None:
    survivor, merged = mapp.seeded.members[0], member_id(9)  # one phone, registered twice
    sale = [s for s in member_sales(mapp, survivor) if s.station_id == "S002"][-1].sale_id
    asked = _ask(mapp, merged, sale)  # the merged id's token acts as the survivor
    assert _invoices(mapp, survivor)[sale] == {"request_id": asked, "status": "requested"}
    assert _invoices(mapp, merged)[sale] == {"request_id": asked, "status": "requested"}


def test_another_member_s_request_shows_nowhere_else(mapp: MemberApp) -> None:
    owner, other = mapp.seeded.members[1], mapp.seeded.members[2]
    sale = next(s.sale_id for s in member_sales(mapp, owner) if s.status == "recorded")
    _ask(mapp, owner, sale)
    assert set(_invoices(mapp, other).values()) == {None}


def test_the_invoices_of_a_page_are_one_query(mapp: MemberApp) -> None:
    """However many sales a page holds: one look-up of `invoice_requests` by its sale ids."""
    member = mapp.seeded.members[0]
    for sale in [s.sale_id for s in member_sales(mapp, member) if s.status == "recorded"][:2]:
        _ask(mapp, member, sale)
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "invoice_requests" in statement:
            seen.append(statement)

    engine = mapp.ledger.db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        for limit in (1, 50):
            seen.clear()
            _invoices(mapp, member, limit=limit)
            assert len(seen) == 1, seen
            assert "invoice_requests.sale_id IN" in seen[0]
    finally:
        event.remove(engine, "before_cursor_execute", count)
