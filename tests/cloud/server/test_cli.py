"""`loyalpump cloud …` as HQ runs it: real processes, a real SQLite ledger, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud_sync.cloud.server.keyfiles import load_chain_keys
from cloud_sync.cloud.server.run import open_ledger
from cloud_sync.cloud.server.settings import DATABASE_URL_ENV, load_cloud_settings
from cloud_sync.core.wire import PushRequest
from tests.support import RULESETS, assert_refused, free_port

from .helpers import ADMIN_TOKEN, EventLog, member_events

LOYALPUMP = str(Path(sys.executable).with_name("loyalpump"))
ENV = {key: value for key, value in os.environ.items() if key != DATABASE_URL_ENV}


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [LOYALPUMP, "cloud", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=ENV,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}: {result.stderr}")
    return result


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "cloud.toml"
    path.write_text(
        f'[cloud]\ndata_dir = "data"\nport = {free_port()}\nadmin_token = "{ADMIN_TOKEN}"\n',
        encoding="utf-8",
    )
    return path


def test_station_add_prints_its_token_once(config: Path) -> None:
    added = run("station", "add", "--config", str(config), "--id", "S001", "--name", "东站")
    token = added.stdout.strip().splitlines()[-1]
    as_json = json.loads(run("station", "add", "-c", str(config), "--id", "S002", "--json").stdout)
    assert as_json["station_id"] == "S002"
    ledger = open_ledger(load_cloud_settings(config))
    try:
        assert ledger.station_for_token(token) == "S001"
        assert ledger.station_for_token(as_json["token"]) == "S002"
    finally:
        ledger.close()
    listed = json.loads(run("station", "list", "-c", str(config), "--json").stdout)
    assert [row["station_id"] for row in listed] == ["S001", "S002"]
    assert_refused(run("station", "add", "-c", str(config), "--id", "S001", check=False), "S001")
    assert_refused(run("station", "add", "-c", str(config), "--id", "S 1", check=False), "--id")


def test_rules_publish(config: Path, tmp_path: Path) -> None:
    published = run("rules", "publish", "--config", str(config), str(RULESETS / "sample.json"))
    assert "rule set 3 published" in published.stdout
    taken = json.loads((RULESETS / "sample.json").read_text(encoding="utf-8"))
    taken["name"] = "another draft"
    (tmp_path / "taken.json").write_text(json.dumps(taken, ensure_ascii=False), encoding="utf-8")
    refused = run("rules", "publish", "-c", str(config), str(tmp_path / "taken.json"), check=False)
    assert_refused(refused, "3")

    broken = json.loads((RULESETS / "sample.json").read_text(encoding="utf-8"))
    broken["version"] = 4
    broken["earn"][0]["points_per_litre"] = "lots"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken, ensure_ascii=False), encoding="utf-8")
    refused = run("rules", "publish", "-c", str(config), str(path), check=False)
    assert_refused(refused, "$.earn[0].points_per_litre")
    missing = run("rules", "publish", "-c", str(config), str(tmp_path / "nope.json"), check=False)
    assert_refused(missing, "nope.json")


def test_member_show_and_policy(config: Path) -> None:
    settings = load_cloud_settings(config)
    ledger = open_ledger(settings)
    try:
        token = ledger.add_station("S001", "east", datetime.now(UTC))
        assert token
        member_id, events = member_events(
            load_chain_keys(settings.data_dir), "13800138000", "京A12345"
        )
        log = EventLog("S001")
        for kind, payload in events:
            log.add(kind, payload)
        ledger.push("S001", PushRequest.model_validate(log.batch()), datetime.now(UTC))
    finally:
        ledger.close()

    shown: dict[str, Any] = json.loads(
        run("member", "show", "-c", str(config), "--phone", "13800138000", "--json").stdout
    )
    assert shown["member_id"] == member_id
    assert shown["phone_masked"] == "138****8000"
    assert isinstance(shown["points"], int)
    for key in ("plates", "tier"):
        assert key in shown
    by_plate = json.loads(
        run("member", "show", "-c", str(config), "--plate", "京a12345", "--json").stdout
    )
    assert by_plate["member_id"] == member_id
    by_id = json.loads(run("member", "show", "-c", str(config), "--id", member_id, "--json").stdout)
    assert by_id["member_id"] == member_id
    assert_refused(run("member", "show", "-c", str(config), "--phone", "123", check=False))
    assert_refused(run("member", "show", "-c", str(config), check=False), "exactly one")

    assert "offline redemption: on" in run("policy", "-c", str(config)).stdout
    off = run("policy", "-c", str(config), "--offline-redemption", "off")
    assert "offline redemption: off" in off.stdout
    assert json.loads(run("policy", "-c", str(config), "--json").stdout) == {
        "offline_redemption": False
    }
    assert_refused(
        run("policy", "-c", str(config), "--offline-redemption", "maybe", check=False), "maybe"
    )


def test_a_broken_config_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "cloud.toml"
    path.write_text('[cloud]\ndata_dir = "data"\ncolour = "red"\n', encoding="utf-8")
    assert_refused(
        run("station", "add", "-c", str(path), "--id", "S001", check=False), "cloud.colour"
    )
    assert_refused(run("run", "-c", str(path), check=False), "cloud.colour", "unknown key")
    assert_refused(
        run("station", "add", "-c", str(tmp_path / "absent.toml"), "--id", "S1", check=False),
        "no such file",
    )


def test_run_serves_until_sigterm(config: Path) -> None:
    port = load_cloud_settings(config).cloud.port
    process = subprocess.Popen(
        [LOYALPUMP, "cloud", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        deadline = time.monotonic() + 20
        health = None
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()
                time.sleep(0.1)
        assert health is not None and health.status_code == 200
        assert health.json() == {"status": "ok", "dialect": "sqlite"}
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert f"listening on http://127.0.0.1:{port}" in stdout
    assert ADMIN_TOKEN not in stdout + stderr


def test_review_verbs_list_decide_and_lift(config: Path) -> None:
    settings = load_cloud_settings(config)
    ledger = open_ledger(settings)
    try:
        ledger.add_station("S001", "east", datetime.now(UTC))
        member_id, events = member_events(load_chain_keys(settings.data_dir), "13800138000")
        log = EventLog("S001")
        for kind, payload in events:
            log.add(kind, payload)
        log.add(  # beyond the 10,000 a station may adjust on its own: held for HQ
            "points.adjusted",
            {"member_id": member_id, "points": 20_000, "reason": "x", "at": _now_iso()},
        )
        log.add(  # no allowance: booked, flagged
            "points.redeemed",
            {"redemption_id": "R1", "member_id": member_id, "points": 100, "value_fen": 100,
             "at": _now_iso()},
        )  # fmt: skip
        ledger.push("S001", PushRequest.model_validate(log.batch()), datetime.now(UTC))
    finally:
        ledger.close()

    listed = json.loads(run("review", "list", "-c", str(config), "--json").stdout)
    assert [(r["station_id"], r["open_flags"], r["pending_adjustments"]) for r in listed] == [
        ("S001", 2, 1)
    ]
    flags = run("review", "flags", "-c", str(config)).stdout
    assert "redemption.no_allowance" in flags and "adjustment.pending" in flags
    (held,) = json.loads(run("review", "adjustments", "-c", str(config), "--json").stdout)
    approved = run("review", "approve", "-c", str(config), held["event_id"], "--by", "hq-li")
    assert "approved" in approved.stdout
    assert_refused(
        run("review", "decline", "-c", str(config), held["event_id"], "--by", "hq", check=False),
        "approved already",
    )
    shown = json.loads(run("member", "show", "-c", str(config), "--id", member_id, "--json").stdout)
    assert shown["points"] == 20_000 - 100
    run("review", "suspend", "-c", str(config), "--station", "S001", "--by", "hq-li")
    assert json.loads(run("review", "list", "-c", str(config), "--json").stdout)[0]["suspended"]
    run("review", "lift", "-c", str(config), "--station", "S001", "--by", "hq-li")
    assert "no station needs review" in run("review", "list", "-c", str(config)).stdout
    assert_refused(
        run("review", "lift", "-c", str(config), "--station", "S404", "--by", "hq", check=False),
        "S404",
    )


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()
