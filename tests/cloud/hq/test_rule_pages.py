"""The rules API and pages over the real app: roles, the whole draft-to-station path,
validation faults with paths, hostile names escaped in the pages, exports."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from cloud_sync.cloud.console import auth
from cloud_sync.cloud.console.auth import HqUser
from tests.cloud.server.helpers import ADMIN_TOKEN
from tests.cloud.server.sqlite_cloud import open_cloud

from .seed import END, START, Seeded, rules_with, seed_month

BASE = "/api/v1/hq/rules"


def _test_user(request: Request) -> HqUser | None:
    """The admin token, acting as the role and person the test names (until sessions)."""
    if not request.scope.get("state", {}).get(auth.ADMIN_TOKEN_KEY):
        return None
    role = request.headers.get("x-test-role", "admin")
    assert role in auth.ROLES
    return HqUser(name=request.headers.get("x-hq-actor", "token"), role=role, via="token")


@dataclass
class Hq:
    client: TestClient
    seeded: Seeded

    def as_(self, name: str, role: str = "admin") -> dict[str, str]:
        return {
            "Authorization": f"Bearer {ADMIN_TOKEN}",
            "X-HQ-Actor": name,
            "X-Test-Role": role,
        }

    def call(self, method: str, url: str, who: dict[str, str], body: Any = None) -> Any:
        return self.client.request(method, url, headers=who, json=body)


@pytest.fixture
def hq(cloud_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hq]:
    monkeypatch.setattr(auth, "_token_user", _test_user)
    with open_cloud(tmp_path, cloud_db_url, []) as opened, TestClient(opened.app) as client:
        seeded = seed_month(opened.ledger, opened.keys, sales=60)
        yield Hq(client, seeded)


def _wait(hq: Hq, backtest_id: str, who: dict[str, str]) -> dict[str, Any]:
    for _ in range(200):
        answer = hq.call("GET", f"{BASE}/backtests/{backtest_id}", who)
        assert answer.status_code == 200, answer.text
        if answer.json()["status"] != "running":
            return dict(answer.json())
        time.sleep(0.05)
    raise AssertionError("the backtest never finished")


def test_draft_backtest_approve_publish_and_the_stations_pull(hq: Hq) -> None:
    mia, ada, auditor = hq.as_("mia", "marketer"), hq.as_("ada"), hq.as_("aud", "auditor")
    earn = json.loads(rules_with())["earn"]
    earn[0]["points_per_litre"] = "2"
    document = rules_with(earn=earn)
    assert hq.call("POST", f"{BASE}/drafts", auditor, {"document": document}).status_code == 403
    created = hq.call("POST", f"{BASE}/drafts", mia, {"document": document})
    assert created.status_code == 201, created.text
    draft = created.json()
    draft_id = draft["draft_id"]
    assert draft["may"]["approve"] is False and draft["may"]["approve_reason"] == "admin_only"

    started = hq.call(
        "POST",
        f"{BASE}/drafts/{draft_id}/backtests",
        mia,
        {"from": START.isoformat(), "to": END.isoformat()},
    )
    assert started.status_code == 202, started.text
    done = _wait(hq, started.json()["backtest_id"], auditor)
    assert done["status"] == "done", done
    grade92 = next(r for r in done["result"]["by"]["grade"] if r["key"] == "92")
    assert grade92["draft_points"] >= 2 * grade92["current_points"] > 0
    shown = hq.client.get(f"/hq/rules/drafts/{draft_id}?lang=en", headers=auditor)
    assert shown.status_code == 200, shown.text
    assert 'data-testid="bt-summary"' in shown.text and 'id="fig-bt-grade"' in shown.text

    for who in (mia, auditor):
        assert hq.call("POST", f"{BASE}/drafts/{draft_id}/approve", who, {}).status_code == 403
        assert hq.call("POST", f"{BASE}/drafts/{draft_id}/publish", who).status_code == 403
    own = hq.call("POST", f"{BASE}/drafts/{draft_id}/approve", hq.as_("mia"), {})
    assert (own.status_code, own.json()["error"]) == (403, "rules.self_approval")
    stale = hq.call("POST", f"{BASE}/drafts/{draft_id}/approve", ada, {"document_hash": "0" * 64})
    assert (stale.status_code, stale.json()["error"]) == (409, "rules.draft_changed")
    approved = hq.call(
        "POST", f"{BASE}/drafts/{draft_id}/approve", ada, {"document_hash": draft["document_hash"]}
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["may"]["publish"] is True
    published = hq.call("POST", f"{BASE}/drafts/{draft_id}/publish", ada)
    assert published.status_code == 200, published.text
    assert published.json()["published_version"] == 4

    station = {"Authorization": f"Bearer {hq.seeded.tokens['S001']}"}
    page = hq.client.get("/api/v1/sync/changes", params={"since": 0}, headers=station).json()
    assert 4 in [r["version"] for r in page["rulesets"]]
    pulls = hq.call("GET", f"{BASE}/pulls", auditor).json()
    assert pulls["4"] == {"pulled": [], "waiting": ["S001", "S002"]}
    hq.client.get("/api/v1/sync/changes", params={"since": page["next_cursor"]}, headers=station)
    assert hq.call("GET", f"{BASE}/pulls", auditor).json()["4"]["pulled"] == ["S001"]
    listing = hq.call("GET", BASE, auditor).json()
    assert listing["published"][0]["approved_by"] == "ada"
    html = hq.client.get("/hq/rules?lang=en", headers=auditor).text
    assert 'data-testid="pulls-4"' in html and "pulled 1" in html and "not yet 1" in html

    export = hq.client.get(
        f"{BASE}/backtests/{done['backtest_id']}/export",
        params={"table": "grade", "format": "csv"},
        headers=auditor,
    )
    assert export.status_code == 200
    assert export.content.startswith(b"\xef\xbb\xbfkey,sales")


def test_validation_answers_every_fault_with_its_path(hq: Hq) -> None:
    mia = hq.as_("mia", "marketer")
    bad = json.loads(rules_with())
    bad["tiers"][2]["multiplier"] = "lots"
    answer = hq.call("POST", f"{BASE}/validate", mia, {"document": json.dumps(bad)}).json()
    assert answer["ok"] is False
    assert "$.tiers[2].multiplier" in [f["path"] for f in answer["faults"]]
    ok = hq.call("POST", f"{BASE}/validate", mia, {"document": rules_with()}).json()
    assert ok == {"ok": True, "faults": []}
    refused = hq.call("POST", f"{BASE}/drafts", mia, {"document": json.dumps(bad)})
    assert refused.status_code == 422 and "$.tiers[2].multiplier" in refused.json()["detail"]
    huge = hq.call("POST", f"{BASE}/validate", mia, {"document": " " * (300 * 1024)})
    assert huge.status_code in (413, 422)
    window = hq.call(
        "POST", f"{BASE}/drafts/nope/backtests", mia, {"days": 7, "from": "2026-01-01"}
    )
    assert window.status_code == 404


def test_hostile_names_are_escaped_in_the_pages(hq: Hq) -> None:
    mia = hq.as_("mia", "marketer")
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    draft = hq.call("POST", f"{BASE}/drafts", mia, {"document": rules_with(name=hostile)}).json()
    for url in ("/hq/rules", f"/hq/rules/drafts/{draft['draft_id']}"):
        html = hq.client.get(url, headers=mia).text
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert" in html
    reader = hq.client.get(f"/hq/rules/drafts/{draft['draft_id']}", headers=hq.as_("a", "auditor"))
    assert 'data-testid="approval-role"' in reader.text and 'id="save"' not in reader.text
