"""The store file: durability settings, migrations, refusal of newer schemas, append-only logs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge_agent.services.members import register_member
from edge_agent.services.points import redeem_points
from edge_agent.services.station import Station
from edge_agent.store import SchemaTooNewError, Store, StoreMissingError
from edge_agent.store.migrations import SCHEMA_VERSION
from tests.support import manual_sale


def test_new_store_runs_in_wal_with_full_sync_and_foreign_keys(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.sqlite3", create=True) as store, store.read() as tx:
        assert tx.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert tx.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert tx.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert tx.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    with Store.open(tmp_path / "s.sqlite3") as store:
        assert store.schema_version == SCHEMA_VERSION


def test_opening_twice_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    Store.open(path, create=True).close()
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.integrity_problems() == []


def test_missing_store_is_refused_without_create(tmp_path: Path) -> None:
    with pytest.raises(StoreMissingError, match="edge init"):
        Store.open(tmp_path / "absent.sqlite3")


def test_newer_store_is_refused_by_an_older_program(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    Store.open(path, create=True).close()
    with sqlite3.connect(path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaTooNewError, match="upgrade loyalpump"):
        Store.open(path)


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.sqlite3", create=True) as store:
        with pytest.raises(RuntimeError), store.write() as tx:
            tx.execute("INSERT INTO meta (key, value) VALUES ('k', 'v')")
            raise RuntimeError("crash mid-transaction")
        with store.read() as tx:
            assert tx.execute("SELECT count(*) FROM meta WHERE key = 'k'").fetchone()[0] == 0


@pytest.mark.parametrize("table", ["ledger", "audit", "lot_debits"])
def test_append_only_tables_refuse_updates_and_deletes(station: Station, table: str) -> None:
    member = register_member(station, phone="13800138000", consent_channel="test", actor="t")
    manual_sale(station, 150, member.member_id, actor="t")
    redeem_points(station, member.member_id, 100, actor="t")
    with station.store.read() as tx:
        assert tx.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0
    with pytest.raises(sqlite3.DatabaseError, match="append-only"), station.store.write() as tx:
        tx.execute(f"DELETE FROM {table}")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"), station.store.write() as tx:
        tx.execute(f"UPDATE {table} SET rowid = rowid")


def test_member_keys_file_is_private(station: Station) -> None:
    keys_file = station.settings.station.data_dir / "keys" / "member-keys.json"
    assert keys_file.stat().st_mode & 0o777 == 0o600
    assert keys_file.parent.stat().st_mode & 0o777 == 0o700


def test_personal_data_is_not_stored_in_clear(station: Station) -> None:
    register_member(
        station,
        phone="13800138000",
        plates=["京A12345"],
        name="张三",
        consent_channel="test",
        actor="t",
    )
    station.close()
    raw = Path(station.store.path).read_bytes()
    wal = Path(str(station.store.path) + "-wal")
    raw += wal.read_bytes() if wal.exists() else b""
    for secret in ("13800138000", "京A12345", "张三"):
        assert secret.encode() not in raw
