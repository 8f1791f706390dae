"""`loyalpump cloud aggregates rebuild --timezone` and `aggregates rfm`, in-process (typer's
runner) on SQLite and PostgreSQL: the zone is stored and the days follow it in the same
transaction, an unknown zone changes nothing and exits 2, the RFM snapshot is stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cloud_sync.cloud.ledger import CloudLedger, aggregates_ledger
from cloud_sync.cloud.ledger.database import Database
from cloud_sync.cloud.ledger.schema import agg_sales_hour, rfm_snapshots, settings
from cloud_sync.core.privacy import MemberKeys

from .seed_chain import seed_chain
from .test_member_cli import run


@pytest.fixture
def base(tmp_path: Path, cloud_db_url: str) -> tuple[str, ...]:
    path = tmp_path / "cloud.toml"
    path.write_text(f'[cloud]\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    return ("-c", str(path), "--database-url", cloud_db_url)


def _hours(db: Database) -> dict[tuple[str, int, str], int]:
    rows = db.read(lambda c: c.execute(select(agg_sales_hour)).all())
    return {(r.day, r.hour, r.station_id): r.sales for r in rows if r.sales}


def _zone(db: Database) -> Any:
    stmt = select(settings.c.value).where(settings.c.key == "chain_timezone")
    return db.read(lambda c: c.execute(stmt).scalar_one_or_none())


def test_rebuild_in_another_time_zone(
    ledger: CloudLedger, chain_keys: MemberKeys, cloud_db_url: str, base: tuple[str, ...]
) -> None:
    seed_chain(ledger, chain_keys)
    before = _hours(ledger.db)
    refused = run("aggregates", "rebuild", *base, "--timezone", "Mars/Olympus", check=False)
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0 and "Mars/Olympus" in refused.stderr
    assert _hours(ledger.db) == before and _zone(ledger.db) is None
    done = run("aggregates", "rebuild", *base, "--timezone", "Asia/Urumqi")
    assert "Asia/Urumqi" in done.stdout
    fresh = Database.open(cloud_db_url)  # a new process's view: the zone read from settings
    try:
        assert _zone(fresh) == "Asia/Urumqi"
        # Urumqi is two hours behind Shanghai: each sale's hour moves back by two.
        moved: dict[tuple[str, int, str], int] = {}
        for (day, hour, station), n in before.items():
            assert hour >= 2  # the seeded sales are all after 02:00 Shanghai time
            moved[(day, hour - 2, station)] = moved.get((day, hour - 2, station), 0) + n
        assert _hours(fresh) == moved
        assert fresh.read(aggregates_ledger.check) == []
    finally:
        fresh.close()


def test_rfm_command_stores_the_days_snapshot(
    ledger: CloudLedger, chain_keys: MemberKeys, cloud_db_url: str, base: tuple[str, ...]
) -> None:
    seed_chain(ledger, chain_keys)
    shown = json.loads(run("aggregates", "rfm", *base, "--day", "2026-03-02", "--json").stdout)
    assert shown["day"] == "2026-03-02" and shown["as_of"]
    assert sum(s["members"] for s in shown["segments"]) == 3
    days = ledger.db.read(lambda c: c.execute(select(rfm_snapshots.c.end_day)).scalars().all())
    assert days == ["2026-03-02"]
    table = run("aggregates", "rfm", *base, "--day", "2026-03-02")
    assert "champions" in table.stdout and "as of the end of 2026-03-02" in table.stdout
    refused = run("aggregates", "rfm", *base, "--day", "2026-02-30", check=False)
    assert refused.returncode == 2 and "--day" in refused.stderr
    run("aggregates", "rebuild", *base)  # the snapshots go with the aggregates they read
    assert ledger.db.read(lambda c: c.execute(select(rfm_snapshots)).all()) == []
