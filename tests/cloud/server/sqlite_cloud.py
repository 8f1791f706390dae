"""A cloud app over a real SQLite ledger, one enrolled station, the HQ admin token."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.cloud.server.app import build_cloud_app
from cloud_sync.cloud.server.keyfiles import load_or_create_chain_keys, load_or_create_signing_key
from cloud_sync.cloud.server.settings import CloudSettings
from tests.support import FakeClock

from .helpers import ADMIN_TOKEN

__all__ = ["SqliteCloud", "sqlite_cloud"]


@dataclass
class SqliteCloud:
    app: FastAPI
    ledger: CloudLedger
    station_token: str


@contextmanager
def sqlite_cloud(directory: Path) -> Iterator[SqliteCloud]:
    settings = CloudSettings.model_validate(
        {
            "cloud": {
                "data_dir": str(directory / "cloud"),
                "database_url": f"sqlite:///{directory / 'cloud.sqlite3'}",
                "admin_token": ADMIN_TOKEN,
            }
        }
    )
    keys = load_or_create_chain_keys(settings.data_dir)
    signing_key = load_or_create_signing_key(settings.data_dir)
    clock = FakeClock(datetime(2026, 12, 1, 0, 0, tzinfo=UTC))
    ledger = CloudLedger.open(settings.database_url, chain_keys=keys)
    try:
        token = ledger.add_station("S001", "first", clock())
        app = build_cloud_app(settings, ledger=ledger, signing_key=signing_key, clock=clock)
        yield SqliteCloud(app, ledger, token)
    finally:
        ledger.close()
