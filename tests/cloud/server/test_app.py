"""The cloud's HTTP face against a real ledger, on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.cloud.server.run import open_ledger
from cloud_sync.cloud.server.settings import CloudSettings
from cloud_sync.core.privacy import MemberKeys
from cloud_sync.core.signing import SignatureError, verify_document
from cloud_sync.core.wire import ChangesResponse, EnrolResponse, Problem, PushResponse
from tests.support import RULESETS

from .helpers import ADMIN_TOKEN, EventLog, member_events
from .sqlite_cloud import open_cloud

SAMPLE = RULESETS / "sample.json"


@dataclass
class Cloud:
    client: TestClient
    ledger: CloudLedger
    keys: MemberKeys
    station_token: str
    other_token: str

    def station(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.station_token}"}

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def push(self, body: dict[str, Any]) -> Any:
        return self.client.post("/api/v1/sync/events", json=body, headers=self.station())

    def changes(self, since: int = 0) -> ChangesResponse:
        answer = self.client.get(
            "/api/v1/sync/changes", params={"since": since}, headers=self.station()
        )
        assert answer.status_code == 200, answer.text
        return ChangesResponse.model_validate(answer.json())


@pytest.fixture
def cloud(cloud_db_url: str, tmp_path: Path) -> Iterator[Cloud]:
    with (
        open_cloud(tmp_path, cloud_db_url, [("S001", "first"), ("S002", "second")]) as opened,
        TestClient(opened.app) as client,
    ):
        station_token, other_token = opened.tokens
        yield Cloud(client, opened.ledger, opened.keys, station_token, other_token)


def problem_of(answer: Any, status: int, error: str) -> Problem:
    assert answer.status_code == status, answer.text
    problem = Problem.model_validate(answer.json())
    assert problem.error == error, problem
    return problem


def test_auth_matrix(cloud: Cloud) -> None:
    station_route = "/api/v1/sync/changes"
    admin_route = "/api/v1/stations"
    for route in (station_route, admin_route):
        problem_of(cloud.client.get(route), 401, "unauthorized")
        problem_of(cloud.client.get(route, headers=cloud.station("nonsense")), 401, "unauthorized")
        basic = {"Authorization": f"Basic {ADMIN_TOKEN}"}
        problem_of(cloud.client.get(route, headers=basic), 401, "unauthorized")
    assert cloud.client.get(station_route).headers["www-authenticate"] == "Bearer"
    problem_of(cloud.client.get(admin_route, headers=cloud.station()), 403, "forbidden")
    problem_of(cloud.client.get(station_route, headers=cloud.admin), 403, "forbidden")
    assert cloud.client.get(station_route, headers=cloud.station()).status_code == 200
    assert cloud.client.get(admin_route, headers=cloud.admin).status_code == 200
    # no token: refused before the body is even read, so validation tells nothing
    problem_of(cloud.client.post("/api/v1/sync/events", content=b"{"), 401, "unauthorized")
    # a station may only speak for itself
    log = EventLog("S002")
    log.add("member.registered", member_events(cloud.keys, "13800138000")[1][0][1])
    problem_of(cloud.push(log.batch()), 403, "forbidden")
    enrol = {"station_id": "S002", "station_keys": []}
    answer = cloud.client.post("/api/v1/sync/enrol", json=enrol, headers=cloud.station())
    problem_of(answer, 403, "forbidden")


def test_enrol_hands_out_keys_that_verify_published_rules(cloud: Cloud) -> None:
    own = MemberKeys.generate("station-S001")
    body = {
        "station_id": "S001",
        "station_keys": [
            {
                "key_id": own.key_id,
                "encryption_key": base64.b64encode(own.encryption_key).decode(),
                "index_key": base64.b64encode(own.index_key).decode(),
            }
        ],
    }
    answer = cloud.client.post("/api/v1/sync/enrol", json=body, headers=cloud.station())
    assert answer.status_code == 200, answer.text
    enrolled = EnrolResponse.model_validate(answer.json())
    assert enrolled.member_keys.key_id == cloud.keys.key_id
    assert base64.b64decode(enrolled.member_keys.index_key) == cloud.keys.index_key

    document = SAMPLE.read_bytes()
    published = cloud.client.post("/api/v1/rulesets", content=document, headers=cloud.admin)
    assert published.status_code == 201, published.text
    assert published.json() == {"version": 3, "signing_key_id": enrolled.signing_key_id}

    page = cloud.changes()
    [signed] = page.rulesets
    assert signed.version == 3
    assert signed.document == document.decode("utf-8")
    assert signed.signing_key_id == enrolled.signing_key_id
    verify_document(enrolled.signing_public_key, signed.document, signed.signature)
    with pytest.raises(SignatureError):
        verify_document(enrolled.signing_public_key, signed.document + " ", signed.signature)

    again = cloud.client.post("/api/v1/rulesets", content=document, headers=cloud.admin)
    assert again.status_code == 201, again.text  # the same text again is a no-op
    assert len(cloud.changes().rulesets) == 1
    other = json.loads(document)
    other["name"] = "another draft under a published version"
    taken = cloud.client.post("/api/v1/rulesets", content=json.dumps(other), headers=cloud.admin)
    problem_of(taken, 409, "rules.version_taken")


def test_enrol_refuses_keys_that_are_not_base64(cloud: Cloud) -> None:
    body = {
        "station_id": "S001",
        "station_keys": [{"key_id": "k", "encryption_key": "not base64!", "index_key": "AAAA"}],
    }
    answer = cloud.client.post("/api/v1/sync/enrol", json=body, headers=cloud.station())
    problem = problem_of(answer, 422, "invalid")
    assert problem.detail.startswith("station_keys.0")


def test_a_broken_rule_set_is_refused_with_its_json_path(cloud: Cloud) -> None:
    document = json.loads(SAMPLE.read_text(encoding="utf-8"))
    document["rounding"] = "sideways"
    answer = cloud.client.post(
        "/api/v1/rulesets", content=json.dumps(document).encode(), headers=cloud.admin
    )
    problem = problem_of(answer, 422, "rules.invalid")
    assert "$.rounding" in problem.detail
    assert cloud.ledger.rulesets() == []


def test_push_replay_gap_and_conflict(cloud: Cloud) -> None:
    member_id, events = member_events(cloud.keys, "13800138000", "粤BD12345")
    log = EventLog("S001")
    for kind, payload in events:
        log.add(kind, payload)

    answer = cloud.push(log.batch())
    assert answer.status_code == 200, answer.text
    first = PushResponse.model_validate(answer.json())
    assert first.high_water == 2
    assert [r.status for r in first.results] == ["applied", "applied"]

    replay = PushResponse.model_validate(cloud.push(log.batch()).json())
    assert replay.high_water == 2
    assert [r.status for r in replay.results] == ["duplicate", "duplicate"]

    _, more = member_events(cloud.keys, "13900139000")
    for _ in range(3):
        log.add(*more[0])
    gap = problem_of(cloud.push(log.batch(first=5)), 409, "sequence_gap")
    assert (gap.expected_seq, gap.epoch) == (3, 1)

    altered = log.batch(first=1, last=1)
    altered["events"] = [{**altered["events"][0], "created_at": "2026-12-02T08:00:00+08:00"}]
    altered["events"][0]["payload"] = {**altered["events"][0]["payload"], "consent_at": "x"}
    conflict = problem_of(cloud.push(altered), 409, "event_conflict")
    assert conflict.event_id == log.events[0]["event_id"]

    member = cloud.ledger.member(member_id, datetime(2026, 12, 1, tzinfo=UTC))
    assert member is not None
    assert member["phone_masked"] == "138****8000"


def test_malformed_pushes_answer_422_with_the_field(cloud: Cloud) -> None:
    empty = {"station_id": "S001", "epoch": 1, "events": []}
    problem = problem_of(cloud.push(empty), 422, "invalid")
    assert problem.detail.startswith("events")
    answer = cloud.client.post("/api/v1/sync/events", content=b"{not json", headers=cloud.station())
    problem_of(answer, 422, "invalid")
    problem = problem_of(cloud.push({"station_id": "S001", "events": [{}]}), 422, "invalid")
    assert problem.detail.startswith("epoch")


def test_oversized_bodies_are_refused(cloud: Cloud) -> None:
    big = b"x" * (8 * 1024 * 1024 + 1)
    answer = cloud.client.post("/api/v1/sync/events", content=big, headers=cloud.station())
    problem_of(answer, 413, "too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(9):
            yield b" " * (1024 * 1024)

    streamed = cloud.client.post("/api/v1/sync/events", content=chunks(), headers=cloud.station())
    problem_of(streamed, 413, "too_large")


def test_member_lookup_by_phone_plate_and_id(cloud: Cloud) -> None:
    member_id, events = member_events(cloud.keys, "13800138000", "粤B·D12345")
    log = EventLog("S001")
    for kind, payload in events:
        log.add(kind, payload)
    assert cloud.push(log.batch()).status_code == 200

    members = "/api/v1/members"
    by_phone = cloud.client.get(members, params={"phone": "+86 138 0013 8000"}, headers=cloud.admin)
    assert by_phone.status_code == 200, by_phone.text
    assert by_phone.json()["member_id"] == member_id
    assert by_phone.json()["phone_masked"] == "138****8000"
    by_plate = cloud.client.get(members, params={"plate": "粤bd12345"}, headers=cloud.admin)
    assert by_plate.status_code == 200, by_plate.text
    assert by_plate.json()["member_id"] == member_id
    by_id = cloud.client.get(f"{members}/{member_id}", headers=cloud.admin)
    assert by_id.json()["member_id"] == member_id
    for key in ("plates", "tier", "points"):
        assert key in by_id.json()

    unknown = cloud.client.get(members, params={"phone": "13900139000"}, headers=cloud.admin)
    problem_of(unknown, 404, "not_found")
    problem_of(cloud.client.get(f"{members}/nobody", headers=cloud.admin), 404, "not_found")
    bad = cloud.client.get(members, params={"phone": "12345"}, headers=cloud.admin)
    assert bad.status_code == 422
    assert Problem.model_validate(bad.json()).error
    both = cloud.client.get(
        members, params={"phone": "13800138000", "plate": "粤BD12345"}, headers=cloud.admin
    )
    problem_of(both, 422, "invalid")


def test_policy_switch_reaches_the_changes_feed(cloud: Cloud) -> None:
    assert cloud.client.get("/api/v1/policy", headers=cloud.admin).json() == {
        "offline_redemption": True
    }
    assert cloud.changes().offline_redemption is True
    off = cloud.client.put(
        "/api/v1/policy", json={"offline_redemption": False}, headers=cloud.admin
    )
    assert off.json() == {"offline_redemption": False}
    assert cloud.changes().offline_redemption is False
    assert cloud.ledger.offline_redemption() is False
    wrong = cloud.client.put(
        "/api/v1/policy", json={"offline_redemption": "no"}, headers=cloud.admin
    )
    problem_of(wrong, 422, "invalid")


def test_hq_reports_and_stations(cloud: Cloud) -> None:
    stations = cloud.client.get("/api/v1/stations", headers=cloud.admin).json()
    assert {row["station_id"] for row in stations} == {"S001", "S002"}
    assert not any("token" in key for row in stations for key in row)
    assert cloud.client.get("/api/v1/reports/variance", headers=cloud.admin).json() == []
    assert cloud.client.get("/api/v1/quarantine", headers=cloud.admin).json() == []
    problem_of(cloud.client.get("/api/v1/nothing-here", headers=cloud.admin), 404, "not_found")


def test_healthz_and_metrics(cloud: Cloud, cloud_db_url: str) -> None:
    health = cloud.client.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "dialect": cloud.ledger.dialect}
    assert health.json()["dialect"] == cloud_db_url.partition(":")[0].partition("+")[0]

    log = EventLog("S001")
    for kind, payload in member_events(cloud.keys, "13800138000")[1]:
        log.add(kind, payload)
    assert cloud.push(log.batch()).status_code == 200
    for kind, payload in member_events(cloud.keys, "13900139000")[1] * 2:
        log.add(kind, payload)
    problem_of(cloud.push(log.batch(first=3)), 409, "sequence_gap")
    cloud.changes()
    text = cloud.client.get("/metrics").text
    # prometheus_client writes every value as a float
    assert "loyalpump_cloud_pushes_total 1.0\n" in text
    assert 'loyalpump_cloud_events_total{result="applied"} 1.0\n' in text
    assert 'loyalpump_cloud_push_conflicts_total{kind="sequence_gap"} 1.0\n' in text
    assert "loyalpump_cloud_changes_pages_total 1.0\n" in text
    assert (
        'loyalpump_cloud_http_request_duration_seconds_count{route="/api/v1/sync/events"} 2.0'
        in text
    )
    assert "# TYPE loyalpump_cloud_http_request_duration_seconds histogram\n" in text
    assert "loyalpump_cloud_database_up 1.0\n" in text
    assert "loyalpump_cloud_ledger{quantity=" in text
    assert "docs" in cloud.client.get("/docs").text.lower()


def test_config_seeds_the_switch_only_on_a_new_chain(cloud_db_url: str, tmp_path: Path) -> None:
    settings = CloudSettings.model_validate(
        {
            "cloud": {"data_dir": str(tmp_path / "cloud"), "database_url": cloud_db_url},
            "offline_redemption": {"enabled": False, "points": 1000, "per_member_cap": 100},
        }
    )
    ledger = open_ledger(settings)
    try:
        assert ledger.offline_redemption() is False
        ledger.add_station("S001", "first", datetime(2026, 12, 1, tzinfo=UTC))
        ledger.set_offline_redemption(True, datetime(2026, 12, 1, tzinfo=UTC))
    finally:
        ledger.close()
    reopened = open_ledger(settings)
    try:
        assert reopened.offline_redemption() is True  # HQ's later choice stands
        page = reopened.changes("S001", 0, 10, datetime(2026, 12, 1, tzinfo=UTC))
        assert page.allowance is not None
        assert (page.allowance.points, page.allowance.per_member_cap) == (1000, 100)
    finally:
        reopened.close()


def test_review_routes_are_hqs_alone_and_answer_with_reasons(cloud: Cloud) -> None:
    put = cloud.client.put
    body = {"suspended": True, "by": "hq-li", "reason": "too many flags"}
    assert put("/api/v1/stations/S001/review", json=body).status_code == 401
    assert (
        put("/api/v1/stations/S001/review", json=body, headers=cloud.station()).status_code == 403
    )
    done = put("/api/v1/stations/S001/review", json=body, headers=cloud.admin)
    assert done.status_code == 200, done.text
    assert (done.json()["suspended"], done.json()["suspended_reason"]) == (True, "too many flags")
    assert cloud.changes().offline_redemption is False  # S001 hears it at its next pull
    missing = put("/api/v1/stations/S404/review", json=body, headers=cloud.admin)
    assert (missing.status_code, missing.json()["error"]) == (404, "station.unknown")
    bad = put("/api/v1/stations/S001/review", json={"suspended": "yes"}, headers=cloud.admin)
    assert bad.status_code == 422
    lifted = put("/api/v1/stations/S001/review", json={"suspended": False}, headers=cloud.admin)
    assert lifted.json()["suspended"] is False and cloud.changes().offline_redemption is True

    listed = cloud.client.get("/api/v1/review", headers=cloud.admin)
    assert listed.status_code == 200 and listed.json() == []
    decision = {"approve": True, "by": "hq-li"}
    unknown = cloud.client.post(
        "/api/v1/adjustments/nope/decision", json=decision, headers=cloud.admin
    )
    assert (unknown.status_code, unknown.json()["error"]) == (404, "adjustment.unknown")
    wrong = cloud.client.get("/api/v1/adjustments?status=maybe", headers=cloud.admin)
    assert wrong.status_code == 422
    flags = cloud.client.get("/api/v1/review/flags?open=false", headers=cloud.admin)
    assert flags.status_code == 200 and flags.json() == []
