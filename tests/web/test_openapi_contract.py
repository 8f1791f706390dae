"""The cashier API's /api/v1/openapi.json tells the truth: schemathesis, every check.

A station with a store, a member and a few sales; a logged-in manager's session cookie
and CSRF header as the document's two security schemes. No server error, no response
outside its schema, no undocumented status. `POST /api/v1/logout` is left out (it ends
the very session the run uses; test_web_api covers it) and so is the endless
`GET /api/v1/events` stream.
"""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from edge_agent.services.members import MemberView
from edge_agent.web.app import OPENAPI_URL
from edge_agent.web.auth import COOKIE_NAME
from tests.openapi_contract import run_contract
from tests.web.conftest import MakeSale, context_of

pytestmark = pytest.mark.slow

SKIP = frozenset({"POST /api/v1/logout", "GET /api/v1/events"})


def test_station_openapi_holds_under_schemathesis(
    app: FastAPI, member: MemberView, make_sale: MakeSale
) -> None:
    for _ in range(3):
        make_sale()
    session = context_of(app).sessions.create("mia", "manager")
    auth = {
        "SessionCookie": {"api_key": session.token},
        "CsrfToken": {"api_key": session.csrf_token},
    }
    tested, failures = run_contract(
        app,
        OPENAPI_URL,
        auth,
        skip=SKIP,
        base_url="http://127.0.0.1",
        load_headers={"Host": "127.0.0.1", "Cookie": f"{COOKIE_NAME}={session.token}"},
        max_examples=20,
    )
    assert len(tested) >= 10
    assert failures == [], "\n\n".join(failures)


def test_the_document_needs_a_session(anon: TestClient, app: FastAPI) -> None:
    assert anon.get(OPENAPI_URL).status_code == 401
    session = context_of(app).sessions.create("alice", "cashier")
    anon.cookies.set(COOKIE_NAME, session.token)
    document = anon.get(OPENAPI_URL).json()
    assert all(path.startswith("/api/v1/") for path in document["paths"])
    text = str(document["paths"])
    assert "HTTPValidationError" not in text
    sales = document["paths"]["/api/v1/sales"]["get"]
    assert {"400", "401", "404", "422"} <= set(sales["responses"])
    assert "Excludes before_time" in text
