"""The station CLI as a user runs it: a real process, real files, exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from edge_agent.services.station import open_station
from edge_agent.settings import load_settings
from edge_agent.web.app import build_app
from edge_agent.web.auth import COOKIE_NAME
from tests.support import RULESETS, SHANGHAI, assert_refused

LOYALPUMP = str(Path(sys.executable).with_name("loyalpump"))


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [LOYALPUMP, *args], capture_output=True, text=True, timeout=60, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}: {result.stderr}")
    return result


def run_json(*args: str) -> Any:
    return json.loads(run(*args, "--json").stdout)


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "station.toml"
    path.write_text(
        '[station]\nid = "S001"\ndata_dir = "data"\ntimezone = "Asia/Shanghai"\n',
        encoding="utf-8",
    )
    run("edge", "init", "--config", str(path))
    run("edge", "rules", "load", "--config", str(path), str(RULESETS / "field-examples.json"))
    return str(path)


def test_init_is_idempotent(config: str) -> None:
    again = run("edge", "init", "--config", config)
    assert "store ready" in again.stdout


def test_field_examples_through_the_cli(config: str) -> None:
    member = run_json(
        "edge",
        "member",
        "add",
        "-c",
        config,
        "--phone",
        "+86 139-0013-9000",
        "--plate",
        "粤b·d12345",
        "--name",
        "李四",
    )
    assert member["phone_masked"] == "139****9000"
    assert member["plates"] == ["粤BD12345"]
    monday, tuesday = _in_last_week(1), _in_last_week(2)  # a manual sale is 7 days old at most
    sales = [
        ("92", "40.00", "300.00", monday, 40),  # Monday: 1 point per litre
        ("0", "41.00", "290.00", monday, 20),  # diesel: 1 per 2 litres, floor
        ("92", "30.00", "225.00", tuesday, 60),  # Tuesday member day: double
    ]
    for grade, litres, amount, at, points in sales:
        extra = ("-c", config, "--nozzle", "1", "--at", at, "--plate", "粤BD12345")
        sale = run_json(*_sale_add(*extra, pump="3", grade=grade, litres=litres, amount=amount))
        assert sale["points"] == points, sale
    shown = run_json("edge", "member", "show", "-c", config, "--phone", "13900139000")
    assert {key: shown[key] for key in ("phone_masked", "plates", "tier", "points")} == {
        "phone_masked": "139****9000",
        "plates": ["粤BD12345"],
        "tier": "standard",
        "points": 120,
    }
    assert shown["member_id"] == member["member_id"]
    listed = run_json("edge", "sales", "-c", config, "--limit", "3")
    assert sorted(row["points"] for row in listed) == [20, 40, 60]
    first = next(row for row in listed if row["points"] == 60)
    assert first["source"] == "manual"
    assert (first["pump"], first["nozzle"], first["grade"]) == (3, 1, "92")
    assert (first["litres"], first["amount"], first["unit_price"]) == ("30.00", "225.00", "7.50")
    assert first["ended_at"] == tuesday + "+08:00"
    assert first["member_id"] == member["member_id"]


def test_redeem_and_refusal_beyond_balance(config: str) -> None:
    run("edge", "member", "add", "-c", config, "--phone", "13800138000", "--plate", "京A12345")
    extra = ("-c", config, "--at", _in_last_week(1), "--phone", "13800138000")
    run(*_sale_add(*extra, litres="150", amount="1125"))
    spent = run_json("edge", "redeem", "-c", config, "--plate", "京A12345", "--points", "100")
    assert (spent["value"], spent["balance_after"]) == ("1.00", 50)
    refused = run(
        "edge", "redeem", "-c", config, "--phone", "13800138000", "--points", "100", check=False
    )
    assert_refused(refused, "not enough points", "50 spendable")
    assert (
        run_json("edge", "member", "show", "-c", config, "--phone", "13800138000")["points"] == 50
    )
    verified = run_json("edge", "verify", "-c", config)
    assert verified == {"ok": True, "problems": [], "cloud_disagreements": []}


def test_status_reports_store_backlog_and_rules(config: str) -> None:
    run("edge", "member", "add", "-c", config, "--phone", "13800138000")
    status = run_json("edge", "status", "-c", config)
    assert status["station_id"] == "S001"
    assert status["rules"]["version"] == 1
    assert status["sync"]["backlog"] == 1
    assert status["sync"]["last_contact"] is None
    assert status["store"]["members"] == 1


def test_user_add_and_duplicate(config: str) -> None:
    added = run(
        "edge", "user", "add", "-c", config, "--name", "wang", "--role", "cashier", "--pin", "4321"
    )
    assert "wang" in added.stdout
    again = run(
        "edge",
        "user",
        "add",
        "-c",
        config,
        "--name",
        "wang",
        "--role",
        "cashier",
        "--pin",
        "4321",
        check=False,
    )
    assert_refused(again, "already exists")


def _in_last_week(weekday: int) -> str:
    """A station time (ISO, no offset) on `weekday` (Monday 1) within the last 7 days:
    now, or 23:00 of the latest such day before today."""
    moment = datetime.now(SHANGHAI).replace(microsecond=0) - timedelta(minutes=5)
    while moment.isoweekday() != weekday:
        moment = moment.replace(hour=23, minute=0, second=0) - timedelta(days=1)
    return moment.replace(tzinfo=None).isoformat()


def _sale_add(
    *extra: str, pump: str = "1", grade: str = "92", litres: str = "1", amount: str = "5"
) -> tuple[str, ...]:
    """`edge sale add` of a valid sale but for what the case changes."""
    return ("edge", "sale", "add", "--pump", pump, "--grade", grade, "--litres", litres,
            "--amount", amount, *extra)  # fmt: skip


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("edge", "member", "add", "--phone", "1380013800O"), "letters"),
        (("edge", "member", "add", "--phone", "13800138000", "--plate", "京AI2345"), "I or O"),
        (("edge", "member", "show", "--phone", "13700137000"), "not a member"),
        (("edge", "member", "show"), "exactly one of --phone or --plate"),
        (_sale_add(litres="abc"), "--litres"),
        (_sale_add(litres="1.2345"), "decimal places"),
        (_sale_add(pump="x"), "pump"),
        (_sale_add("--at", "yesterday"), "ISO 8601"),
        (("edge", "redeem", "--phone", "13800138000", "--points", "-5"), "not a member"),
        (("edge", "user", "add", "--name", "li", "--role", "boss", "--pin", "1234"), "role"),
        (("edge", "user", "add", "--name", "li", "--role", "cashier", "--pin", "1111"), "repeated"),
        (("edge", "sales", "--limit", "0"), "limit"),
        (("edge", "no-such-command"), "No such command"),
    ],
)
def test_bad_input_exits_2_with_one_line(config: str, args: tuple[str, ...], fragment: str) -> None:
    assert_refused(run(*args, "--config", config, check=False), fragment)


@pytest.mark.slow  # a CLI process per case (~6 s each on a busy machine)
def test_the_cli_and_the_api_refuse_absurd_manual_sales_with_the_same_reason(
    config: str,
) -> None:
    """Exit 2 and one line, the very reason the JSON API gives in English (and nothing
    recorded by either); the Chinese the page shows is the same template's."""
    week_and_a_day = datetime.now(SHANGHAI) - timedelta(days=8)
    at = week_and_a_day.replace(microsecond=0, tzinfo=None).isoformat()
    cases: list[tuple[tuple[str, ...], dict[str, Any]]] = [
        (("--grade", "98"), {"grade": "98"}),
        (("--litres", "5000", "--amount", "1"), {"litres": "5000", "amount": "1"}),
        (("--litres", "0", "--amount", "0"), {"litres": "0", "amount": "0"}),
        (("--amount", "1"), {"amount": "1"}),
        (("--amount", "310", "--unit-price", "7.50"), {"amount": "310", "unit_price": "7.50"}),
        (("--at", at), {"ended_at": at}),
    ]
    base = ("edge", "sale", "add", "-c", config, "--pump", "2", "--grade", "92")
    lines = []
    for options, _ in cases:
        result = run(*base, "--litres", "40", "--amount", "300", *options, check=False)
        assert_refused(result)
        lines.append(result.stderr.strip())
    station = open_station(load_settings(Path(config)))
    try:
        app = build_app(station)
        session = app.state.ctx.sessions.create("mia", "manager")
        client = TestClient(app, base_url="http://127.0.0.1")
        client.cookies.set(COOKIE_NAME, session.token)
        client.headers["X-CSRF-Token"] = session.csrf_token
        valid = {"pump": 2, "grade": "92", "litres": "40", "amount": "300"}
        for line, (_, change) in zip(lines, cases, strict=True):
            answer = client.post("/api/v1/sales", params={"lang": "en"}, json={**valid, **change})
            assert answer.status_code == 422, answer.text
            assert line == f"loyalpump: error: {answer.json()['message']}"
        assert client.get("/api/v1/sales").json()["sales"] == []
    finally:
        station.close()
    assert run_json("edge", "sales", "-c", config) == []


def test_bad_rule_set_names_the_json_path(config: str, tmp_path: Path) -> None:
    document = json.loads((RULESETS / "field-examples.json").read_text(encoding="utf-8"))
    document["version"] = 9
    document["earn"][2]["points_per_litre"] = "-1"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document), encoding="utf-8")
    assert_refused(
        run("edge", "rules", "load", "-c", config, str(bad), check=False),
        "$.earn[2].points_per_litre",
    )
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    assert_refused(run("edge", "rules", "load", "-c", config, str(broken), check=False), "$")
    assert_refused(
        run("edge", "rules", "load", "-c", config, str(tmp_path / "none.json"), check=False),
        "none.json",
    )


def test_a_changed_document_cannot_reuse_a_version(config: str, tmp_path: Path) -> None:
    document = json.loads((RULESETS / "field-examples.json").read_text(encoding="utf-8"))
    document["name"] = "sneaky edit"
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(document), encoding="utf-8")
    assert_refused(
        run("edge", "rules", "load", "-c", config, str(changed), check=False), "already installed"
    )


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ('[station]\nid = "S001"\ndata_dir = "d"\ncolour = "red"\n', "station.colour: unknown key"),
        ('[station]\nid = "S001"\ndata_dir = "d"\n[web]\nport = "eighty"\n', "web.port"),
        ('[station]\nid = "S001"\ndata_dir = "d"\ntimezone = "Mars/Olympus"\n', "time zone"),
        ('[station\nid = "S001"\n', "not valid TOML"),
        (
            '[station]\nid = "S001"\ndata_dir = "d"\n[[drivers]]\nkind = "dart"\nport = "/dev/x"\n'
            "baudrate = 4800\n",
            "drivers.0.dart.baudrate",
        ),
        ('[station]\ndata_dir = "d"\n', "station.id"),
    ],
)
def test_broken_config_is_refused_with_the_key(tmp_path: Path, toml: str, fragment: str) -> None:
    path = tmp_path / "station.toml"
    path.write_text(toml, encoding="utf-8")
    assert_refused(run("edge", "init", "--config", str(path), check=False), fragment)


def test_missing_config_and_uninitialised_store(tmp_path: Path) -> None:
    assert_refused(
        run("edge", "status", "-c", str(tmp_path / "nope.toml"), check=False), "no such file"
    )
    path = tmp_path / "station.toml"
    path.write_text('[station]\nid = "S001"\ndata_dir = "d"\n', encoding="utf-8")
    assert_refused(run("edge", "status", "-c", str(path), check=False), "edge init")
