"""The member app's fixtures: the seeded chain (tests/cloud/hq/seed_chain.py) behind the cloud
app on both backends, a clock the test moves, and a signed-in token for any member.

`token_for` starts a session straight in the ledger, so tests of `/me` routes do not depend
on the one-time-code flow (which has tests of its own).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.cloud.ledger.member_sessions import start_member_session
from cloud_sync.cloud.ledger.postings import millis
from cloud_sync.cloud.server.app import build_cloud_app
from cloud_sync.cloud.server.keyfiles import load_or_create_chain_keys, load_or_create_signing_key
from cloud_sync.cloud.server.settings import CloudSettings
from cloud_sync.core.privacy import MemberKeys
from tests.cloud.hq.conftest import settings_for
from tests.cloud.hq.seed_chain import NOW, Seeded, seed_chain
from tests.cloud.ledger.conftest import chain_keys, ledger
from tests.support import FakeClock

__all__ = ["MemberApp", "chain_keys", "ledger", "mapp"]


@dataclass
class MemberApp:
    client: TestClient
    ledger: CloudLedger
    seeded: Seeded
    settings: CloudSettings
    config: Path
    app: FastAPI
    clock: FakeClock

    def token_for(self, member_id: str) -> str:
        """A live access token of `member_id` (a session started as a right code would)."""
        state = self.app.state.member_app
        now_ms = millis(self.clock())
        tokens = self.ledger.db.transact(
            lambda conn: start_member_session(
                conn,
                member_id,
                now_ms=now_ms,
                access_ms=state.access_ms,
                refresh_ms=state.refresh_ms,
            )
        )
        return tokens.access_token

    def auth(self, member_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token_for(member_id)}"}


@pytest.fixture
def mapp(
    ledger: CloudLedger, chain_keys: MemberKeys, cloud_db_url: str, tmp_path: Path
) -> Iterator[MemberApp]:
    seeded = seed_chain(ledger, chain_keys)
    settings, config = settings_for(tmp_path, cloud_db_url)
    load_or_create_chain_keys(settings.data_dir)
    clock = FakeClock(NOW)
    app = build_cloud_app(
        settings,
        ledger=ledger,
        signing_key=load_or_create_signing_key(settings.data_dir),
        clock=clock,
        chain_keys=chain_keys,
    )
    with TestClient(app) as client:
        yield MemberApp(client, ledger, seeded, settings, config, app, clock)
