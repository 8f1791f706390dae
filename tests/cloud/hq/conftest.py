"""The HQ tests' fixtures: a fresh ledger per test on both backends (as the ledger's own
tests have it), and `hq`: that ledger seeded (seed_chain) behind the cloud app."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.cloud.server.app import build_cloud_app
from cloud_sync.cloud.server.keyfiles import load_or_create_chain_keys, load_or_create_signing_key
from cloud_sync.cloud.server.settings import CloudSettings
from cloud_sync.core.privacy import MemberKeys
from tests.cloud.ledger.conftest import chain_keys, ledger
from tests.cloud.server.helpers import ADMIN_TOKEN
from tests.support import FakeClock

from .seed_chain import NOW, Seeded, seed_chain

__all__ = ["ADMIN", "Hq", "chain_keys", "hq", "ledger"]

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-HQ-Actor": "wang"}


@dataclass
class Hq:
    client: TestClient
    ledger: CloudLedger
    seeded: Seeded
    settings: CloudSettings
    config: Path
    app: FastAPI


def settings_for(tmp_path: Path, url: str) -> tuple[CloudSettings, Path]:
    data = tmp_path / "cloud"
    config = tmp_path / "cloud.toml"
    config.write_text(
        f'[cloud]\ndata_dir = "{data}"\ndatabase_url = "{url}"\nadmin_token = "{ADMIN_TOKEN}"\n',
        encoding="utf-8",
    )
    document = {"cloud": {"data_dir": str(data), "database_url": url, "admin_token": ADMIN_TOKEN}}
    return CloudSettings.model_validate(document), config


@pytest.fixture
def hq(
    ledger: CloudLedger, chain_keys: MemberKeys, cloud_db_url: str, tmp_path: Path
) -> Iterator[Hq]:
    seeded = seed_chain(ledger, chain_keys)
    settings, config = settings_for(tmp_path, cloud_db_url)
    load_or_create_chain_keys(settings.data_dir)
    app = build_cloud_app(
        settings,
        ledger=ledger,
        signing_key=load_or_create_signing_key(settings.data_dir),
        clock=FakeClock(NOW),
    )
    with TestClient(app) as client:
        yield Hq(client, ledger, seeded, settings, config, app)
