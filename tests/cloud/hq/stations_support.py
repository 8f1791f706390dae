"""A cloud app over a real ledger with a clock the test moves, for the stations screen's
tests: S001 with a small seeded history, S002 enrolled and silent."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.cloud.server.app import build_cloud_app
from cloud_sync.cloud.server.keyfiles import load_or_create_chain_keys, load_or_create_signing_key
from tests.cloud.ledger.fake_station import RULES_TEXT, FakeStation
from tests.cloud.server.helpers import ADMIN_TOKEN
from tests.support import FakeClock

from .support import cloud_settings

__all__ = ["ADMIN", "START", "HqCloud", "hq_cloud", "seed_chain"]

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-HQ-Actor": "wang"}
START = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, a Monday


@dataclass
class HqCloud:
    app: FastAPI
    client: TestClient
    ledger: CloudLedger
    clock: FakeClock
    station: FakeStation  # S001, enrolled with the chain's keys
    tokens: dict[str, str]

    def sync_changes(self, token: str) -> int:
        answer = self.client.get(
            "/api/v1/sync/changes",
            params={"since": 0},
            headers={"Authorization": f"Bearer {token}"},
        )
        return int(answer.status_code)


@contextmanager
def hq_cloud(directory: Path, database_url: str) -> Iterator[HqCloud]:
    settings = cloud_settings(directory, database_url)
    keys = load_or_create_chain_keys(settings.data_dir)
    clock = FakeClock(START)
    ledger = CloudLedger.open(settings.database_url, chain_keys=keys)
    try:
        tokens = {
            "S001": ledger.add_station("S001", "东站", START),
            "S002": ledger.add_station("S002", "西站", START),
        }
        ledger.enrol("S001", [], START)
        ledger.publish_ruleset(RULES_TEXT, "c2lnbmF0dXJl", "test-key", START)
        app = build_cloud_app(
            settings,
            ledger=ledger,
            signing_key=load_or_create_signing_key(settings.data_dir),
            clock=clock,
        )
        with TestClient(app) as client:
            yield HqCloud(app, client, ledger, clock, FakeStation("S001", keys), tokens)
    finally:
        ledger.close()


def seed_chain(cloud: HqCloud) -> None:
    """S001: two member sales (one claiming 40 points beyond the rules), a redemption of 100
    within its allowance, one of 10 with none (flagged), a reversal of an unknown sale
    (quarantined); and sales without members two and forty days before."""
    st, now = cloud.station, cloud.clock()
    mid = st.register("13800138000", now)
    st.sale(mid, "100.00", now)
    st.sale(mid, "10.00", now, claimed=50)
    st.sale(None, "20.00", now)
    cloud.ledger.push("S001", st.request(), now)
    allowance = cloud.ledger.changes("S001", 0, 1000, now).allowance
    assert allowance is not None
    st.redeem(mid, 100, now, allowance_id=allowance.allowance_id)
    st.redeem(mid, 10, now)
    st.reverse("no-such-sale", mid, 5, now)
    statuses = [r.status for r in cloud.ledger.push("S001", st.request(), now).results]
    assert statuses == ["applied", "applied", "rejected"]
    # More days of sales, without members: the detail's 30 days come from agg_sales_day,
    # which the ledger keeps as sales are applied.
    st.sale(None, "10.00", now, grade="95")
    st.sale(None, "25.25", now - timedelta(days=2))
    st.sale(None, "25.25", now - timedelta(days=2))
    st.sale(None, "1.00", now - timedelta(days=40))  # outside the 30 days
    cloud.ledger.push("S001", st.request(), now)
