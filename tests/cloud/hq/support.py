"""An HQ console over a real ledger with one user per role, and signing in as them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection

from cloud_sync.cloud.console.auth import COOKIE_NAME, HqState
from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.cloud.ledger.audit import audit_entries
from cloud_sync.cloud.ledger.hq_users import add_hq_user, hash_password
from cloud_sync.cloud.server.app import build_cloud_app
from cloud_sync.cloud.server.keyfiles import load_or_create_chain_keys, load_or_create_signing_key
from cloud_sync.cloud.server.settings import CloudSettings
from tests.cloud.server.helpers import ADMIN_TOKEN
from tests.support import FakeClock

__all__ = ["ADMIN_TOKEN", "PASSWORDS", "Console", "add_user", "cloud_settings", "console", "login"]

PASSWORDS = {
    "alice": ("admin", "alice-password-1"),
    "mark": ("marketer", "mark-password-22"),
    "audrey": ("auditor", "audrey-password-3"),
}
START = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


@dataclass
class Console:
    app: FastAPI
    ledger: CloudLedger
    clock: FakeClock

    @property
    def state(self) -> HqState:
        state = self.app.state.hq
        assert isinstance(state, HqState)
        return state

    def client(self) -> TestClient:
        return TestClient(self.app, follow_redirects=False)

    def signed_in(self, name: str) -> TestClient:
        """A client with `name`'s session (signed in through the form)."""
        client = self.client()
        login(client, name)
        return client

    def admin_headers(self, actor: str = "robot") -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-HQ-Actor": actor}

    def audit(self) -> list[dict[str, Any]]:
        return self.ledger.db.read(lambda conn: audit_entries(conn, limit=1000))


def cloud_settings(directory: Path, database_url: str, **sections: Any) -> CloudSettings:
    """The cloud's settings: data under `directory`/cloud, the admin token, `sections` added."""
    cloud = {
        "data_dir": str(directory / "cloud"),
        "database_url": database_url,
        "admin_token": ADMIN_TOKEN,
    }
    return CloudSettings.model_validate({"cloud": cloud, **sections})


@contextmanager
def console(directory: Path, database_url: str, **hq: Any) -> Iterator[Console]:
    """The cloud app with `[hq]` set to `hq`, and alice (admin), mark, audrey signed up."""
    settings = cloud_settings(directory, database_url, hq=hq)
    keys = load_or_create_chain_keys(settings.data_dir)
    signing_key = load_or_create_signing_key(settings.data_dir)
    clock = FakeClock(START)
    ledger = CloudLedger.open(settings.database_url, chain_keys=keys)
    try:
        for name, (role, password) in PASSWORDS.items():
            add_user(ledger, name, role, password)
        app = build_cloud_app(settings, ledger=ledger, signing_key=signing_key, clock=clock)
        yield Console(app, ledger, clock)
    finally:
        ledger.close()


@cache
def _hashed(password: str) -> str:
    """One argon2 hash per password per test run (each costs a tenth of a second)."""
    return hash_password(password)


def add_user(ledger: CloudLedger, name: str, role: str, password: str) -> None:
    hashed = _hashed(password)

    def work(conn: Connection) -> object:
        return add_hq_user(conn, name=name, role=role, password_hash=hashed, by="setup", at=START)

    ledger.db.transact(work)


def login(client: TestClient, name: str, password: str | None = None, **form: str) -> str:
    """Sign in through the form; the session's CSRF token (the client keeps the cookie)."""
    password = PASSWORDS[name][1] if password is None else password
    answer = client.post("/hq/login", data={"name": name, "password": password, **form})
    assert answer.status_code == 303, answer.text
    assert client.cookies.get(COOKIE_NAME)
    me = client.get("/api/v1/hq/me")
    assert me.status_code == 200, me.text
    csrf = me.json()["csrf"]
    assert isinstance(csrf, str)
    assert csrf
    return csrf
