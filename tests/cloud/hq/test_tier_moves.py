"""Tier movements per month (hq-console.md screen 4): member.tier_changed events counted
by (month, from, to) as they are applied, equal to a rebuild from the events, read up or
down by the rule set's tier order, on the member report page, its export and the CLI table.
Both backends."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from cloud_sync.cloud.ledger import CloudLedger, aggregates_ledger, member_reports
from cloud_sync.cloud.ledger.schema import agg_tier_month
from cloud_sync.core.privacy import MemberKeys
from tests.cloud.ledger.fake_station import FakeStation, member_id

from .conftest import ADMIN, Hq
from .seed_chain import NOW, stations


def _moves(ledger: CloudLedger) -> dict[tuple[str, str, str], int]:
    rows = ledger.db.read(lambda c: c.execute(select(agg_tier_month)).all())
    return {(r.month, r.from_tier, r.to_tier): r.changes for r in rows if r.changes}


def _change(station: FakeStation, mid: str, before: str | None, after: str, at: datetime) -> None:
    payload: dict[str, Any] = {"member_id": mid, "tier": after, "at": at.isoformat()}
    if before is not None:
        payload["previous_tier"] = before
    station.emit("member.tier_changed", payload, at)


def _seed(ledger: CloudLedger, keys: MemberKeys) -> None:
    a = stations(ledger, keys)["S001"]
    jan, feb = datetime(2026, 1, 31, 23, 30, tzinfo=NOW.tzinfo), NOW - timedelta(days=10)
    for n in (1, 2, 3):
        a.register(f"1380013800{n}", jan - timedelta(days=30), mid=member_id(n))
    _change(a, member_id(1), "standard", "silver", jan)  # 23:30 Shanghai: still January
    _change(a, member_id(2), "standard", "gold", jan - timedelta(days=3))
    _change(a, member_id(1), "silver", "gold", feb)
    _change(a, member_id(2), "gold", "silver", feb)
    _change(a, member_id(3), None, "silver", feb)  # a 0.6 station names no previous tier
    _change(a, member_id(3), "silver", "silver", feb)  # no change: not a movement
    _change(a, member_id(77), "standard", "gold", feb)  # unknown member: rejected
    ledger.push("S001", a.request(), NOW - timedelta(days=1))


EXPECTED = {
    ("2026-01", "standard", "silver"): 1,
    ("2026-01", "standard", "gold"): 1,
    ("2026-02", "silver", "gold"): 1,
    ("2026-02", "gold", "silver"): 1,
    ("2026-02", "", "silver"): 1,
}


def test_movements_kept_as_applied_equal_a_rebuild_and_read_up_and_down(
    ledger: CloudLedger, chain_keys: MemberKeys
) -> None:
    _seed(ledger, chain_keys)
    assert _moves(ledger) == EXPECTED
    assert ledger.db.read(aggregates_ledger.check) == []
    ledger.db.transact(aggregates_ledger.rebuild)
    assert _moves(ledger) == EXPECTED
    report = ledger.db.read(
        lambda c: member_reports.tier_movements(c, NOW.date() - timedelta(days=90), NOW.date())
    )
    assert report["months"] == [
        {"month": "2026-01", "up": 2, "down": 0},
        {"month": "2026-02", "up": 2, "down": 1},
    ]
    assert {(p["from"], p["to"]): p["direction"] for p in report["pairs"]} == {
        ("standard", "silver"): "up",
        ("standard", "gold"): "up",
        ("silver", "gold"): "up",
        ("gold", "silver"): "down",
        ("", "silver"): "up",
    }
    ledger.db.transact(lambda c: c.execute(agg_tier_month.delete()))
    problems = ledger.db.read(aggregates_ledger.check)
    assert "agg_tier_month ['2026-02', 'gold', 'silver']: stored None, ledger (1,)" in problems


def test_page_export_and_cli_show_the_movements(hq: Hq) -> None:
    a = FakeStation("S002", hq.ledger.chain_keys)
    a.epoch = 9  # a fresh outbox for S002 (the seeded one used epoch 1)
    _change(a, hq.seeded.members[2], "standard", "gold", NOW - timedelta(days=2))
    hq.ledger.push("S002", a.request(), NOW - timedelta(days=1))
    page = hq.client.get("/hq/reports/members?lang=en", headers=ADMIN)
    assert page.status_code == 200
    assert 'id="fig-tier-moves"' in page.text and "Tier movements per month" in page.text
    assert "Tier changes by pair" in page.text and "standard" in page.text
    exported = hq.client.get(
        "/api/v1/hq/reports/members?range=custom&from=2026-01-01&to=2026-03-02&format=csv",
        headers=ADMIN,
    )
    assert exported.status_code == 200
    assert "tier_up,2026-02,1" in exported.text.replace("\r", "")
    body = hq.client.get(
        "/api/v1/hq/reports/members?range=custom&from=2026-01-01&to=2026-03-02", headers=ADMIN
    ).json()
    assert body["tier_movements"]["months"] == [{"month": "2026-02", "up": 1, "down": 0}]
