"""A station of this version takes a signed rule set with the member app's `checkin` section
from the cloud and prices sales exactly as without it (check-in is booked by the cloud only).

A station of an older version refuses such a rule set as an unknown key (alert
`rules_refused`, the previous rules stay in force): stations are upgraded before HQ publishes
one (CHANGELOG, docs/contracts.md §4).
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from cloud_sync.core.pricing import SaleFacts, price_sale
from cloud_sync.core.privacy import MemberKeys
from cloud_sync.core.ruleset.parser import parse_ruleset
from cloud_sync.core.signing import generate_signing_key
from edge_agent.services.rules import ruleset_now
from edge_agent.services.station import Station
from edge_agent.services.status import station_status
from edge_agent.services.sync import StationSyncPort
from tests.edge_agent.test_sync_station import Chain, member, page, sale
from tests.support import RULESETS, SHANGHAI


@pytest.fixture
def chain() -> Chain:
    return Chain(MemberKeys.generate("chain-1"), generate_signing_key())


@pytest.fixture
def port(station: Station, chain: Chain) -> StationSyncPort:
    enrolled = StationSyncPort(station)
    enrolled.complete_enrolment(chain.enrolment())
    return enrolled


GENEROUS = {"points": 1000, "streak": [{"days": 2, "bonus": 10_000}], "daily_cap": 1}


def _document(version: int, checkin: object | None) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (RULESETS / "field-examples.json").read_text(encoding="utf-8")
    )
    document.update(version=version, name=f"v{version}", effective_from="2026-01-01T00:00:00+08:00")
    document.pop("checkin", None)
    if checkin is not None:
        document["checkin"] = checkin
    return document


def test_the_station_installs_a_pulled_rule_set_with_checkin_and_prices_as_before(
    station: Station, port: StationSyncPort, chain: Chain
) -> None:
    text = json.dumps(_document(2, GENEROUS), ensure_ascii=False)
    port.apply_changes(page(0, 1, rulesets=[chain.ruleset(text)]))
    in_force = ruleset_now(station)
    assert in_force is not None and in_force.version == 2
    assert in_force.checkin is not None and in_force.checkin.points == 1000
    assert station_status(station)["sync"]["rules_refused"]["count"] == 0
    assert sale(station, "10", member(station)) == 10  # 92# earns 1 point a litre, nothing more


def test_pricing_ignores_the_checkin_section() -> None:
    plain = parse_ruleset(_document(2, None))
    with_checkin = parse_ruleset(_document(2, GENEROUS))
    tuesday = datetime(2026, 3, 3, 9, 0, tzinfo=SHANGHAI)  # member day: the bonus applies
    for grade, litres in (("92", "40.00"), ("0", "41"), ("95", "12.34")):
        facts = SaleFacts(
            grade=grade,
            litres=Decimal(litres),
            amount=Decimal(litres) * 8,
            ended_at=tuesday,
        )
        for tier in ("standard", "gold"):
            assert price_sale(with_checkin, facts, tier) == price_sale(plain, facts, tier)
