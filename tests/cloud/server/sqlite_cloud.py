"""A cloud app over a real ledger (SQLite unless told), enrolled stations, the HQ admin token."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.cloud.server.app import build_cloud_app
from cloud_sync.cloud.server.keyfiles import load_or_create_chain_keys, load_or_create_signing_key
from cloud_sync.cloud.server.settings import CloudSettings
from cloud_sync.core.privacy import MemberKeys
from tests.support import FakeClock

from .helpers import ADMIN_TOKEN

__all__ = ["CloudApp", "SqliteCloud", "open_cloud", "sqlite_cloud"]


@dataclass
class CloudApp:
    app: FastAPI
    ledger: CloudLedger
    keys: MemberKeys
    tokens: list[str]  # one per station enrolled, in order


@contextmanager
def open_cloud(
    directory: Path, database_url: str, stations: Sequence[tuple[str, str]]
) -> Iterator[CloudApp]:
    """The app over the ledger at `database_url`, its keys in `directory`; (id, name) enrolled."""
    settings = CloudSettings.model_validate(
        {
            "cloud": {
                "data_dir": str(directory / "cloud"),
                "database_url": database_url,
                "admin_token": ADMIN_TOKEN,
            }
        }
    )
    keys = load_or_create_chain_keys(settings.data_dir)
    signing_key = load_or_create_signing_key(settings.data_dir)
    clock = FakeClock(datetime(2026, 12, 1, 0, 0, tzinfo=UTC))
    ledger = CloudLedger.open(settings.database_url, chain_keys=keys)
    try:
        tokens = [ledger.add_station(station_id, name, clock()) for station_id, name in stations]
        app = build_cloud_app(settings, ledger=ledger, signing_key=signing_key, clock=clock)
        yield CloudApp(app, ledger, keys, tokens)
    finally:
        ledger.close()


@dataclass
class SqliteCloud:
    app: FastAPI
    ledger: CloudLedger
    station_token: str


@contextmanager
def sqlite_cloud(directory: Path) -> Iterator[SqliteCloud]:
    database_url = f"sqlite:///{directory / 'cloud.sqlite3'}"
    with open_cloud(directory, database_url, [("S001", "first")]) as cloud:
        yield SqliteCloud(cloud.app, cloud.ledger, cloud.tokens[0])
