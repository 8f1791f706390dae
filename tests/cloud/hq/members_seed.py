"""A small chain for the member tests: two stations, members with plates, sales,
a redemption, a tier change; on SQLite and PostgreSQL (the `cloud_db_url` fixture)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.core.privacy import MemberKeys
from tests.cloud.ledger.conftest import chain_keys, ledger
from tests.cloud.ledger.fake_station import RULES_TEXT, SHANGHAI, FakeStation, member_id

# The ledger fixtures are the ledger tests' own (a fresh ledger per test, both backends).
__all__ = ["NAME", "NOW", "PHONE", "PLATE", "Seeded", "chain_keys", "ledger", "seed", "seeded"]

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI)
PHONE = "13800138000"
PLATE = "京A12345"
NAME = "张三"


@dataclass
class Seeded:
    ledger: CloudLedger
    keys: MemberKeys
    member: str
    other: str
    s1: FakeStation
    s2: FakeStation


def seed(ledger: CloudLedger, keys: MemberKeys) -> Seeded:
    for station_id in ("S001", "S002"):
        ledger.add_station(station_id, station_id, NOW)
        ledger.enrol(station_id, [], NOW)
    ledger.publish_ruleset(RULES_TEXT, "c2lnbmF0dXJl", "test-key", NOW)
    s1, s2 = FakeStation("S001", keys), FakeStation("S002", keys)
    mid = s1.register(PHONE, NOW, mid=member_id(1), name=NAME)
    s1.plate(mid, PLATE, NOW)
    other = s1.register("13900139000", NOW, mid=member_id(2), name="李四")
    s1.plate(other, "粤BD12345", NOW)
    s1.sale(mid, "40.00", NOW + timedelta(minutes=5))
    s1.emit(
        "member.tier_changed",
        {"member_id": mid, "tier": "silver", "previous_tier": "standard", "at": NOW.isoformat()},
        NOW,
    )
    ledger.push("S001", s1.request(), NOW)
    s2.sale(mid, "30.00", NOW + timedelta(hours=1))
    s2.sale(other, "10.00", NOW + timedelta(hours=1))
    s2.redeem(mid, 20, NOW + timedelta(hours=2))
    ledger.push("S002", s2.request(), NOW + timedelta(hours=2))
    return Seeded(ledger, keys, mid, other, s1, s2)


@pytest.fixture
def seeded(ledger: CloudLedger, chain_keys: MemberKeys) -> Seeded:
    return seed(ledger, chain_keys)
