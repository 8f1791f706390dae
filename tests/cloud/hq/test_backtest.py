"""The backtest on a seeded month: identity with the stations' own receipts, a doubled earn
rate's expected difference, the fast pricer equal to price_sale on every sale."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.cloud.ledger.backtest import backtest_row, run_backtest, start_backtest
from cloud_sync.cloud.ledger.backtest_core import FastPricer, fen_of
from cloud_sync.cloud.ledger.drafts import save_draft
from cloud_sync.cloud.ledger.schema import sales
from cloud_sync.core.pricing import SaleFacts, price_sale
from cloud_sync.core.privacy import MemberKeys
from tests.cloud.ledger.conftest import chain_keys, ledger
from tests.cloud.ledger.fake_station import RULES, RULES_TEXT

from .seed import END, NOW, START, Seeded, rules_with, seed_month

__all__ = ["chain_keys", "ledger"]  # the ledger tests' fixtures: a fresh ledger, both backends


@pytest.fixture
def seeded(ledger: CloudLedger, chain_keys: MemberKeys) -> Seeded:
    return seed_month(ledger, chain_keys)


def _backtest(ledger: CloudLedger, document: str, station: str | None = None) -> dict[str, object]:
    db = ledger.db
    draft = db.transact(lambda c: save_draft(c, document=document, by="mia", now=NOW))
    test_id = db.transact(
        lambda c: start_backtest(
            c,
            draft_id=draft["draft_id"],
            window_from=START,
            window_to=END,
            station_id=station,
            by="mia",
            now=NOW,
        )
    )
    run_backtest(db, ledger.rules, test_id, lambda: NOW)
    row = db.read(lambda c: backtest_row(c, test_id))
    assert row["status"] == "done"
    assert row["done_sales"] == row["total_sales"]
    result = row["result"]
    assert isinstance(result, dict)
    return result


def test_a_draft_equal_to_the_rules_in_force_costs_exactly_the_stations_receipts(
    ledger: CloudLedger, seeded: Seeded
) -> None:
    result = _backtest(ledger, rules_with())
    totals = result["totals"]
    assert isinstance(totals, dict)
    assert totals["sales"] == seeded.member_sales + seeded.plain_sales == 300
    assert totals["member_sales"] == seeded.member_sales
    assert totals["booked_points"] == seeded.booked_points > 0
    assert totals["current_points"] == seeded.booked_points
    assert totals["draft_points"] == seeded.booked_points
    assert totals["diff_points"] == 0
    assert totals["current_fen"] == totals["draft_fen"] == fen_of({100: seeded.booked_points})
    by = result["by"]
    assert isinstance(by, dict)
    for name in ("grade", "station", "tier", "weekday", "hour", "day"):
        rows = by[name]
        assert rows, name
        assert all(r["diff_points"] == 0 for r in rows), name
        assert sum(r["current_points"] for r in rows) == seeded.booked_points
        assert sum(r["sales"] for r in rows) == 300
    assert len(result["samples"]) == 20  # type: ignore[arg-type]
    assert result["document_hash"]
    assert result["window"] == {"from": START.isoformat(), "to": END.isoformat()}


def test_doubling_one_grade_doubles_exactly_that_grades_points(
    ledger: CloudLedger, seeded: Seeded
) -> None:
    earn = json.loads(RULES_TEXT)["earn"]
    for rule in earn:
        if rule["grade"] == "95":
            rule["points_per_litre"] = "2"
    result = _backtest(ledger, rules_with(earn=earn))
    by_grade = {r["key"]: r for r in result["by"]["grade"]}  # type: ignore[index]
    for grade in ("92", "0"):
        assert by_grade[grade]["diff_points"] == 0
    g95 = by_grade["95"]
    # 1 point/L x tier x bonus, floored: doubling the rate gives at least twice, at most
    # twice plus one per sale (the floor of 2x can gain one over 2 x floor(x)).
    assert g95["current_points"] > 0
    assert 2 * g95["current_points"] <= g95["draft_points"]
    assert g95["draft_points"] <= 2 * g95["current_points"] + g95["member_sales"]
    assert result["totals"]["diff_points"] == g95["diff_points"]  # type: ignore[index]


def test_one_stations_backtest_counts_only_its_sales(ledger: CloudLedger, seeded: Seeded) -> None:
    result = _backtest(ledger, rules_with(), station="S002")
    assert result["totals"]["sales"] == 150  # type: ignore[index]
    assert [r["key"] for r in result["by"]["station"]] == ["S002"]  # type: ignore[index]


def test_the_fast_pricer_equals_price_sale_on_every_seeded_sale(
    ledger: CloudLedger, seeded: Seeded
) -> None:
    rows = ledger.db.read(lambda c: c.execute(select(sales)).all())
    fast = FastPricer()
    checked = 0
    for row in rows:
        at = datetime.fromisoformat(row.ended_at)
        litres, amount = Decimal(row.litres), Decimal(row.amount)
        for tier in ("standard", "silver", "gold"):
            want = price_sale(RULES, SaleFacts(row.grade, litres, amount, at), tier).points
            assert fast.points(RULES, row.grade, tier, litres, amount, at) == want
            checked += 1
    assert checked == 900


def test_fen_is_rounded_half_up_once() -> None:
    assert fen_of({100: 1}) == 1
    assert fen_of({200: 1}) == 1  # 0.5 fen rounds up
    assert fen_of({300: 1}) == 0  # 0.33 fen
    assert fen_of({200: 1, 300: 1}) == 1  # 0.83 fen, rounded once
