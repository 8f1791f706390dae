"""The soak's verdict catches what it exists to catch: a lost sale, a doubled one, a sale
booked with other litres, points the rules do not give, and a process left running."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from cloud_sync.core.pricing import SaleFacts, price_sale
from cloud_sync.core.ruleset.parser import parse_ruleset_json
from tests.soak.cashier import CashierStats
from tests.soak.nodes import MARKER, StationNode, leftover_processes, sale_key
from tests.soak.report import SoakReport
from tests.soak.run import RULES, cashier_totals
from tests.soak.verdict import (
    CashierAnswers,
    CloudSale,
    cashier_answers_hold,
    points_follow_rules,
    rule_update_reached_every_station,
    sales_match_truth,
)
from tests.support import free_port

TUESDAY = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # a member day in the sample rules
RULESET = parse_ruleset_json(RULES.read_bytes())
SOLD = [
    {"fuelling_point": "1", "nozzle": "2", "grade": "95", "volume": "31.40", "amount": "263.76"},
    {"fuelling_point": "2", "nozzle": "1", "grade": "92", "volume": "12.05", "amount": "95.04"},
]


def _node(tmp_path: Path) -> StationNode:
    node = StationNode("S001", tmp_path, cloud_port=1, token="t", env={}, seed=1)
    node.dart_truth.write_text("".join(json.dumps(s) + "\n" for s in SOLD), encoding="utf-8")
    return node


def _booked(
    sale: dict[str, str], *, member: str | None = "m1", points: int | None = None
) -> CloudSale:
    key = sale_key("dart", sale)
    facts = SaleFacts(key[3], key[4], key[5], TUESDAY)
    priced = price_sale(RULESET, facts, "silver").points if member else 0
    return CloudSale(
        sale_id=f"sale-{sale['fuelling_point']}-{sale['volume']}",
        station_id="S001",
        key=key,
        member_id=member,
        points=priced if points is None else points,
        recomputed=priced if member else None,
        tier="silver" if member else None,
        ruleset_version=RULESET.version if member else None,
        ended_at=TUESDAY,
    )


def test_the_truth_booked_once_passes(tmp_path: Path) -> None:
    check = sales_match_truth([_node(tmp_path)], [_booked(SOLD[0]), _booked(SOLD[1], member=None)])
    assert check.ok, check.detail


def test_a_lost_a_doubled_and_an_altered_sale_fail(tmp_path: Path) -> None:
    node = _node(tmp_path)
    lost = sales_match_truth([node], [_booked(SOLD[0])])
    assert not lost.ok and "missing 1" in lost.detail and "extra 0" in lost.detail
    doubled = sales_match_truth([node], [_booked(s) for s in (*SOLD, SOLD[1])])
    assert not doubled.ok and "extra 1" in doubled.detail
    altered = sales_match_truth([node], [_booked(SOLD[0]), _booked({**SOLD[1], "volume": "12.06"})])
    assert not altered.ok and "missing 1" in altered.detail and "extra 1" in altered.detail


def test_points_the_rules_do_not_give_fail() -> None:
    right = _booked(SOLD[0])
    assert right.points == 62  # 31.40 L x 1 point/L x silver 1 x member day 2, floored
    assert points_follow_rules([right], {RULESET.version: RULESET}).ok
    wrong = _booked(SOLD[0], points=right.points + 1)
    check = points_follow_rules([wrong], {RULESET.version: RULESET})
    assert not check.ok and "rules 62" in check.detail
    unknown_tier = CloudSale(**{**right.__dict__, "tier": "platinum"})
    check = points_follow_rules([unknown_tier], {RULESET.version: RULESET})
    assert not check.ok and "platinum" in check.detail
    stray = _booked(SOLD[1], member=None, points=5)
    assert not points_follow_rules([right, stray], {RULESET.version: RULESET}).ok


def test_an_acknowledged_redemption_or_attach_missing_from_the_cloud_fails() -> None:
    sale = _booked(SOLD[0], member="m2")
    merged = {"m1": "m2"}.get  # m1 was signed up twice and merged into m2

    def survivor(member_id: str) -> str:
        return merged(member_id) or member_id

    told = CashierAnswers(redeemed={"r1": ("m1", 200)}, attached={sale.sale_id: "m1"})
    kept = cashier_answers_hold([sale], {"r1": ("m2", 200)}, told, survivor)
    assert kept.ok, kept.detail
    lost = cashier_answers_hold([sale], {}, told, survivor)
    assert not lost.ok and "r1" in lost.detail
    other = cashier_answers_hold([sale], {"r1": ("m2", 300)}, told, survivor)
    assert not other.ok
    unattached = CloudSale(**{**sale.__dict__, "member_id": None})
    assert not cashier_answers_hold([unattached], {"r1": ("m2", 200)}, told, survivor).ok


def test_the_rule_update_must_be_installed_at_every_station(tmp_path: Path) -> None:
    node = _node(tmp_path)
    node.store.parent.mkdir(parents=True)
    with sqlite3.connect(node.store) as db:
        db.execute("CREATE TABLE rulesets (version INTEGER PRIMARY KEY)")
        db.execute("INSERT INTO rulesets VALUES (3)")
    update = parse_ruleset_json(json.dumps({**json.loads(RULES.read_text()), "version": 4}))
    both = {3: RULESET, 4: update}
    sale = _booked(SOLD[0])  # priced under v3: the station was offline after the update
    check = rule_update_reached_every_station([node], [sale], both)
    assert not check.ok and "not installed at S001" in check.detail
    with sqlite3.connect(node.store) as db:
        db.execute("INSERT INTO rulesets VALUES (4)")
    check = rule_update_reached_every_station([node], [sale], both)
    assert check.ok and "priced under it at 0" in check.detail


def test_listening_ports_avoid_the_ephemeral_range_and_never_repeat() -> None:
    """A listener restarted after kill -9 must find its port free: no outgoing connection's
    local end may have taken it meanwhile (the soak lost a station start that way)."""
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert not [port for port in ports if low <= port <= high]


def test_a_process_of_the_run_is_found_until_it_ends() -> None:
    env = {**os.environ, MARKER: "verdict-test"}
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], env=env)
    try:
        assert any(line.startswith(f"{child.pid} ") for line in leftover_processes("verdict-test"))
        assert leftover_processes("another-run") == []
    finally:
        child.kill()
        child.wait()
    assert leftover_processes("verdict-test") == []


def test_the_report_is_json_with_the_cashiers_refusals_by_code() -> None:
    stats = CashierStats(attached=3, redemptions=1)
    stats.refused["redeem.denied"] += 2
    report = SoakReport(stations=1, minutes=1.0, backend="sqlite", seed=1)
    report.cashier = cashier_totals([stats, CashierStats()])
    data = json.loads(json.dumps(report.to_dict(), default=str))
    assert data["cashier"]["refused"] == {"redeem.denied": 2}
    assert data["cashier"]["attached"] == 3 and data["cashier"]["redemptions"] == 1
