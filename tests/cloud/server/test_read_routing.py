"""Which database a replica-safe route reads, and what its answer says about it.

In process, over two PostgreSQL databases without replication between them: the "replica"
gets the ledger's schema and a heartbeat the test sets, so each reason to leave it (lagging,
no heartbeat, another schema, unreachable, a row it has not seen yet) is one step away.
The real replication is tests/cloud/server/test_read_replica.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.cloud.ledger.database import Database
from cloud_sync.cloud.ledger.member_sessions import start_member_session
from cloud_sync.cloud.ledger.postings import millis
from cloud_sync.cloud.server.app import build_cloud_app
from cloud_sync.cloud.server.keyfiles import load_or_create_chain_keys, load_or_create_signing_key
from cloud_sync.cloud.server.replica import ReadReplica, open_read_database
from cloud_sync.cloud.server.settings import CloudConfigError, load_cloud_settings
from cloud_sync.core.privacy import MemberKeys
from tests.cloud.conftest import fresh_pg_schema, scratch_database, sqlalchemy_url
from tests.cloud.hq.conftest import ADMIN, settings_for
from tests.cloud.hq.seed_chain import NOW, seed_chain
from tests.support import FakeClock

LAG = "Loyalpump-Replica-Lag-Ms"
SOURCE = "Loyalpump-Read-Source"
WALL_MS = 1_800_000_000_000


@pytest.fixture(scope="module")
def replica_database() -> Iterator[str]:
    with scratch_database("loyalpump_test_replica") as url:
        yield url


@dataclass
class Routed:
    client: TestClient
    ledger: CloudLedger
    replica: str  # libpq URL
    members: list[str]
    clock: FakeClock

    def beat(self, age_ms: int | None) -> None:
        """Set the replica's heartbeat `age_ms` old (None: no heartbeat at all)."""
        with psycopg.connect(self.replica, autocommit=True) as conn:
            conn.execute("DELETE FROM replica_heartbeat")
            if age_ms is not None:
                conn.execute(
                    "INSERT INTO replica_heartbeat (id, beat_ms) VALUES (1, %s)",
                    (WALL_MS - age_ms,),
                )

    def member_auth(self, member_id: str) -> dict[str, str]:
        now_ms = millis(self.clock())
        tokens = self.ledger.db.transact(
            lambda conn: start_member_session(
                conn, member_id, now_ms=now_ms, access_ms=900_000, refresh_ms=86_400_000
            )
        )
        return {"Authorization": f"Bearer {tokens.access_token}"}


def _app(
    ledger: CloudLedger, keys: MemberKeys, tmp_path: Path, replica: ReadReplica | None
) -> TestClient:
    tmp_path.mkdir(parents=True, exist_ok=True)
    settings, _ = settings_for(tmp_path, ledger.db.engine.url.render_as_string(False))
    load_or_create_chain_keys(settings.data_dir)
    app = build_cloud_app(
        settings,
        ledger=ledger,
        signing_key=load_or_create_signing_key(settings.data_dir),
        clock=FakeClock(NOW),
        chain_keys=keys,
        replica=replica,
    )
    return TestClient(app)


@pytest.fixture
def routed(pg_database: str, replica_database: str, tmp_path: Path) -> Iterator[Routed]:
    fresh_pg_schema(pg_database)
    fresh_pg_schema(replica_database)
    keys = MemberKeys.generate("chain-1")
    ledger = CloudLedger.open(sqlalchemy_url(pg_database), chain_keys=keys)
    Database.open(sqlalchemy_url(replica_database)).close()  # the schema, no rows
    seeded = seed_chain(ledger, keys)
    replica = ReadReplica(
        open_read_database(sqlalchemy_url(replica_database)),
        ledger.db,
        max_lag_s=30,
        wall_ms=lambda: WALL_MS,
        recheck_s=0.0,  # every request measures: each step below is seen at once
    )
    try:
        with _app(ledger, keys, tmp_path, replica) as client:
            yield Routed(client, ledger, replica_database, seeded.members, FakeClock(NOW))
    finally:
        replica.close()
        ledger.close()


def test_a_fresh_replica_serves_reads_with_their_lag(routed: Routed) -> None:
    routed.beat(1_200)
    answer = routed.client.get("/api/v1/hq/stations", headers=ADMIN)
    assert answer.status_code == 200
    assert answer.headers[SOURCE] == "replica"
    assert 1_200 <= int(answer.headers[LAG]) < 1_200 + 5_000
    assert answer.json()["stations"] == []  # the replica's rows: it holds none
    primary = routed.ledger.stations()
    assert [s["station_id"] for s in primary] == ["S001", "S002", "S003"]


def test_a_member_signed_in_on_the_primary_is_answered_from_it_until_the_replica_has_them(
    routed: Routed,
) -> None:
    routed.beat(500)
    auth = routed.member_auth(routed.members[0])  # the session exists on the primary only
    home = routed.client.get("/m/api/v1/me", headers=auth)
    assert home.status_code == 200, home.text
    assert home.json()["member_id"] == routed.members[0]
    assert home.headers[SOURCE] == "primary; reason=missing"
    sales = routed.client.get("/m/api/v1/me/sales", headers=auth)
    assert sales.status_code == 200
    assert sales.headers[SOURCE] == "replica" and sales.json()["sales"] == []


@pytest.mark.parametrize(
    ("age_ms", "reason"), [(31_000, "lagging"), (None, "no-heartbeat")], ids=["lag", "none"]
)
def test_a_lagging_or_silent_replica_leaves_reads_to_the_primary(
    routed: Routed, age_ms: int | None, reason: str
) -> None:
    routed.beat(age_ms)
    answer = routed.client.get("/api/v1/hq/stations", headers=ADMIN)
    assert answer.headers[SOURCE] == f"primary; reason={reason}"
    assert LAG not in answer.headers
    assert [s["id"] for s in answer.json()["stations"]] == ["S001", "S002", "S003"]
    routed.beat(29_000)  # within read_max_lag_s again
    assert routed.client.get("/api/v1/hq/stations", headers=ADMIN).headers[SOURCE] == "replica"


def test_writes_sync_and_sign_in_never_carry_read_headers(routed: Routed) -> None:
    routed.beat(100)
    token = routed.client.post(
        "/api/v1/hq/stations", headers=ADMIN, json={"station_id": "S009"}
    ).json()["token"]
    pulled = routed.client.get("/api/v1/sync/changes", headers={"Authorization": f"Bearer {token}"})
    assert pulled.status_code == 200
    for answer in (pulled, routed.client.get("/api/v1/hq/me", headers=ADMIN)):
        assert SOURCE not in answer.headers and LAG not in answer.headers


def test_a_replica_without_the_schema_or_unreachable_is_left(
    pg_database: str, replica_database: str, tmp_path: Path
) -> None:
    fresh_pg_schema(pg_database)
    fresh_pg_schema(replica_database)  # no ledger tables at all
    keys = MemberKeys.generate("chain-1")
    ledger = CloudLedger.open(sqlalchemy_url(pg_database), chain_keys=keys)
    nowhere = "postgresql+psycopg://postgres@127.0.0.1:1/none"
    try:
        for url, reason in ((sqlalchemy_url(replica_database), "schema"), (nowhere, "unreachable")):
            replica = ReadReplica(open_read_database(url), ledger.db, max_lag_s=30, recheck_s=0)
            try:
                with _app(ledger, keys, tmp_path / reason, replica) as client:
                    answer = client.get("/m/api/v1/stations")
                assert answer.status_code == 200
                assert answer.headers[SOURCE] == f"primary; reason={reason}"
            finally:
                replica.close()
    finally:
        ledger.close()


def test_without_a_replica_no_read_header_is_sent(pg_database: str, tmp_path: Path) -> None:
    fresh_pg_schema(pg_database)
    keys = MemberKeys.generate("chain-1")
    ledger = CloudLedger.open(sqlalchemy_url(pg_database), chain_keys=keys)
    try:
        with _app(ledger, keys, tmp_path, None) as client:
            answer = client.get("/m/api/v1/stations")
        assert answer.status_code == 200
        assert SOURCE not in answer.headers and LAG not in answer.headers
    finally:
        ledger.close()


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('database_url_read = "postgresql://u@h/r"\n', "needs a postgresql:// database_url"),
        (
            'database_url = "postgresql://u@h/p"\ndatabase_url_read = "sqlite:///r.db"\n',
            "database_url_read must be a postgresql:// URL",
        ),
        ('database_url = "postgresql://u@h/p"\nread_max_lag_s = 0\n', "cloud.read_max_lag_s"),
    ],
    ids=["sqlite-primary", "sqlite-replica", "zero-bound"],
)
def test_replica_settings_are_checked_at_start(tmp_path: Path, lines: str, message: str) -> None:
    config = tmp_path / "cloud.toml"
    config.write_text(f'[cloud]\ndata_dir = "data"\n{lines}', encoding="utf-8")
    with pytest.raises(CloudConfigError, match=message):
        load_cloud_settings(config)


def test_replica_settings_load(tmp_path: Path) -> None:
    config = tmp_path / "cloud.toml"
    config.write_text(
        '[cloud]\ndata_dir = "data"\ndatabase_url = "postgresql://u@h/p"\n'
        'database_url_read = "postgresql://u@replica/p"\nread_max_lag_s = 10\n',
        encoding="utf-8",
    )
    section = load_cloud_settings(config).cloud
    assert section.database_url_read == "postgresql+psycopg://u@replica/p"
    assert section.read_max_lag_s == 10


def test_a_database_url_override_is_checked_against_the_replica(tmp_path: Path) -> None:
    config = tmp_path / "cloud.toml"
    config.write_text(
        '[cloud]\ndata_dir = "data"\ndatabase_url = "postgresql://u@h/p"\n'
        'database_url_read = "postgresql://u@replica/p"\n',
        encoding="utf-8",
    )
    settings = load_cloud_settings(config)
    with pytest.raises(CloudConfigError, match=r"--database-url: .*needs a postgresql://"):
        settings.with_database_url(f"sqlite:///{tmp_path / 'other.sqlite3'}")
    moved = settings.with_database_url("postgresql://u@other/p")
    assert moved.cloud.database_url == "postgresql+psycopg://u@other/p"
    assert moved.cloud.database_url_read == "postgresql+psycopg://u@replica/p"
