"""Two databases on the local PostgreSQL server, the second a logical replica of the first.

Logical replication copies rows, never DDL, so both get the ledger's schema first (the
program's own open); the replica's tables are then emptied and the subscription's first
copy fills them. The slot is made beforehand: CREATE SUBSCRIPTION on the same cluster as
its publisher would wait for its own transaction to end while creating one, and hang.

Teardown drops the subscription before the databases (a slot left behind holds WAL).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import pytest

from cloud_sync.cloud.ledger.database import Database
from tests.cloud.conftest import PG_ADMIN_URL, _pg_url, sqlalchemy_url

__all__ = ["Replication", "logical_replication", "require_logical_wal"]

CI_STEP = (
    ".ci/run's wal_level step (ALTER SYSTEM SET wal_level = logical, then restart the cluster)"
)


def require_logical_wal() -> None:
    """Fail (not skip) when the server cannot replicate logically, naming the fix."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        level = admin.execute("SHOW wal_level").fetchone()
    found = None if level is None else level[0]
    if found != "logical":
        pytest.fail(
            f"PostgreSQL at {PG_ADMIN_URL} has wal_level = {found}; the read-replica test "
            f"needs logical. Run {CI_STEP}."
        )


@dataclass
class Replication:
    primary: str  # libpq URLs
    replica: str
    subscription: str

    @property
    def primary_sqlalchemy(self) -> str:
        return sqlalchemy_url(self.primary)

    @property
    def replica_sqlalchemy(self) -> str:
        return sqlalchemy_url(self.replica)

    def on_replica(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        return _run(self.replica, sql, params)

    def on_primary(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        return _run(self.primary, sql, params)

    def set_enabled(self, enabled: bool) -> None:
        verb = "ENABLE" if enabled else "DISABLE"
        self.on_replica(f"ALTER SUBSCRIPTION {self.subscription} {verb}")

    def wait_for(self, sql: str, *params: object, timeout: float = 60.0) -> None:
        """Until `sql` on the replica answers a row (replication has caught up to it)."""
        deadline = time.monotonic() + timeout
        while not self.on_replica(sql, *params):
            assert time.monotonic() < deadline, f"the replica never answered: {sql}"
            time.sleep(0.1)


def _run(url: str, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql.encode(), params or None)
        return list(cursor.fetchall()) if cursor.description else []


def _ledger_schema(libpq_url: str) -> None:
    Database.open(sqlalchemy_url(libpq_url)).close()


@contextmanager
def logical_replication() -> Iterator[Replication]:
    require_logical_wal()
    tag = uuid.uuid4().hex[:10]
    primary_db, replica_db = f"lp_primary_{tag}", f"lp_replica_{tag}"
    publication, slot, subscription = f"lp_pub_{tag}", f"lp_slot_{tag}", f"lp_sub_{tag}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{primary_db}"')
        admin.execute(f'CREATE DATABASE "{replica_db}"')
    setup = Replication(_pg_url(primary_db), _pg_url(replica_db), subscription)
    subscribed = False
    try:
        _ledger_schema(setup.primary)
        _ledger_schema(setup.replica)
        tables = [row[0] for row in setup.on_replica(_PUBLIC_TABLES)]
        setup.on_replica("TRUNCATE " + ", ".join(f'"{t}"' for t in tables))
        # Events go by their parent's name: the replica's partitions need not match.
        setup.on_primary(
            f"CREATE PUBLICATION {publication} FOR ALL TABLES "
            "WITH (publish_via_partition_root = true)"
        )
        setup.on_primary(f"SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')")
        host = psycopg.conninfo.conninfo_to_dict(PG_ADMIN_URL)
        dsn = (
            f"host={host.get('host', '127.0.0.1')} port={host.get('port', 5432)} "
            f"user={host.get('user', 'postgres')} dbname={primary_db}"
        )
        setup.on_replica(
            f"CREATE SUBSCRIPTION {subscription} CONNECTION '{dsn}' "
            f"PUBLICATION {publication} WITH (create_slot = false, slot_name = '{slot}')"
        )
        subscribed = True
        # Every table copied and streaming ('r'eady).
        setup.wait_for(
            "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM pg_subscription_rel WHERE srsubstate <> 'r')"
            " AND EXISTS (SELECT 1 FROM pg_subscription_rel)"
        )
        yield setup
    finally:
        if subscribed:
            setup.on_replica(f"ALTER SUBSCRIPTION {subscription} DISABLE")
            setup.on_replica(f"ALTER SUBSCRIPTION {subscription} SET (slot_name = NONE)")
            setup.on_replica(f"DROP SUBSCRIPTION {subscription}")
        _drop_slots(primary_db)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{replica_db}" WITH (FORCE)')
            admin.execute(f'DROP DATABASE IF EXISTS "{primary_db}" WITH (FORCE)')


_PUBLIC_TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"


def _drop_slots(database: str, timeout: float = 30.0) -> None:
    """Drop every slot on `database` (ours and any table-sync one), once it is let go."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        while True:
            slots = admin.execute(
                "SELECT slot_name, active FROM pg_replication_slots WHERE database = %s",
                (database,),
            ).fetchall()
            if not slots:
                return
            for name, active in slots:
                if not active:
                    admin.execute("SELECT pg_drop_replication_slot(%s)", (name,))
            assert time.monotonic() < deadline, f"replication slots still held: {slots}"
            time.sleep(0.2)
