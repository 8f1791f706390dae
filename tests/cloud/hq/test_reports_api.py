"""The reports' JSON and downloads under /api/v1/hq/reports/…, and `loyalpump cloud report`
/ `aggregates`, over a seeded chain on both backends."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import update

from cloud_sync.cloud.ledger.schema import agg_points_month

from .conftest import ADMIN, Hq
from .test_aggregates import balanced

LOYALPUMP = str(Path(sys.executable).with_name("loyalpump"))


NAMES = ("dashboard", "liability", "sales", "sales-hours", "members")


def test_every_report_answers_401_without_the_token(hq: Hq) -> None:
    for name in NAMES:
        answer = hq.client.get(f"/api/v1/hq/reports/{name}")
        assert answer.status_code == 401, name
        assert answer.json()["error"] == "unauthorized"
        assert hq.client.get(f"/api/v1/hq/reports/{name}?format=csv").status_code == 401


def test_dashboard_json(hq: Hq) -> None:
    answer = hq.client.get("/api/v1/hq/reports/dashboard", params={"range": "30d"}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert (data["from"], data["to"], data["station"]) == ("2026-02-01", "2026-03-02", None)
    kpis = {k["key"]: k for k in data["kpis"]}
    # The last 30 days: five member sales, one anonymous, the reversed one left out.
    assert kpis["sales"]["value"] == 6
    assert kpis["litres_ml"]["value"] == 192_500
    assert kpis["amount_fen"]["value"] == 144_375
    assert kpis["points_redeemed"]["value"] == 100
    assert kpis["points_expired"]["value"] == 40
    assert kpis["buyers"]["value"] == 3
    assert kpis["new_members"]["value"] == 1  # the phone registered again was merged
    assert kpis["sales"]["previous"] == 1 and kpis["sales"]["change"] == 5
    assert data["outstanding"]["points"] == 189
    assert data["outstanding"]["yuan_fen"] == 189  # 100 points buy one yuan
    days = data["series"]["days"]
    assert len(days) == 30 and days[-1]["day"] == "2026-03-02"
    assert sum(sum(d["litres_ml_by_grade"].values()) for d in days) == 192_500
    assert data["series"]["grades"] == ["92", "95"]
    states = {s["station_id"]: s["state"] for s in data["stations"]}
    assert states == {"S001": "online", "S002": "late", "S003": "never"}
    one = hq.client.get(
        "/api/v1/hq/reports/dashboard", params={"range": "7d", "station": "S002"}, headers=ADMIN
    ).json()
    assert {k["key"]: k["value"] for k in one["kpis"]}["litres_ml"] == 97_000


def test_liability_json_balances_and_names_the_chain_rows(hq: Hq) -> None:
    answer = hq.client.get(
        "/api/v1/hq/reports/liability",
        params={"range": "custom", "from": "2025-03-02", "to": "2026-03-02"},
        headers=ADMIN,
    )
    assert answer.status_code == 200, answer.text
    rows = answer.json()["rows"]
    balanced(rows)
    chain = [r for r in rows if r["station_id"] == "*"]
    assert chain[-1]["month"] == "2026-03" and chain[-1]["closing"] == 189
    assert chain[-1]["closing_fen"] == 189
    assert answer.json()["expiring"][0]["days"] == 30


def test_sales_downloads_as_csv_and_xlsx(hq: Hq) -> None:
    params = {"range": "custom", "from": "2026-01-01", "to": "2026-03-02", "format": "csv"}
    answer = hq.client.get("/api/v1/hq/reports/sales", params=params, headers=ADMIN)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    text = answer.content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["日期", "油站", "油品", "笔数", "会员笔数", "升数", "金额"]
    assert sum(int(r["笔数"]) for r in rows) == hq.seeded.sales
    assert {r["油站"] for r in rows} == {"S001", "S002"}
    assert sum(float(r["升数"]) for r in rows) == pytest.approx(hq.seeded.litres_ml / 1000)
    params["format"] = "xlsx"
    params["lang"] = "en"
    answer = hq.client.get("/api/v1/hq/reports/sales", params=params, headers=ADMIN)
    assert answer.status_code == 200
    sheet = load_workbook(io.BytesIO(answer.content)).active
    assert sheet is not None
    table = list(sheet.iter_rows(values_only=True))
    assert table[0][:4] == ("Day", "Station", "Grade", "Sales")
    assert sum(int(str(r[3] or 0)) for r in table[1:]) == hq.seeded.sales
    assert sum(int(str(r[6] or 0)) for r in table[1:]) == hq.seeded.amount_fen


def test_members_json_and_bad_input(hq: Hq) -> None:
    data = hq.client.get("/api/v1/hq/reports/members", headers=ADMIN).json()
    assert sum(r["members"] for r in data["rfm"]["segments"]) == 3
    assert data["tiers"] == [{"tier": "standard", "members": 3}]
    assert {r["group"]: r["members"] for r in data["activity"]}["active_30d"] == 3
    for params, code in (
        ({"range": "custom", "from": "2026-03-02", "to": "2026-01-01"}, "report.range"),
        ({"range": "custom", "from": "2020-01-01", "to": "2026-01-01"}, "report.range"),
        ({"range": "custom", "from": "yesterday"}, "report.range"),
        ({"station": "S999"}, "report.station"),
    ):
        answer = hq.client.get("/api/v1/hq/reports/sales", params=params, headers=ADMIN)
        assert answer.status_code == 422, params
        assert answer.json()["error"] == code
    assert hq.client.get("/api/v1/hq/reports/nope", headers=ADMIN).status_code == 422


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOYALPUMP, "cloud", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_cli_report_and_aggregates(hq: Hq, tmp_path: Path) -> None:
    config = str(hq.config)
    shown = _cli(
        "report",
        "liability",
        "--config",
        config,
        "--from",
        "2026-01-01",
        "--to",
        "2026-03-02",
        "--format",
        "json",
    )
    assert shown.returncode == 0, shown.stderr
    document: dict[str, Any] = json.loads(shown.stdout)
    assert [r["closing"] for r in document["rows"] if r["station_id"] == "*"] == [90, 159, 189]
    out = tmp_path / "sales.xlsx"
    made = _cli(
        "report",
        "sales",
        "--config",
        config,
        "--from",
        "2026-01-01",
        "--format",
        "xlsx",
        "--out",
        str(out),
    )
    assert made.returncode == 0, made.stderr
    sheet = load_workbook(out).active
    assert sheet is not None and sheet.cell(1, 1).value == "日期"
    table = _cli("report", "members", "--config", config, "--station", "S001")
    assert table.returncode == 0 and "champions" in table.stdout
    refused = _cli("report", "sales", "--config", config, "--format", "xlsx")
    assert refused.returncode == 2 and "--out" in refused.stderr
    refused = _cli("report", "sales", "--config", config, "--from", "2026-13-01")
    assert refused.returncode == 2 and "from must be a date" in refused.stderr
    assert _cli("aggregates", "check", "--config", config).returncode == 0
    hq.ledger.db.transact(
        lambda conn: conn.execute(
            update(agg_points_month).values(points=agg_points_month.c.points + 1)
        )
    )
    broken = _cli("aggregates", "check", "--config", config, "--json")
    assert broken.returncode == 1
    assert json.loads(broken.stdout)["problems"]
    assert _cli("aggregates", "rebuild", "--config", config).returncode == 0
    assert _cli("aggregates", "check", "--config", config).returncode == 0
