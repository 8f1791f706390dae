"""Fixtures for the cashier page: a real station store with users, the app, signed-in clients.

argon2 makes every PIN hash cost ~0.2 s, so the users are hashed once per session into a
template store that each test copies, and most tests open their session directly instead
of logging in (the login itself has its own tests).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from drivers.events import PumpStatus
from edge_agent.services.members import MemberView, register_member
from edge_agent.services.rules import install_ruleset
from edge_agent.services.sales import SaleInput, SaleView, attach_member, record_sale
from edge_agent.services.station import Station, open_station
from edge_agent.services.users import add_user
from edge_agent.web.app import build_app
from edge_agent.web.auth import COOKIE_NAME
from edge_agent.web.context import WebContext
from edge_agent.web.live import LiveBoard
from tests import browser as shared_browser
from tests.support import RULESETS, SHANGHAI, FakeClock, make_settings

USERS = {"alice": ("cashier", "2468"), "bob": ("cashier", "1357"), "mia": ("manager", "9753")}

browser = shared_browser.browser  # Debian's chromium, for tests/web and its importers

SignIn = Callable[[str], TestClient]
MakeSale = Callable[..., SaleView]


def refused(answer: httpx.Response, status: int, code: str) -> str:
    """Assert a JSON refusal's status and code; returns its translated message."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error"] == code, body
    return str(body["message"])


def shows(answer: httpx.Response, status: int, *testids: str) -> str:
    """Assert an HTML answer's status and that it carries these data-testids; returns it."""
    assert answer.status_code == status, answer.text[:800]
    for testid in testids:
        assert f'data-testid="{testid}"' in answer.text, testid
    return answer.text


def pump(fp: int, state: str) -> PumpStatus:
    return PumpStatus("dart", fp, state, 1, datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI))


@pytest.fixture(scope="session")
def template_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A station store with the field-example rules and three users, built once."""
    data = tmp_path_factory.mktemp("web-template") / "data"
    with open_station(make_settings(data), create=True) as station:
        install_ruleset(station, (RULESETS / "field-examples.json").read_bytes(), actor="test")
        for name, (role, pin) in USERS.items():
            add_user(station, name=name, role=role, pin=pin, actor="test")
    return data


@pytest.fixture
def station(tmp_path: Path, clock: FakeClock, template_data: Path) -> Iterator[Station]:
    data = tmp_path / "data"
    shutil.copytree(template_data, data)
    opened = open_station(make_settings(data), clock=clock)
    yield opened
    opened.close()


@pytest.fixture
def live() -> LiveBoard:
    return LiveBoard()


@pytest.fixture
def app(station: Station, live: LiveBoard) -> FastAPI:
    return build_app(station, live=live)


def context_of(app: FastAPI) -> WebContext:
    ctx = app.state.ctx
    assert isinstance(ctx, WebContext)
    return ctx


@pytest.fixture
def anon(app: FastAPI) -> TestClient:
    return TestClient(app, follow_redirects=False, base_url="http://127.0.0.1")


@pytest.fixture
def sign_in(app: FastAPI) -> SignIn:
    """A client with an open session for a user, sending the CSRF header by default."""

    def open_client(name: str) -> TestClient:
        session = context_of(app).sessions.create(name, USERS[name][0])
        client = TestClient(app, follow_redirects=False, base_url="http://127.0.0.1")
        client.cookies.set(COOKIE_NAME, session.token)
        client.headers["X-CSRF-Token"] = session.csrf_token
        return client

    return open_client


@pytest.fixture
def cashier(sign_in: SignIn) -> TestClient:
    return sign_in("alice")


@pytest.fixture
def manager(sign_in: SignIn) -> TestClient:
    return sign_in("mia")


@pytest.fixture
def member(station: Station) -> MemberView:
    return register_member(
        station,
        phone="13800138000",
        plates=["京A12345"],
        name="王小明",
        consent_channel="web",
        actor="test",
    )


@pytest.fixture
def make_sale(station: Station, clock: FakeClock) -> MakeSale:
    """Record a dispenser sale (no member) that ended a minute ago."""
    counter = iter(range(1, 10_000))

    def make(litres: str = "40.00", amount: str = "300.00", pump: int = 1) -> SaleView:
        number = next(counter)
        sale = SaleInput(
            source="dart",
            pump=pump,
            nozzle=1,
            grade="92",
            litres=Decimal(litres),
            amount=Decimal(amount),
            ended_at=clock() - timedelta(minutes=1),
            source_key=f"dart:test:{number}",
        )
        return record_sale(station, sale).sale

    return make


@pytest.fixture
def rich_member(station: Station, member: MemberView, make_sale: MakeSale) -> MemberView:
    """The member with 400 points from one 400-litre sale."""
    sale = make_sale(litres="400.00", amount="3000.00")
    attach_member(station, sale.sale_id, member.member_id, actor="test")
    return member
