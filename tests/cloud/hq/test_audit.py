"""The audit screen and its API: newest first, filters, paging, CSV/XLSX; any role reads it.
SQLite and PostgreSQL."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import Connection

from cloud_sync.cloud.ledger.audit import record_audit

from .support import Console, console

DAY1 = datetime(2026, 11, 28, 23, 30, tzinfo=UTC)


def _seed(conn: Connection) -> None:
    """60 entries: alternating actors, three actions, one every hour from DAY1."""
    for number in range(60):
        record_audit(
            conn,
            actor=("alice", "bob")[number % 2],
            action=("user.add", "rules.draft", "station.suspend")[number % 3],
            target=f"t{number}",
            at=DAY1 + timedelta(hours=number),
            after={"n": number, "text": "=HYPERLINK(1)"} if number == 59 else {"n": number},
        )


@pytest.fixture
def hq(tmp_path: Path, cloud_db_url: str) -> Iterator[Console]:
    with console(tmp_path, cloud_db_url) as built:
        built.ledger.db.transact(_seed)
        yield built


def test_newest_first_and_paged(hq: Console) -> None:
    client = hq.client()
    headers = hq.admin_headers()
    first = client.get("/api/v1/hq/audit?limit=25", headers=headers).json()
    targets = [e["target"] for e in first["entries"]]
    assert targets[:2] == ["t59", "t58"]
    assert len(targets) == 25
    rest = client.get(
        f"/api/v1/hq/audit?limit=500&before={first['next_before']}", headers=headers
    ).json()
    assert rest["next_before"] is None
    seeded = [e for e in first["entries"] + rest["entries"] if e["target"].startswith("t")]
    assert [e["target"] for e in seeded] == [f"t{n}" for n in range(59, -1, -1)]
    assert seeded[0]["after"] == {"n": 59, "text": "=HYPERLINK(1)"}


def test_filters_by_actor_action_target_and_day(hq: Console) -> None:
    client = hq.client()
    headers = hq.admin_headers()

    def targets(query: str) -> list[str]:
        answer = client.get(f"/api/v1/hq/audit?limit=500&{query}", headers=headers)
        assert answer.status_code == 200, answer.text
        return [e["target"] for e in answer.json()["entries"]]

    assert targets("actor=bob")[:3] == ["t59", "t57", "t55"]
    assert len(targets("actor=bob&action=user.add")) == 10  # n % 6 == 3
    assert targets("target=t7") == ["t7"]
    # DAY1 23:30 + n hours: 2026-11-29 (UTC) holds n = 1 .. 24.
    assert targets("from=2026-11-29&to=2026-11-29") == [f"t{n}" for n in range(24, 0, -1)]
    assert targets("to=2026-11-28") == ["t0"]
    bad = client.get("/api/v1/hq/audit?from=29/11/2026", headers=headers)
    assert bad.status_code == 422
    assert "from" in bad.json()["detail"]


def test_every_role_reads_the_audit_page(hq: Console) -> None:
    for name in ("audrey", "mark", "alice"):
        client = hq.signed_in(name)
        page = client.get("/hq/audit")
        assert page.status_code == 200, name
        assert "审计日志" in page.text
        assert page.text.count('<tr><td class="num">') == 50
        assert 'data-testid="audit-next"' in page.text
        assert client.get("/api/v1/hq/audit").status_code == 200


def test_the_page_filters_pages_on_and_exports_what_it_shows(hq: Console) -> None:
    client = hq.signed_in("audrey")
    page = client.get("/hq/audit?actor=alice&action=rules.draft")
    assert page.status_code == 200
    assert 'value="rules.draft" selected' in page.text
    assert ">t58<" in page.text
    assert ">t57<" not in page.text
    older = client.get("/hq/audit")
    assert older.status_code == 200
    link = older.text.split('data-testid="audit-next"', 1)[0].rsplit('href="?', 1)[1]
    next_url = link.split('"', 1)[0].replace("&amp;", "&")
    second = client.get(f"/hq/audit?{next_url}")
    assert ">t9<" in second.text
    assert ">t59<" not in second.text
    csv = client.get("/hq/audit?actor=alice&action=rules.draft&format=csv")
    assert csv.status_code == 200
    lines = csv.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("#,")
    assert len(lines) == 1 + 10
    assert ",alice,rules.draft,t58," in lines[1]
    xlsx = client.get("/hq/audit?target=t59&format=xlsx")
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[1][4] == "t59"
    assert "HYPERLINK" in str(rows[1][6])
    assert not str(rows[1][6]).startswith("=")


def test_a_bad_day_on_the_page_is_a_message_not_a_crash(hq: Console) -> None:
    client = hq.signed_in("audrey")
    page = client.get("/hq/audit?from=yesterday")
    assert page.status_code == 200
    assert "YYYY-MM-DD" in page.text
