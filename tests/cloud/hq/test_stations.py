"""The HQ stations screen against a real ledger, on SQLite and PostgreSQL: the figures of a
small seeded chain, health by last contact, enrol/rotate/revoke with the token shown once
and never audited, escaping, and the CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud_sync.cloud.ledger.audit import audit_entries
from cloud_sync.cloud.ledger.reports import variance_report

from .stations_support import ADMIN, HqCloud, hq_cloud, seed_chain


@pytest.fixture
def cloud(cloud_db_url: str, tmp_path: Path) -> Iterator[HqCloud]:
    with hq_cloud(tmp_path, cloud_db_url) as opened:
        yield opened


def _list(cloud: HqCloud, **params: Any) -> dict[str, Any]:
    answer = cloud.client.get("/api/v1/hq/stations", params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _by_id(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in body["stations"]}


def test_the_list_shows_each_stations_figures(cloud: HqCloud) -> None:
    seed_chain(cloud)
    cloud.clock.advance(minutes=5)
    rows = _by_id(_list(cloud))
    one, two = rows["S001"], rows["S002"]
    assert (one["name"], one["health"], one["epoch"], one["high_water"]) == (
        "东站",
        "online",
        1,
        11,
    )
    assert one["keys_uploaded_at"] is not None and two["keys_uploaded_at"] is None
    assert (one["rule_version"], one["newest_version"], one["rule_current"]) == (3, 3, True)
    # 100 redeemed within the allowance; the 10 without one is flagged, not counted in it.
    assert (one["allowance_points"], one["allowance_used"], one["allowance_remaining"]) == (
        50_000,
        100,
        49_900,
    )
    assert (one["variance_points"], one["variance_sales"]) == (40, 1)
    report = cloud.ledger.db.read(variance_report)
    assert sum(r["variance"] for r in report if r["station_id"] == "S001") == 40
    assert (one["open_flags"], one["suspended"], one["quarantined"]) == (2, False, 1)
    assert two["health"] == "never" and two["high_water"] is None
    assert two["rule_version"] is None and two["allowance_points"] is None
    assert (two["variance_points"], two["open_flags"], two["quarantined"]) == (0, 0, 0)

    detail = cloud.client.get("/api/v1/hq/stations/S001", headers=ADMIN).json()
    assert [q["kind"] for q in detail["recent_quarantine"]] == ["sale.reversed"]
    assert detail["recent_quarantine"][0]["reason"].startswith("sale.unknown")
    assert {f["code"] for f in detail["flags"]} == {
        "redemption.no_allowance",
        "sale.points_over_rules",
    }
    assert [a["status"] for a in detail["adjustments"]] == ["pending"]
    assert [(a["points"], a["used"]) for a in detail["allowances"]] == [(50_000, 100)]
    days = detail["sales_days"]
    assert len(days) == 30 and days[-1]["day"] == "2026-03-02"
    assert days[-1] == {
        "day": "2026-03-02",
        "sales": 4,
        "litres_ml": 140_000,
        "amount_fen": 105_000,
    }
    assert days[-3]["sales"] == 2 and sum(d["sales"] for d in days) == 6
    missing = cloud.client.get("/api/v1/hq/stations/S999", headers=ADMIN)
    assert (missing.status_code, missing.json()["error"]) == (404, "station.unknown")


def test_health_follows_the_last_contact(cloud: HqCloud) -> None:
    st = cloud.station
    st.register("13800138000", cloud.clock())
    cloud.ledger.push("S001", st.request(), cloud.clock())

    def health() -> tuple[str, dict[str, int]]:
        body = _list(cloud)
        return _by_id(body)["S001"]["health"], body["counts"]

    cloud.clock.advance(minutes=59)
    assert health() == ("online", {"online": 1, "late": 0, "offline": 0, "never": 1})
    cloud.clock.advance(minutes=2)
    assert health() == ("late", {"online": 0, "late": 1, "offline": 0, "never": 1})
    cloud.clock.advance(hours=22, minutes=58)
    assert health()[0] == "late"
    cloud.clock.advance(minutes=2)
    assert health() == ("offline", {"online": 0, "late": 0, "offline": 1, "never": 1})

    only = _list(cloud, health="offline")
    assert [r["id"] for r in only["stations"]] == ["S001"]
    assert only["counts"]["never"] == 1  # the counts are the chain's, whatever the filter
    assert [r["id"] for r in _list(cloud, q="西")["stations"]] == ["S002"]
    assert [r["id"] for r in _list(cloud, q="s001")["stations"]] == ["S001"]
    assert [r["id"] for r in _list(cloud, sort="health")["stations"]] == ["S001", "S002"]
    assert [r["id"] for r in _list(cloud, sort="id", desc=True)["stations"]] == ["S002", "S001"]
    bad = cloud.client.get("/api/v1/hq/stations", params={"sort": "token"}, headers=ADMIN)
    assert bad.status_code == 422
    long = cloud.client.get("/api/v1/hq/stations", params={"q": "x" * 65}, headers=ADMIN)
    assert long.status_code == 422


def _audit_text(cloud: HqCloud) -> str:
    return repr(cloud.ledger.db.read(lambda conn: audit_entries(conn, limit=100)))


def test_enrol_shows_the_token_once_and_it_syncs(cloud: HqCloud) -> None:
    answer = cloud.client.post(
        "/api/v1/hq/stations", json={"station_id": "S-003", "name": "北站"}, headers=ADMIN
    )
    assert answer.status_code == 201, answer.text
    token = answer.json()["token"]
    assert answer.json()["station_id"] == "S-003" and len(token) >= 40
    assert cloud.sync_changes(token) == 200
    assert token not in cloud.client.get("/api/v1/hq/stations", headers=ADMIN).text
    assert token not in cloud.client.get("/api/v1/hq/stations/S-003", headers=ADMIN).text
    assert token not in cloud.client.get("/hq/stations/S-003", headers=ADMIN).text
    entries = cloud.ledger.db.read(lambda conn: audit_entries(conn, target="S-003"))
    assert [(e["actor"], e["action"]) for e in entries] == [("wang", "station.enrol")]
    assert token not in _audit_text(cloud)

    again = cloud.client.post("/api/v1/hq/stations", json={"station_id": "S-003"}, headers=ADMIN)
    assert (again.status_code, again.json()["error"]) == (409, "station.exists")
    bad_id = cloud.client.post("/api/v1/hq/stations", json={"station_id": "S 4"}, headers=ADMIN)
    assert (bad_id.status_code, bad_id.json()["error"]) == (422, "station.invalid")
    bad_name = cloud.client.post(
        "/api/v1/hq/stations", json={"station_id": "S4", "name": "a\u0007b"}, headers=ADMIN
    )
    assert (bad_name.status_code, bad_name.json()["error"]) == (422, "station.name")
    nobody = cloud.client.post("/api/v1/hq/stations", json={"station_id": "S5"})
    assert nobody.status_code == 401
    assert len(cloud.ledger.db.read(audit_entries)) == 1


def test_revoke_stops_the_token_at_once_and_rotate_reinstates(cloud: HqCloud) -> None:
    old = cloud.tokens["S002"]
    assert cloud.sync_changes(old) == 200
    answer = cloud.client.post("/api/v1/hq/stations/S002/revoke", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    assert cloud.sync_changes(old) == 401
    assert cloud.sync_changes(cloud.tokens["S001"]) == 200  # the others go on
    row = _by_id(_list(cloud))["S002"]
    assert row["revoked_at"] == cloud.clock().isoformat() and row["name"] == "西站"
    twice = cloud.client.post("/api/v1/hq/stations/S002/revoke", headers=ADMIN)
    assert (twice.status_code, twice.json()["error"]) == (409, "station.revoked")
    unknown = cloud.client.post("/api/v1/hq/stations/S999/revoke", headers=ADMIN)
    assert unknown.status_code == 404

    rotated = cloud.client.post("/api/v1/hq/stations/S002/rotate", headers=ADMIN)
    assert rotated.status_code == 200
    new = rotated.json()["token"]
    assert cloud.sync_changes(new) == 200 and cloud.sync_changes(old) == 401
    assert _by_id(_list(cloud))["S002"]["revoked_at"] is None
    entries = cloud.ledger.db.read(lambda conn: audit_entries(conn, target="S002"))
    assert [e["action"] for e in entries] == ["station.rotate_token", "station.revoke"]
    assert entries[1]["before"] == {"name": "西站", "revoked_at": None}
    assert old not in _audit_text(cloud) and new not in _audit_text(cloud)


def test_a_station_name_is_escaped_on_the_pages(cloud: HqCloud) -> None:
    evil = '<script>alert("x")</script>'
    made = cloud.client.post(
        "/api/v1/hq/stations", json={"station_id": "S9", "name": evil}, headers=ADMIN
    )
    assert made.status_code == 201
    for page in ("/hq/stations", "/hq/stations/S9", "/hq/stations?q=%3Cscript%3E"):
        html = cloud.client.get(page, headers=ADMIN).text
        assert evil not in html, page
        assert "&lt;script&gt;alert(" in html, page


def test_the_csv_export_holds_the_list(cloud: HqCloud) -> None:
    seed_chain(cloud)
    cloud.clock.advance(hours=2)
    answer = cloud.client.get(
        "/api/v1/hq/stations", params={"format": "csv", "sort": "id"}, headers=ADMIN
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert [r["station_id"] for r in rows] == ["S001", "S002"]
    one = rows[0]
    assert (one["name"], one["health"], one["last_pushed_seq"], one["rule_version"]) == (
        "东站",
        "late",
        "11",
        "3",
    )
    assert (one["allowance_remaining"], one["variance_points"], one["open_flags"]) == (
        "49900",
        "40",
        "2",
    )
    assert (one["quarantined"], rows[1]["health"], rows[1]["last_pushed_seq"]) == ("1", "never", "")
    assert "token" not in answer.text
    days = cloud.client.get("/api/v1/hq/stations/S001", params={"format": "csv"}, headers=ADMIN)
    lines = days.content.decode("utf-8-sig").splitlines()
    assert (
        lines[0] == "day,sales,litres_ml,amount_fen" and lines[-1] == "2026-03-02,4,140000,105000"
    )
    xlsx = cloud.client.get("/api/v1/hq/stations", params={"format": "xlsx"}, headers=ADMIN)
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"


def test_the_pages_show_counts_and_detail(cloud: HqCloud) -> None:
    seed_chain(cloud)
    cloud.clock.advance(hours=2)
    html = cloud.client.get("/hq/stations?lang=en", headers=ADMIN).text
    assert 'data-testid="count-late"' in html and 'data-health="late"' in html
    assert 'id="enrol-form"' in html  # the admin token is an admin
    detail = cloud.client.get("/hq/stations/S001", headers=ADMIN).text
    assert 'data-testid="figure-sales-days"' in detail and "2026-03-02" in detail
    assert "2026-03-02 10:00" in detail  # pushed at 02:00 UTC: shown in the chain's zone
    assert cloud.client.get("/hq/stations", follow_redirects=False).status_code == 303


def test_an_empty_health_filter_means_all_and_a_wrong_one_is_refused(cloud: HqCloud) -> None:
    assert [r["id"] for r in _list(cloud, health="", q="")["stations"]] == ["S001", "S002"]
    bad = cloud.client.get("/api/v1/hq/stations", params={"health": "asleep"}, headers=ADMIN)
    assert (bad.status_code, bad.json()["error"]) == (422, "station.filter")
