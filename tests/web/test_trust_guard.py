"""The cashier page's front door (issue 13): host names, same-origin changes, bounded bodies.

In-process (TestClient); the real-process versions (a real `edge run`, a real browser) are
in tests/edge_agent/test_trust_agent.py and tests/web/test_trust_browser.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from edge_agent.services.station import Station
from edge_agent.settings import WebSettings
from edge_agent.web.app import build_app
from edge_agent.web.guard import MAX_BODY, allowed_host_names, host_name
from tests.web.conftest import context_of, refused

OWN = "http://127.0.0.1"
FOREIGN = "http://evil.example"


def _chunks(total: int, size: int = 8192) -> Iterator[bytes]:
    """A body sent chunked (no Content-Length): httpx streams an iterator."""
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b"x" * piece


# --------------------------------------------------------------------------- Host


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example"])
def test_a_foreign_host_is_answered_400_before_any_route(anon: TestClient, host: str) -> None:
    refused(anon.get("/api/v1/pumps", headers={"Host": host}), 400, "request.bad_host")
    page = anon.get("/login", headers={"Host": host})
    assert page.status_code == 400
    assert "lp_session" not in page.headers.get("set-cookie", "")
    assert page.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.1:8080", "localhost:9", "LOCALHOST", "[::1]:8080"]
)
def test_the_loopback_names_are_served_with_or_without_a_port(anon: TestClient, host: str) -> None:
    assert anon.get("/login", headers={"Host": host}).status_code == 200


def test_configured_names_are_served_too(station: Station) -> None:
    web = WebSettings(host="0.0.0.0", allowed_hosts=["till.local", "192.168.1.20"])
    settings = station.settings.model_copy(update={"web": web})
    app = build_app(dataclasses.replace(station, settings=settings))
    client = TestClient(app, base_url="http://till.local:8080")
    assert client.get("/login").status_code == 200
    assert client.get("/login", headers={"Host": "192.168.1.20:8080"}).status_code == 200
    assert client.get("/login", headers={"Host": "0.0.0.0:8080"}).status_code == 400
    assert client.get("/login", headers={"Host": "other.local"}).status_code == 400


def test_host_names_parse() -> None:
    assert allowed_host_names("::1") >= {"[::1]", "localhost", "127.0.0.1"}
    assert allowed_host_names("station.LAN") >= {"station.lan"}
    assert host_name("[::1]:8080") == "[::1]"
    assert host_name("Till.Local:80") == "till.local"
    assert host_name("till.local:80x") is None
    assert host_name("[::1") is None


# --------------------------------------------------------------------------- same origin


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": FOREIGN},
        {"Origin": "http://127.0.0.1:9999"},  # another port of this PC is another site
        {"Origin": "https://127.0.0.1"},  # another scheme too
        {"Origin": "null"},
        {"Referer": f"{FOREIGN}/phish.html"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "not a url"},
    ],
)
def test_a_cross_site_login_is_refused_before_it_is_counted(
    anon: TestClient, app: FastAPI, headers: dict[str, str]
) -> None:
    limiter = context_of(app).limiter
    for _ in range(8):  # beyond the limit: none of them may count against alice
        form = anon.post("/login", data={"name": "alice", "pin": "0000"}, headers=headers)
        assert form.status_code == 403, form.text
        api = anon.post("/api/v1/login", json={"name": "alice", "pin": "0000"}, headers=headers)
        refused(api, 403, "request.cross_site")
    assert limiter.attempts() == 0
    assert anon.post("/api/v1/login", json={"name": "alice", "pin": "2468"}).status_code == 200


def test_a_cross_site_change_with_a_session_is_refused(cashier: TestClient) -> None:
    member = {"phone": "13900139000", "consent": True}
    refused(
        cashier.post("/api/v1/members", json=member, headers={"Origin": FOREIGN}),
        403,
        "request.cross_site",
    )
    assert cashier.post("/api/v1/members", json=member, headers={"Origin": OWN}).status_code == 201


def test_same_origin_changes_and_cross_site_reads_pass(anon: TestClient) -> None:
    same = anon.post(
        "/login", data={"name": "alice", "pin": "2468"}, headers={"Origin": OWN, "Referer": OWN}
    )
    assert same.headers["location"] == "/"
    assert anon.get("/login", headers={"Origin": FOREIGN}).status_code in (200, 303)
    assert anon.get("/", headers={"Referer": FOREIGN}).status_code == 200


def test_pages_send_their_origin_on_their_own_posts(anon: TestClient) -> None:
    """`no-referrer` would make a browser send `Origin: null` on the page's own forms."""
    assert anon.get("/login").headers["Referrer-Policy"] == "same-origin"


# --------------------------------------------------------------------------- body size


@pytest.mark.parametrize(
    ("path", "kind"),
    [("/api/v1/login", "json"), ("/api/v1/members", "json"), ("/login", "form")],
)
def test_chunked_bodies_past_the_limit_are_413_before_parsing(
    cashier: TestClient, app: FastAPI, path: str, kind: str
) -> None:
    content_type = "application/json" if kind == "json" else "application/x-www-form-urlencoded"
    answer = cashier.post(
        path, content=_chunks(MAX_BODY + 1), headers={"Content-Type": content_type}
    )
    assert answer.status_code == 413, answer.text
    assert "content-length" not in answer.request.headers
    assert answer.request.headers["transfer-encoding"] == "chunked"
    assert context_of(app).limiter.attempts() == 0


def test_a_body_at_the_limit_reaches_the_parser(anon: TestClient) -> None:
    json_type = {"Content-Type": "application/json"}
    at_limit = anon.post("/api/v1/login", content=_chunks(MAX_BODY), headers=json_type)
    refused(at_limit, 422, "request.invalid")  # parsed (and refused as JSON), not 413
    declared = anon.post("/api/v1/login", content=b"x" * (MAX_BODY + 1), headers=json_type)
    refused(declared, 413, "request.too_large")
