"""Signing in and out of the HQ console: roles, wrong passwords, timeouts, CSRF, cookies,
`next`. Each on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_sync.cloud.console.auth import COOKIE_NAME
from cloud_sync.cloud.console.login import safe_next
from cloud_sync.cloud.ledger.hq_users import session_hash
from cloud_sync.cloud.ledger.schema import hq_sessions

from .support import PASSWORDS, Console, console, login


@pytest.fixture
def hq(tmp_path: Path, cloud_db_url: str) -> Iterator[Console]:
    with console(tmp_path, cloud_db_url) as built:
        yield built


@pytest.mark.parametrize("name", sorted(PASSWORDS))
def test_each_role_signs_in_sees_itself_and_signs_out(hq: Console, name: str) -> None:
    client = hq.client()
    csrf = login(client, name)
    me = client.get("/api/v1/hq/me").json()
    assert me == {"name": name, "role": PASSWORDS[name][0], "via": "session", "csrf": csrf}
    page = client.get("/hq/audit")
    assert page.status_code == 200
    assert f'data-csrf="{csrf}"' in page.text
    assert 'data-testid="logout"' in page.text
    out = client.post("/hq/logout", data={"csrf": csrf})
    assert out.status_code == 303
    assert out.headers["location"] == "/hq/login"
    assert client.get("/api/v1/hq/me").status_code == 401
    assert client.get("/hq/audit").status_code == 303


def test_the_session_cookie_is_httponly_strict_and_only_its_hash_is_stored(hq: Console) -> None:
    client = hq.client()
    answer = client.post("/hq/login", data={"name": "alice", "password": PASSWORDS["alice"][1]})
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
    assert "Secure" not in cookie
    token = client.cookies[COOKIE_NAME]
    assert len(token) >= 43  # 32 random bytes, base64
    stored = hq.ledger.db.read(lambda conn: conn.execute(hq_sessions.select()).fetchall())
    assert [row.session_hash for row in stored] == [session_hash(token)]
    assert token not in str(stored)


def test_secure_cookies_when_configured(tmp_path: Path) -> None:
    with console(tmp_path, f"sqlite:///{tmp_path / 'c.sqlite3'}", secure_cookies=True) as hq:
        answer = hq.client().post(
            "/hq/login", data={"name": "mark", "password": PASSWORDS["mark"][1]}
        )
        assert answer.status_code == 303
        assert "Secure" in answer.headers["set-cookie"]


def test_a_wrong_password_or_name_signs_nobody_in(hq: Console) -> None:
    client = hq.client()
    for name, password, status in [
        ("alice", "wrong-password-1", 401),
        ("nobody", "whatever-it-is", 401),
        ("alice", "", 422),
    ]:
        answer = client.post("/hq/login", data={"name": name, "password": password})
        assert answer.status_code == status, (name, password)
        assert "set-cookie" not in answer.headers
        assert 'data-testid="login-message"' in answer.text
        if status == 401:
            assert "用户名或密码错误" in answer.text
        assert client.get("/api/v1/hq/me").status_code == 401


def test_a_disabled_user_cannot_sign_in_and_disabling_ends_their_sessions(hq: Console) -> None:
    mark = hq.client()
    login(mark, "mark")
    admin = hq.client()
    csrf = login(admin, "alice")
    changed = admin.patch(
        "/api/v1/hq/users/mark", json={"disabled": True}, headers={"X-CSRF-Token": csrf}
    )
    assert changed.status_code == 200, changed.text
    assert mark.get("/api/v1/hq/me").status_code == 401
    again = hq.client().post("/hq/login", data={"name": "mark", "password": PASSWORDS["mark"][1]})
    assert again.status_code == 401


@pytest.mark.parametrize("change", [{"role": "auditor"}, {"password": "a-new-password-9"}])
def test_a_role_or_password_change_ends_the_users_sessions(
    hq: Console, change: dict[str, str]
) -> None:
    mark = hq.client()
    login(mark, "mark")
    answer = hq.client().patch("/api/v1/hq/users/mark", json=change, headers=hq.admin_headers())
    assert answer.status_code == 200, answer.text
    assert mark.get("/api/v1/hq/me").status_code == 401


def test_an_idle_session_ends_and_activity_keeps_it(hq: Console) -> None:
    client = hq.client()
    login(client, "audrey")
    for _ in range(3):  # 3 x 20 minutes, with a request each time: still signed in
        hq.clock.advance(minutes=20)
        assert client.get("/api/v1/hq/me").status_code == 200
    hq.clock.advance(minutes=31)
    assert client.get("/api/v1/hq/me").status_code == 401
    assert client.get("/hq/audit").status_code == 303
    hq.clock.advance(minutes=-31)  # the expired session was deleted, not merely refused
    assert client.get("/api/v1/hq/me").status_code == 401


def test_a_session_ends_after_its_lifetime_however_active(hq: Console) -> None:
    client = hq.client()
    login(client, "audrey")
    for _ in range(12 * 3 - 1):
        hq.clock.advance(minutes=20)
        assert client.get("/api/v1/hq/me").status_code == 200
    hq.clock.advance(minutes=21)
    assert client.get("/api/v1/hq/me").status_code == 401


def test_a_cookie_cannot_be_replayed_after_logout(hq: Console) -> None:
    client = hq.client()
    csrf = login(client, "alice")
    token = client.cookies[COOKIE_NAME]
    assert client.post("/hq/logout", data={"csrf": csrf}).status_code == 303
    thief = hq.client()
    thief.cookies.set(COOKIE_NAME, token)
    assert thief.get("/api/v1/hq/me").status_code == 401
    assert thief.get("/hq/users").status_code == 303
    refused = thief.post(
        "/api/v1/hq/users", json={"name": "evil", "role": "admin"}, headers={"X-CSRF-Token": csrf}
    )
    assert refused.status_code == 401


def test_signing_in_again_ends_the_browsers_previous_session(hq: Console) -> None:
    client = hq.client()
    login(client, "mark")
    first = client.cookies[COOKIE_NAME]
    login(client, "audrey")
    assert client.cookies[COOKIE_NAME] != first
    replay = hq.client()
    replay.cookies.set(COOKIE_NAME, first)
    assert replay.get("/api/v1/hq/me").status_code == 401
    assert client.get("/api/v1/hq/me").json()["name"] == "audrey"


def test_a_change_needs_the_csrf_token(hq: Console) -> None:
    client = hq.client()
    csrf = login(client, "alice")
    body = {"name": "newbie", "role": "auditor", "password": "newbie-password"}
    missing = client.post("/api/v1/hq/users", json=body)
    assert missing.status_code == 403
    assert missing.json()["error"] == "csrf"
    wrong = client.post("/api/v1/hq/users", json=body, headers={"X-CSRF-Token": csrf[:-1] + "x"})
    assert wrong.status_code == 403
    form = client.post("/hq/users", data={"name": "newbie", "role": "auditor"})
    assert form.status_code == 403
    assert 'data-testid="forbidden"' in form.text
    assert (
        hq.client().get("/api/v1/hq/users", headers=hq.admin_headers()).json()[-1]["name"]
        != "newbie"
    )
    made = client.post("/api/v1/hq/users", json=body, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201, made.text
    by_form = client.post("/hq/users", data={"name": "formed", "role": "auditor", "csrf": csrf})
    assert by_form.status_code == 200
    assert "已添加 formed" in by_form.text
    assert client.post("/hq/logout").status_code == 403  # sign-out is a change too


OUTSIDE = [
    "https://evil.example/",
    "//evil.example/hq",
    "/\\evil.example",
    "http:/hq/x",
    "/hq//evil.example",
    "/other",
    "javascript:alert(1)",
    "/hq/login",
    "/hq\nLocation: //evil.example",
]


@pytest.mark.parametrize("target", OUTSIDE)
def test_next_never_leaves_the_console(target: str) -> None:
    assert safe_next(target) == "/hq/"


def test_a_login_never_redirects_outside_the_console(hq: Console) -> None:
    form = {"name": "mark", "password": PASSWORDS["mark"][1]}
    for target in OUTSIDE:
        answer = hq.client().post("/hq/login", data={**form, "next": target})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/hq/", target


def test_next_takes_the_person_back_to_the_page_they_asked(hq: Console) -> None:
    client = hq.client()
    asked = client.get("/hq/audit?actor=alice")
    assert asked.status_code == 303
    assert asked.headers["location"] == "/hq/login?next=%2Fhq%2Faudit%3Factor%3Dalice"
    form = client.get(asked.headers["location"])
    assert 'name="next" value="/hq/audit?actor=alice"' in form.text
    answer = client.post(
        "/hq/login",
        data={"name": "mark", "password": PASSWORDS["mark"][1], "next": "/hq/audit?actor=alice"},
    )
    assert answer.headers["location"] == "/hq/audit?actor=alice"


def test_a_login_form_posted_from_another_site_is_refused(hq: Console) -> None:
    client = hq.client()
    form = {"name": "mark", "password": PASSWORDS["mark"][1]}
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        answer = client.post("/hq/login", data=form, headers=headers)
        assert answer.status_code == 403
        assert "set-cookie" not in answer.headers
    same = client.post("/hq/login", data=form, headers={"Origin": "http://testserver"})
    assert same.status_code == 303


def test_the_admin_token_still_works_and_needs_no_csrf(hq: Console) -> None:
    client = hq.client()
    me = client.get("/api/v1/hq/me", headers=hq.admin_headers("ops-bot"))
    assert me.json() == {"name": "ops-bot", "role": "admin", "via": "token", "csrf": ""}
    made = client.post(
        "/api/v1/hq/users",
        json={"name": "viaToken", "role": "auditor"},
        headers=hq.admin_headers("ops-bot"),
    )
    assert made.status_code == 201
    wrong = client.get("/api/v1/hq/me", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401


def test_the_login_page_speaks_chinese_first(hq: Console) -> None:
    client = hq.client()
    page = client.get("/hq/login")
    assert page.status_code == 200
    assert "总部控制台登录" in page.text
    assert 'name="name"' in page.text
    assert 'name="password"' in page.text
    assert "Sign in" in client.get("/hq/login?lang=en").text
