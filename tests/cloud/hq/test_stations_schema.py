"""Schema 3 on a ledger made before it: `stations.revoked_at` and the stations list's two
sales indexes are added, the stations and their tokens kept (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import create_engine, inspect

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.core.privacy import MemberKeys

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def test_migration_3_adds_the_revocation_and_the_indexes(cloud_db_url: str) -> None:
    keys = MemberKeys.generate("chain-1")
    ledger = CloudLedger.open(cloud_db_url, chain_keys=keys)
    token = ledger.add_station("S001", "东站", NOW)
    ledger.close()
    engine = create_engine(cloud_db_url)
    with engine.begin() as conn:  # back to what a schema-2 ledger held
        conn.exec_driver_sql("DROP INDEX ix_sales_station_end")
        conn.exec_driver_sql("DROP INDEX ix_sales_differing")
        conn.exec_driver_sql("ALTER TABLE stations DROP COLUMN revoked_at")
        conn.exec_driver_sql("UPDATE schema_version SET version = 2")
    with engine.connect() as conn:
        assert "revoked_at" not in {c["name"] for c in inspect(conn).get_columns("stations")}

    reopened = CloudLedger.open(cloud_db_url, chain_keys=keys)
    try:
        assert reopened.station_for_token(token) == "S001"
        assert reopened.stations()[0]["revoked_at"] is None
    finally:
        reopened.close()
    with engine.connect() as conn:
        found = inspect(conn)
        assert "revoked_at" in {c["name"] for c in found.get_columns("stations")}
        names = {index["name"] for index in found.get_indexes("sales")}
        assert {"ix_sales_station_end", "ix_sales_differing"} <= names
    engine.dispose()
