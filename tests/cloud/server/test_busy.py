"""A worker with no free database connection answers 503 busy with Retry-After, not 500.

Under a catch-up storm a worker's pushes can outnumber its connections; SQLAlchemy then
gives up waiting after `PoolSize.wait_s`. The station's client reads 503 and Retry-After as
"come back later" and sends the batch again, which the ledger answers idempotently.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from cloud_sync.cloud.ledger import CloudLedger, PoolSize
from cloud_sync.cloud.server.app import build_cloud_app
from cloud_sync.cloud.server.context import BUSY_RETRY_AFTER_S, is_overload
from cloud_sync.cloud.server.keyfiles import load_or_create_chain_keys, load_or_create_signing_key
from cloud_sync.cloud.server.settings import CloudSettings
from cloud_sync.core.wire import Problem, PushResponse
from tests.cloud.conftest import fresh_pg_schema, sqlalchemy_url

from .helpers import ADMIN_TOKEN, EventLog, member_events


def test_a_push_that_finds_no_free_connection_is_told_to_come_back(
    pg_database: str, tmp_path: Path
) -> None:
    fresh_pg_schema(pg_database)
    url = sqlalchemy_url(pg_database)
    cloud = {"data_dir": str(tmp_path / "cloud"), "database_url": url, "admin_token": ADMIN_TOKEN}
    settings = CloudSettings.model_validate({"cloud": cloud})
    keys = load_or_create_chain_keys(settings.data_dir)
    ledger = CloudLedger.open(url, chain_keys=keys, pool=PoolSize(1, 0, wait_s=0.3))
    try:
        token = ledger.add_station("S001", "first", datetime.now(UTC))
        app = build_cloud_app(
            settings, ledger=ledger, signing_key=load_or_create_signing_key(settings.data_dir)
        )
        log = EventLog("S001")
        for kind, payload in member_events(keys, "13800138000")[1]:
            log.add(kind, payload)
        headers = {"Authorization": f"Bearer {token}"}
        with TestClient(app) as client:
            held = ledger.db.engine.connect()  # the pool's only connection, taken
            try:
                pushed = client.post("/api/v1/sync/events", json=log.batch(), headers=headers)
                hq = {"Authorization": f"Bearer {ADMIN_TOKEN}"}  # past the gate without a query
                listed = client.get("/api/v1/hq/stations", headers=hq)
            finally:
                held.close()
            for busy in (pushed, listed):  # at the token check, and inside a route
                assert busy.status_code == 503, busy.text
                low, high = BUSY_RETRY_AFTER_S
                assert low <= int(busy.headers["Retry-After"]) <= high  # spread, not in step
                assert Problem.model_validate(busy.json()).error == "busy"

            again = client.post("/api/v1/sync/events", json=log.batch(), headers=headers)
            assert again.status_code == 200, again.text
            answer = PushResponse.model_validate(again.json())
            assert [r.status for r in answer.results] == ["applied"]  # nothing half-done
        assert ledger.ledger_problems() == []
    finally:
        ledger.close()


class _Refused(Exception):
    sqlstate = "53300"  # PostgreSQL: too_many_connections


def test_a_refused_connection_counts_as_busy_and_an_outage_does_not() -> None:
    refused = OperationalError("connect", None, _Refused())
    down = OperationalError("connect", None, ConnectionRefusedError())
    assert is_overload(refused)
    assert not is_overload(down)
    assert is_overload(PoolTimeout("QueuePool limit reached"))
