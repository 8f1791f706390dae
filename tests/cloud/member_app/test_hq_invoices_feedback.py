"""HQ's side of the member app's requests: the invoice queue (auditors read, admins file,
issue and reject, audited; the file adapter's outbox) and feedback per station, through the
console's pages and JSON API on both backends."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from cloud_sync.cloud.ledger.audit import audit_entries
from cloud_sync.cloud.ledger.tax_platform import outbox_of
from tests.cloud.hq.support import ADMIN_TOKEN, add_user, login

from .activity_support import member_sales
from .conftest import MemberApp

pytestmark = pytest.mark.usefixtures("cloud_db_url")

USERS = {"alice": ("admin", "alice-password-1"), "audrey": ("auditor", "audrey-password-3")}
TENCENT = "9144030071526726XG"


def signed_in(mapp: MemberApp, name: str) -> tuple[TestClient, str]:
    add_user(mapp.ledger, name, *USERS[name])
    client = TestClient(mapp.app, follow_redirects=False)
    return client, login(client, name, USERS[name][1])


def _requests(mapp: MemberApp) -> list[dict[str, Any]]:
    """Two requests of member 2 (a company, a person), one minute apart."""
    member = mapp.seeded.members[1]
    sales = [s for s in member_sales(mapp, member) if s.status == "recorded"]
    made = []
    for sale, tax_id, name in ((sales[0], TENCENT, "腾讯科技"), (sales[1], None, "李四")):
        body = {"sale_id": sale.sale_id, "buyer_name": name, "tax_id": tax_id, "email": "li@qq.com"}
        answer = mapp.client.post("/m/api/v1/me/invoices", json=body, headers=mapp.auth(member))
        assert answer.status_code == 201, answer.text
        made.append(answer.json())
        mapp.clock.advance(minutes=1)
    return made


def _feedback(mapp: MemberApp) -> None:
    m2, m3 = mapp.seeded.members[1], mapp.seeded.members[2]
    posts = [
        (m3, {"station_id": "S002", "rating": 5, "comment": '=HYPERLINK("x") 很好'}),
        (m2, {"station_id": "S002", "rating": 4, "comment": "快"}),
        (m2, {"station_id": "S001", "rating": 1, "comment": "排队太久"}),
        (m3, {"rating": 3, "comment": "app 不错"}),
    ]
    for member, body in posts:
        answer = mapp.client.post("/m/api/v1/me/feedback", json=body, headers=mapp.auth(member))
        assert answer.status_code == 201, answer.text


def test_an_auditor_reads_the_queue_and_may_not_act(mapp: MemberApp) -> None:
    made = _requests(mapp)
    client, csrf = signed_in(mapp, "audrey")
    page = client.get("/hq/invoices?status=requested")
    assert page.status_code == 200
    assert "腾讯科技" in page.text and TENCENT in page.text
    assert "li@qq.com" not in page.text and "l***@qq.com" in page.text  # masked for HQ
    assert 'data-testid="issue-' not in page.text  # no actions for an auditor
    queue = client.get("/api/v1/hq/invoices", params={"status": "requested"}).json()
    assert [i["request_id"] for i in queue["invoices"]] == [m["request_id"] for m in made]
    assert queue["counts"] == {"requested": 2, "issued": 0, "rejected": 0, "unfiled": 2}
    request_id = made[0]["request_id"]
    refused = client.post(
        f"/api/v1/hq/invoices/{request_id}/issue",
        json={"invoice_no": "26442000000123456789"},
        headers={"X-CSRF-Token": csrf},
    )
    assert refused.status_code == 403
    form = client.post(
        "/hq/invoices", data={"csrf": csrf, "action": "file", "request_id": request_id}
    )
    assert form.status_code == 403
    assert not outbox_of(mapp.settings.data_dir).exists()


def test_an_admin_files_issues_and_rejects_and_the_member_sees_it(mapp: MemberApp) -> None:
    company, person = _requests(mapp)
    client, csrf = signed_in(mapp, "alice")
    assert client.post("/hq/invoices", data={"action": "file"}).status_code == 403  # no CSRF
    filed = client.post("/hq/invoices", data={"csrf": csrf, "action": "file"})
    assert filed.status_code == 200 and "已交税务平台 2 张" in filed.text
    outbox = outbox_of(mapp.settings.data_dir)
    written = {p.name: orjson.loads(p.read_bytes()) for p in outbox.iterdir()}
    assert sorted(written) == sorted(f"{r['request_id']}.json" for r in (company, person))
    sent = written[f"{company['request_id']}.json"]
    assert (sent["email"], sent["tax_id"], sent["amount_fen"]) == ("li@qq.com", TENCENT, 22500)
    again = client.post("/api/v1/hq/invoices/file", headers={"X-CSRF-Token": csrf})
    assert again.json() == {"filed": 0}

    issued = client.post(
        "/hq/invoices",
        data={
            "csrf": csrf,
            "action": "issue",
            "request_id": company["request_id"],
            "invoice_no": "26442000000123456789",
        },
    )
    assert issued.status_code == 200 and "已开具" in issued.text
    twice = client.post(
        f"/api/v1/hq/invoices/{company['request_id']}/issue",
        json={"invoice_no": "26442000000123456789"},
        headers={"X-CSRF-Token": csrf},
    )
    assert (twice.status_code, twice.json()["error"]) == (409, "invoice.decided")
    bad_no = client.post(
        f"/api/v1/hq/invoices/{person['request_id']}/issue",
        json={"invoice_no": "no. 1"},
        headers={"X-CSRF-Token": csrf},
    )
    assert (bad_no.status_code, bad_no.json()["error"]) == (422, "invoice.number")
    rejected = client.post(
        f"/api/v1/hq/invoices/{person['request_id']}/reject",
        json={"reason": "  个人抬头请填写全名  "},
        headers={"X-CSRF-Token": csrf},
    )
    assert rejected.status_code == 200 and rejected.json()["reason"] == "个人抬头请填写全名"
    unknown = client.post(
        "/api/v1/hq/invoices/" + "0" * 32 + "/reject",
        json={"reason": "x"},
        headers={"X-CSRF-Token": csrf},
    )
    assert (unknown.status_code, unknown.json()["error"]) == (404, "invoice.unknown")

    mine = mapp.client.get(
        "/m/api/v1/me/invoices", headers=mapp.auth(mapp.seeded.members[1])
    ).json()
    got = {i["request_id"]: i for i in mine["invoices"]}
    assert (got[company["request_id"]]["status"], got[company["request_id"]]["invoice_no"]) == (
        "issued",
        "26442000000123456789",
    )
    assert got[person["request_id"]]["status"] == "rejected"
    actions = [
        (e["action"], e["actor"])
        for e in mapp.ledger.db.read(lambda conn: audit_entries(conn, limit=50))
        if e["action"].startswith("invoice.")
    ]
    assert sorted(actions) == [
        ("invoice.file", "alice"),
        ("invoice.issue", "alice"),
        ("invoice.reject", "alice"),
    ]
    counts = client.get("/api/v1/hq/invoices").json()["counts"]
    assert counts == {"requested": 0, "issued": 1, "rejected": 1, "unfiled": 0}
    assert client.get("/api/v1/hq/invoices", params={"status": "lost"}).status_code == 422
    export = client.get("/hq/invoices", params={"format": "xlsx"})
    sheet = load_workbook(io.BytesIO(export.content)).active
    assert sheet is not None and sheet.max_row == 3  # heading and two requests


def test_the_admin_token_acts_as_the_named_admin(mapp: MemberApp) -> None:
    company, _ = _requests(mapp)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-HQ-Actor": "robot"}
    answer = mapp.client.post(
        f"/api/v1/hq/invoices/{company['request_id']}/reject",
        json={"reason": "duplicate"},
        headers=headers,
    )
    assert answer.status_code == 200 and answer.json()["decided_by"] == "robot"


def test_feedback_per_station_with_its_comments_and_exports(mapp: MemberApp) -> None:
    _feedback(mapp)
    client, _ = signed_in(mapp, "audrey")
    found = client.get("/api/v1/hq/feedback").json()
    by_station = {s["station_id"]: s for s in found["stations"]}
    assert (by_station["S002"]["count"], by_station["S002"]["average"]) == (2, "4.50")
    assert by_station["S002"]["ratings"] == {"1": 0, "2": 0, "3": 0, "4": 1, "5": 1}
    assert (by_station["S001"]["count"], by_station["S001"]["average"]) == (1, "1.00")
    assert by_station[None]["count"] == 1
    assert len(found["feedback"]) == 4
    s002 = client.get("/api/v1/hq/feedback", params={"station": "S002"}).json()["feedback"]
    assert [f["comment"] for f in s002] == ["快", '=HYPERLINK("x") 很好']  # newest first
    chain = client.get("/api/v1/hq/feedback", params={"about": "chain"}).json()["feedback"]
    assert [f["comment"] for f in chain] == ["app 不错"]
    paged = client.get("/api/v1/hq/feedback", params={"limit": 3}).json()
    rest = client.get("/api/v1/hq/feedback", params={"limit": 3, "before": paged["next"]}).json()
    assert len(paged["feedback"]) + len(rest["feedback"]) == 4 and rest["next"] is None
    page = client.get("/hq/feedback", params={"station": "S001"})
    assert (
        page.status_code == 200
        and "排队太久" in page.text
        and "很好" not in page.text.split('data-testid="table-feedback"')[1]
    )
    csv = client.get("/hq/feedback", params={"station": "S002", "format": "csv"}).text
    assert "'=HYPERLINK" in csv  # escaped against formula injection
    summary = client.get("/api/v1/hq/feedback", params={"format": "xlsx"})
    sheet = load_workbook(io.BytesIO(summary.content)).active
    assert sheet is not None and sheet.max_row == 4  # heading, S001, S002, the chain
    assert client.get("/api/v1/hq/feedback", params={"station": "S 1"}).status_code == 422


def test_without_a_session_pages_redirect_and_the_api_refuses(
    mapp: MemberApp, tmp_path: Path
) -> None:
    del tmp_path
    client = TestClient(mapp.app, follow_redirects=False)
    for path in ("/hq/invoices", "/hq/feedback"):
        assert client.get(path).status_code == 303
    for path in ("/api/v1/hq/invoices", "/api/v1/hq/feedback"):
        assert client.get(path).status_code == 401
    member_token = mapp.auth(mapp.seeded.members[1])
    assert client.get("/api/v1/hq/invoices", headers=member_token).status_code == 401
