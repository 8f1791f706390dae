"""Every console route, found in the built app (so new screens are covered as they are added):
without a session or token an API call is 401 and a page redirects to the login; a change
made with a session but without its CSRF token is 403; an auditor changes nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Mount

from .support import Console, console, login

UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
OPEN = ("/hq/login", "/hq/static")
# Changes any role may make: signing out.
ANY_ROLE_CHANGES = {("POST", "/hq/logout")}


def _walk(routes: Sequence[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _walk(included.routes, prefix + route.include_context.prefix)
        elif isinstance(route, Mount):
            continue
        else:
            for method in sorted(set(getattr(route, "methods", None) or ()) - {"HEAD"}):
                yield method, prefix + route.path


def console_routes(app: Any) -> list[tuple[str, str]]:
    found = {
        (method, path)
        for method, path in _walk(app.routes)
        if (path.startswith("/api/v1/hq/") or path == "/hq" or path.startswith("/hq/"))
        and not path.startswith(OPEN)
    }
    return sorted(found)


def concrete(path: str) -> str:
    """A template's path parameters filled with a dummy value."""
    return re.sub(r"\{[^}]+\}", "dummy1", path)


def is_api(path: str) -> bool:
    return path.startswith("/api/")


@pytest.fixture
def hq(tmp_path: Path, cloud_db_url: str) -> Iterator[Console]:
    with console(tmp_path, cloud_db_url) as built:
        yield built


def _send(client: TestClient, method: str, path: str, **kwargs: Any) -> Any:
    return client.request(method, concrete(path), **kwargs)


def test_the_walk_finds_this_helpers_routes(hq: Console) -> None:
    routes = console_routes(hq.app)
    for expected in [
        ("GET", "/api/v1/hq/me"),
        ("PATCH", "/api/v1/hq/users/{name}"),
        ("POST", "/hq/logout"),
        ("GET", "/hq/audit"),
        ("POST", "/hq/users/{name}"),
    ]:
        assert expected in routes
    assert not any(path.startswith(OPEN) for _, path in routes)


def test_without_a_session_or_token_apis_answer_401_and_pages_redirect(hq: Console) -> None:
    client = hq.client()
    for method, path in console_routes(hq.app):
        answer = _send(client, method, path)
        if is_api(path):
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.json()["error"] == "unauthorized"
        else:
            assert answer.status_code == 303, (method, path, answer.status_code)
            assert answer.headers["location"].startswith("/hq/login?next="), (method, path)


def test_a_forged_cookie_is_no_session(hq: Console) -> None:
    client = hq.client()
    client.cookies.set("lp_hq_session", "forged-" + "x" * 40)
    for method, path in console_routes(hq.app):
        answer = _send(client, method, path)
        assert answer.status_code == (401 if is_api(path) else 303), (method, path)


def test_every_change_with_a_session_but_no_csrf_token_is_403(hq: Console) -> None:
    client = hq.client()
    login(client, "alice")
    changes = [(m, p) for m, p in console_routes(hq.app) if m in UNSAFE]
    assert changes
    for method, path in changes:
        bodies: list[dict[str, Any]] = [{}, {"json": {}}, {"data": {"x": "1"}}]
        for kwargs in bodies:
            answer = _send(client, method, path, **kwargs)
            assert answer.status_code == 403, (method, path, kwargs, answer.text)
            if is_api(path):
                assert answer.json()["error"] == "csrf"
            else:
                assert 'data-testid="forbidden"' in answer.text
    assert client.get("/api/v1/hq/me").status_code == 200  # still signed in


def test_an_auditor_changes_nothing(hq: Console) -> None:
    client = hq.client()
    csrf = login(client, "audrey")
    changes = [
        (m, p) for m, p in console_routes(hq.app) if m in UNSAFE and (m, p) not in ANY_ROLE_CHANGES
    ]
    for method, path in changes:
        answer = _send(client, method, path, headers={"X-CSRF-Token": csrf})
        assert answer.status_code == 403, (method, path, answer.text)
        if is_api(path):
            assert answer.json()["error"] == "forbidden"
    before = hq.audit()
    assert all(entry["actor"] != "audrey" for entry in before)
