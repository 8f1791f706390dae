"""The cloud's /openapi.json tells the truth: schemathesis, every check, every operation.

A real ledger on SQLite, the HQ admin token on HQ routes and an enrolled station's token on
the sync routes. No server error, no response outside its schema, no undocumented status.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI, HTTPException

from tests.openapi_contract import run_contract

from .helpers import ADMIN_TOKEN
from .sqlite_cloud import sqlite_cloud

pytestmark = pytest.mark.slow


def test_cloud_openapi_holds_under_schemathesis(tmp_path: Path) -> None:
    with sqlite_cloud(tmp_path) as cloud:
        auth = {
            "AdminToken": {"bearer": ADMIN_TOKEN},
            "StationToken": {"bearer": cloud.station_token},
        }
        tested, failures = run_contract(cloud.app, "/openapi.json", auth)
    assert len(tested) >= 19
    assert failures == [], "\n\n".join(failures)


def test_the_harness_reports_an_undocumented_status() -> None:
    """A route that answers 404 without saying so is caught (the harness is not blind)."""
    app = FastAPI()

    @app.get("/things/{name}")
    def thing(name: str) -> dict[str, str]:
        if name != "known":
            raise HTTPException(404, "no such thing")
        return {"name": name}

    tested, failures = run_contract(app, "/openapi.json", {}, max_examples=10)
    assert tested == ["GET /things/{name}"]
    assert len(failures) == 1
    assert "Undocumented status code" in failures[0]
