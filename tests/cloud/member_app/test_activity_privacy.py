"""PIPL for the member app's activity: the export holds the member's check-ins, invoice
requests (buyer data unsealed) and feedback; erasure drops the buyer's name and email, ends
waiting requests and blanks comments, while HQ's counts (days, amounts, ratings) stay."""

from __future__ import annotations

import pytest

from cloud_sync.cloud.ledger.member_activity_privacy import ERASED_REASON
from cloud_sync.cloud.ledger.member_admin import ERASED_MARK
from cloud_sync.cloud.ledger.member_invoices_hq import invoice_queue
from cloud_sync.cloud.ledger.member_privacy import erase_member, export_member
from tests.cloud.hq.support import ADMIN_TOKEN

from .activity_support import publish_checkin, sale_of
from .conftest import MemberApp

pytestmark = pytest.mark.usefixtures("cloud_db_url")

TENCENT = "9144030071526726XG"


def test_export_then_erasure(mapp: MemberApp) -> None:
    publish_checkin(mapp)
    member = mapp.seeded.members[1]
    headers = mapp.auth(member)
    assert mapp.client.post("/m/api/v1/me/checkin", headers=headers).status_code == 201
    sale = sale_of(mapp, member)
    body = {"sale_id": sale.sale_id, "buyer_name": "王五", "tax_id": TENCENT, "email": "w@x.cn"}
    assert mapp.client.post("/m/api/v1/me/invoices", json=body, headers=headers).status_code == 201
    said = {"sale_id": sale.sale_id, "rating": 2, "comment": "我的车牌是粤B12345"}
    assert mapp.client.post("/m/api/v1/me/feedback", json=said, headers=headers).status_code == 201
    db, keys, now = mapp.ledger.db, mapp.ledger.chain_keys, mapp.clock()

    doc = db.transact(lambda conn: export_member(conn, keys, member, actor="dpo", now=now))
    app = doc["member_app"]
    assert [(c["day"], c["points"]) for c in app["checkins"]] == [("2026-03-02", 5)]
    assert app["invoice_requests"][0]["buyer_name"] == "王五"
    assert app["invoice_requests"][0]["email"] == "w@x.cn"
    assert app["feedback"][0]["comment"] == "我的车牌是粤B12345"

    done = db.transact(lambda conn: erase_member(db, conn, member, actor="dpo", now=now))
    assert (done["invoice_requests_scrubbed"], done["invoice_requests_ended"]) == (1, 1)
    assert done["feedback_comments_removed"] == 1
    (request,) = db.read(lambda conn: invoice_queue(conn, keys))["invoices"]
    assert (request["buyer_name"], request["email"], request["tax_id"]) == (
        ERASED_MARK,
        ERASED_MARK,
        TENCENT,  # the company's, not the person's
    )
    assert (request["status"], request["reason"]) == ("rejected", ERASED_REASON)
    assert request["amount_fen"] == 22500
    after = db.transact(lambda conn: export_member(conn, keys, member, actor="dpo", now=now))
    assert after["member_app"]["feedback"][0] == {**app["feedback"][0], "comment": ""}
    assert after["member_app"]["checkins"] == app["checkins"]  # the ledger's facts stay
    stats = mapp.client.get(
        "/api/v1/hq/feedback", headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "X-HQ-Actor": "t"}
    ).json()
    assert stats["stations"][0]["count"] == 1 and stats["feedback"][0]["comment"] == ""
