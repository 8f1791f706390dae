"""Station trust end to end: a real `cloud run`, two stations driven through the real CLI,
and a stolen S002 token pushing forged events over HTTP.

What the issue's attack did (S002 attached a member to S001's sale and reversed another,
emptying a member's balance) is refused and flagged; S001's own later attach still lands; a
redemption id both stations typed is booked at both; an adjustment beyond the bound waits
for HQ, and S001's `edge verify` shows that disagreement until HQ answers and a manager
settles it.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_agent.services.sales import attach_member
from edge_agent.services.station import open_station
from edge_agent.settings import load_settings

from .chain import ADMIN_TOKEN, LOYALPUMP, CloudProcess

pytestmark = pytest.mark.slow

PHONE_1 = "13800138001"
PHONE_2 = "13900139002"


def _station_config(tmp_path: Path, station_id: str, cloud: CloudProcess) -> Path:
    token = cloud.add_station(station_id)
    home = tmp_path / station_id
    home.mkdir(mode=0o700)
    config = home / "station.toml"
    config.write_text(
        f'[station]\nid = "{station_id}"\ndata_dir = "{home / "data"}"\n'
        'timezone = "Asia/Shanghai"\n\n'
        f'[cloud]\nurl = "{cloud.url}"\ntoken = "{token}"\n\n'
        "[sale_limits]\nmax_litres = 1000\n",  # a truck stop: the big sale below is real
        encoding="utf-8",
    )
    return config


def _edge(config: Path, *args: str, code: int = 0) -> str:
    result = subprocess.run(
        [LOYALPUMP, "edge", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == code, (args, result.stdout, result.stderr)
    return result.stdout


def _edge_json(config: Path, *args: str) -> Any:
    return json.loads(_edge(config, *args, "--json"))


def _admin(cloud: CloudProcess, method: str, path: str, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    response = httpx.request(method, cloud.url + path, headers=headers, timeout=10, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


def _forged_push(cloud: CloudProcess, token: str, events: list[dict[str, Any]]) -> list[Any]:
    body = {
        "schema_version": 1,
        "station_id": "S002",
        "epoch": 1,
        "epoch_first_seq": 1,
        "events": events,
    }
    response = httpx.post(
        f"{cloud.url}/api/v1/sync/events",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


def _event(seq: int, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "seq": seq,
        "epoch": 1,
        "kind": kind,
        "payload": payload,
        "created_at": datetime.now(UTC).isoformat(),
    }


def test_a_stolen_station_token_cannot_touch_another_stations_sales_or_balances(
    tmp_path: Path, cloud: CloudProcess
) -> None:
    cloud.start()
    s1 = _station_config(tmp_path, "S001", cloud)
    s2_token = cloud.add_station("S002")  # the stolen token: only HTTP, no store
    _edge(s1, "init")
    _edge(s1, "sync")  # enrol and pull the published rules
    member = _edge_json(s1, "member", "add", "--phone", PHONE_1)["member_id"]
    paid = _edge_json(
        s1, "sale", "add", "--pump", "1", "--grade", "92", "--litres", "900.00",
        "--amount", "6750.00", "--phone", PHONE_1,
    )  # fmt: skip
    open_sale = _edge_json(
        s1, "sale", "add", "--pump", "2", "--grade", "92", "--litres", "30.00",
        "--amount", "225.00",
    )  # fmt: skip
    _edge(s1, "sync")
    assert _admin(cloud, "GET", f"/api/v1/members/{member}")["points"] == 900

    # S002's token pushes what the attack pushed: attach to S001's sale, reverse another.
    results = _forged_push(
        cloud,
        s2_token,
        [
            _event(
                1,
                "sale.member_attached",
                {
                    "sale_id": open_sale["sale_id"],
                    "member_id": member,
                    "points": 30,
                    "ledger": [{"kind": "earn", "points": 30, "expires_at": None}],
                    "at": datetime.now(UTC).isoformat(),
                },
            ),
            _event(
                2,
                "sale.reversed",
                {"sale_id": paid["sale_id"], "at": datetime.now(UTC).isoformat()},
            ),
        ],
    )
    assert [(r["status"], r["reason"].split(":")[0]) for r in results] == [
        ("rejected", "sale.foreign_station"),
        ("rejected", "sale.foreign_station"),
    ]
    assert _admin(cloud, "GET", f"/api/v1/members/{member}")["points"] == 900

    # S001's own attach of that sale is not blocked by the attempt.
    station = open_station(load_settings(s1))
    try:
        attach_member(station, open_sale["sale_id"], member, actor="cashier")
    finally:
        station.close()
    _edge(s1, "sync")
    assert _admin(cloud, "GET", f"/api/v1/members/{member}")["points"] == 930
    assert "ledger verified" in _edge(s1, "verify")

    # A redemption id typed at two stations is booked at both (here: S001 and a real S002).
    s2 = _station_config(tmp_path, "S002-real", cloud)
    _edge(s2, "init")
    _edge(s2, "sync")
    _edge_json(s2, "member", "add", "--phone", PHONE_2)
    _edge(
        s2, "sale", "add", "--pump", "1", "--grade", "92", "--litres", "400.00",
        "--amount", "3000.00", "--phone", PHONE_2,
    )  # fmt: skip
    _edge(s2, "sync")
    _edge(s1, "redeem", "--phone", PHONE_1, "--points", "200", "--id", "R1")
    _edge(s2, "redeem", "--phone", PHONE_2, "--points", "200", "--id", "R1")
    _edge(s1, "sync")
    _edge(s2, "sync")
    quarantine = _admin(cloud, "GET", "/api/v1/quarantine")
    assert {q["station_id"] for q in quarantine} == {"S002"}  # the forged events only
    assert _admin(cloud, "GET", f"/api/v1/members/{member}")["points"] == 730

    # A manager's adjustment beyond the bound: the station books it, the cloud holds it.
    _edge(s1, "adjust", "--phone", PHONE_1, "--points", "50000", "--reason", "pump fault")
    _edge(s1, "sync")
    assert _admin(cloud, "GET", f"/api/v1/members/{member}")["points"] == 730
    verdict = _edge(s1, "verify", code=1)
    assert "held for HQ" in verdict and "adjustment.pending" in verdict
    status = _edge_json(s1, "status")
    assert status["sync"]["cloud_disagreements"]["open"] == 1

    review = {row["station_id"]: row for row in _admin(cloud, "GET", "/api/v1/review")}
    assert review["S002"]["open_flags"] == 2
    assert review["S001"]["pending_adjustments"] == 1 and review["S001"]["open_flags"] == 1
    (held,) = _admin(cloud, "GET", "/api/v1/adjustments")
    decided = _admin(
        cloud,
        "POST",
        f"/api/v1/adjustments/{held['event_id']}/decision",
        json={"approve": True, "by": "hq-li"},
    )
    assert decided["status"] == "approved"
    assert _admin(cloud, "GET", f"/api/v1/members/{member}")["points"] == 50_730
    _edge(s1, "settle", held["event_id"], "--user", "manager-wang")
    assert "ledger verified" in _edge(s1, "verify")

    metrics = httpx.get(f"{cloud.url}/metrics", timeout=10).text
    assert 'loyalpump_cloud_ledger{quantity="station_flags_open"} 2.0' in metrics
    assert 'loyalpump_cloud_ledger{quantity="adjustments_pending"} 0.0' in metrics
    ledger = cloud.open_ledger()
    try:
        assert ledger.ledger_problems() == []
    finally:
        ledger.close()
