"""The members screen over HTTP: search, page, adjust (double submit), PIPL, import,
export; hostile input (formula injection, XSS, oversized upload); SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from tests.cloud.server.helpers import ADMIN_TOKEN
from tests.cloud.server.sqlite_cloud import CloudApp, open_cloud

from .members_seed import PHONE, PLATE, seed

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-HQ-Actor": "alice"}
EVIL = "=cmd|' /C calc'!A0"
XSS = "<script>alert(1)</script>"


@pytest.fixture
def cloud(tmp_path: Path, cloud_db_url: str) -> Iterator[tuple[CloudApp, TestClient, str]]:
    with open_cloud(tmp_path, cloud_db_url, []) as opened:
        seeded = seed(opened.ledger, opened.keys)
        with TestClient(opened.app) as client:
            yield opened, client, seeded.member


def _import(client: TestClient, text: str, *, dry_run: bool) -> tuple[int, dict]:  # type: ignore[type-arg]
    answer = client.post(
        f"/api/v1/hq/members/import?filename=m.csv&dry_run={str(dry_run).lower()}",
        content=text.encode("utf-8"),
        headers={**AUTH, "Content-Type": "text/csv"},
    )
    return answer.status_code, answer.json()


def test_search_page_and_sales(cloud: tuple[CloudApp, TestClient, str]) -> None:
    _, client, member = cloud
    for q in (PHONE, PLATE, member):
        found = client.get("/api/v1/hq/members", params={"q": q}, headers=AUTH).json()
        assert [m["member_id"] for m in found["members"]] == [member]
    assert client.get("/api/v1/hq/members", params={"q": "京"}, headers=AUTH).status_code == 422
    assert client.get("/api/v1/hq/members", params={"q": PHONE}).status_code == 401
    page = client.get(f"/api/v1/hq/members/{member}", headers=AUTH).json()
    assert page["plates"] == [PLATE] and page["points"] == 50
    sales = client.get(f"/api/v1/hq/members/{member}/sales?limit=1", headers=AUTH).json()
    assert len(sales["sales"]) == 1 and sales["next"]
    assert client.get("/api/v1/hq/members/nobody", headers=AUTH).status_code == 404
    html = client.get("/hq/members", params={"q": PHONE}, headers=AUTH).text
    assert f'href="/hq/members/{member}"' in html and "data-search" in html
    assert "/hq/reports/members" in html
    html = client.get(f"/hq/members/{member}", headers=AUTH).text
    assert PLATE in html and "138****8000" in html and 'id="adjust-form"' in html


def test_adjust_double_submit_books_once(cloud: tuple[CloudApp, TestClient, str]) -> None:
    opened, client, member = cloud
    body = {"points": 300, "reason": "补录积分", "request_id": "click-0000001"}
    url = f"/api/v1/hq/members/{member}/adjustments"
    first = client.post(url, json=body, headers=AUTH)
    second = client.post(url, json=body, headers=AUTH)
    assert first.status_code == second.status_code == 200, first.text
    assert second.json()["replayed"] is True
    page = client.get(f"/api/v1/hq/members/{member}", headers=AUTH).json()
    assert page["points"] == 350
    assert [(a["points"], a["station_id"], a["actor"]) for a in page["adjustments"]] == [
        (300, None, "alice")
    ]
    assert opened.ledger.ledger_problems() == []
    bad = client.post(url, json={**body, "request_id": "click-2", "reason": ""}, headers=AUTH)
    assert bad.status_code == 422
    huge = client.post(url, json={**body, "points": 1_000_001}, headers=AUTH)
    assert huge.status_code == 422


def test_pipl_export_and_erase(cloud: tuple[CloudApp, TestClient, str]) -> None:
    opened, client, member = cloud
    doc = client.post(f"/api/v1/hq/members/{member}/pipl-export", headers=AUTH).json()
    assert doc["profile"]["phone"] == "+8613800138000" and doc["plates"] == [PLATE]
    wrong = client.post(f"/api/v1/hq/members/{member}/erase", json={"confirm": "x"}, headers=AUTH)
    assert wrong.status_code == 422
    done = client.post(
        f"/api/v1/hq/members/{member}/erase", json={"confirm": "138****8000"}, headers=AUTH
    )
    assert done.status_code == 200, done.text
    assert client.get("/api/v1/hq/members", params={"q": PHONE}, headers=AUTH).json() == {
        "members": []
    }
    assert opened.ledger.ledger_problems() == []
    html = client.get(f"/hq/members/{member}", headers=AUTH).text
    assert 'data-testid="erased"' in html and PLATE not in html


def test_import_reports_bad_rows_and_applies_a_clean_sheet(
    cloud: tuple[CloudApp, TestClient, str],
) -> None:
    _, client, _ = cloud
    bad = "手机号,车牌,姓名,期初积分\r\n13900000001,京B11111,王五,10\r\n123,,x,0\r\n"
    status, report = _import(client, bad, dry_run=True)
    assert status == 200 and report["problems"][0].startswith("row 3: phone")
    status, report = _import(client, bad, dry_run=False)
    assert status == 422 and report["error"] == "import.rows" and report["imported"] == 0
    good = f"phone,plates,name,opening_points\r\n13900000001,京B11111,{XSS},10\r\n"
    good += f'13900000002,,"{EVIL}",0\r\n'
    status, report = _import(client, good, dry_run=False)
    assert status == 200 and report["imported"] == 2
    found = client.get("/api/v1/hq/members", params={"q": "京B11111"}, headers=AUTH).json()
    member = found["members"][0]["member_id"]
    html = client.get(f"/hq/members/{member}", headers=AUTH).text
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    csv_text = client.get("/api/v1/hq/members/export?format=csv", headers=AUTH).content
    names = [row[2] for row in csv.reader(io.StringIO(csv_text.decode("utf-8-sig")))]
    assert "'" + EVIL in names and EVIL not in names
    xlsx = client.get("/api/v1/hq/members/export?format=xlsx", headers=AUTH).content
    sheet = load_workbook(io.BytesIO(xlsx), read_only=True).worksheets[0]
    cells = [row[2] for row in sheet.iter_rows(values_only=True)]
    assert "'" + EVIL in cells and EVIL not in cells


def test_oversized_upload_is_refused_before_reading(
    cloud: tuple[CloudApp, TestClient, str],
) -> None:
    _, client, _ = cloud
    answer = client.post(
        "/api/v1/hq/members/import?filename=big.csv&dry_run=true",
        content=b"phone\r\n" + b"1" * (8 * 1024 * 1024 + 1),
        headers=AUTH,
    )
    assert answer.status_code == 413
    assert answer.json()["error"] == "too_large"
