"""Wire compatibility: an outbox written by release 0.6's station (a real store, committed as
`tests/fixtures/store-0.6/`) syncs into today's cloud with the results 0.6's cloud gave.

Schema version 1 events wait in deployed stations' outboxes for as long as a link is down;
the cloud must apply them exactly as it did when they were written, whatever the event
models look like today. Regenerate the fixture only for a new release:
`python -m tests.fixtures.make_store_fixture` (see its docstring).
"""

from __future__ import annotations

import json
from typing import Any

from cloud_sync.cloud.ledger import CloudLedger
from tests.fixtures.store_fixture import FIXTURE, StoreFixture, ledger_results, replay

KINDS = {
    "member.registered",
    "plate.attached",
    "sale.recorded",
    "sale.member_attached",
    "sale.reversed",
    "points.redeemed",
    "points.adjusted",
    "member.tier_changed",
}


def _expected() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURE / "expected.json").read_text(encoding="utf-8"))
    return data


def test_the_fixture_covers_the_counter_work_it_claims() -> None:
    fixture = StoreFixture.load()
    assert {event["kind"] for event in fixture.events} == KINDS
    sales = [e["payload"] for e in fixture.events if e["kind"] == "sale.recorded"]
    assert any(s["member_id"] is None for s in sales)
    assert any(s["member_id"] is not None for s in sales)
    adjusted = [e["payload"]["points"] for e in fixture.events if e["kind"] == "points.adjusted"]
    assert min(adjusted) < 0 < max(adjusted)
    assert _expected()["ledger_problems"] == []


def test_a_0_6_outbox_applies_with_identical_ledger_results(cloud_db_url: str) -> None:
    fixture = StoreFixture.load()
    expected = _expected()
    ledger = CloudLedger.open(cloud_db_url, chain_keys=fixture.chain_keys)
    try:
        results = replay(ledger, fixture)
        found = {"results": results} | ledger_results(ledger, fixture, cloud_db_url)
    finally:
        ledger.close()
    found = json.loads(json.dumps(found, default=str))
    assert found["results"] == expected["results"]
    assert found["ledger_problems"] == []
    for key in expected:
        assert found[key] == expected[key], key
