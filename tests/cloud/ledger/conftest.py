"""A fresh ledger per test, on SQLite and on PostgreSQL (tests/cloud/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.core.privacy import MemberKeys

from .fake_station import RULES_TEXT, SHANGHAI, FakeStation

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI)  # a Monday: no member-day bonus


@pytest.fixture
def chain_keys() -> MemberKeys:
    return MemberKeys.generate("chain-1")


@pytest.fixture
def ledger(cloud_db_url: str, chain_keys: MemberKeys) -> Iterator[CloudLedger]:
    opened = CloudLedger.open(cloud_db_url, chain_keys=chain_keys)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def station(ledger: CloudLedger, chain_keys: MemberKeys) -> FakeStation:
    """An enrolled station sealing with the chain's keys, rules version 3 published."""
    ledger.add_station("S001", "Station one", NOW)
    ledger.enrol("S001", [], NOW)
    ledger.publish_ruleset(RULES_TEXT, "c2lnbmF0dXJl", "test-key", NOW)
    return FakeStation("S001", chain_keys)
