"""HQ user management through the API and the page (admins only), each change audited in
its own transaction, never a password or a hash in the audit. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import PASSWORDS, Console, console, login


@pytest.fixture
def hq(tmp_path: Path, cloud_db_url: str) -> Iterator[Console]:
    with console(tmp_path, cloud_db_url) as built:
        yield built


def test_an_admin_adds_a_user_who_can_then_sign_in(hq: Console) -> None:
    admin = hq.client()
    csrf = login(admin, "alice")
    typed = admin.post(
        "/api/v1/hq/users",
        json={"name": "zoe", "role": "marketer", "password": "zoe-typed-password"},
        headers={"X-CSRF-Token": csrf},
    )
    assert typed.status_code == 201, typed.text
    assert typed.json()["name"] == "zoe"
    assert "password" not in typed.json()  # a typed password is never echoed
    generated = admin.post(
        "/api/v1/hq/users", json={"name": "yan", "role": "auditor"}, headers={"X-CSRF-Token": csrf}
    )
    password = generated.json()["password"]
    assert len(password) >= 16
    login(hq.client(), "zoe", "zoe-typed-password")
    login(hq.client(), "yan", password)
    listed = admin.get("/api/v1/hq/users").json()
    assert [u["name"] for u in listed] == ["alice", "audrey", "mark", "yan", "zoe"]
    assert next(u for u in listed if u["name"] == "alice")["sessions"] == 1
    assert "argon2" not in json.dumps(listed)
    audit = hq.audit()
    assert [(e["actor"], e["action"], e["target"]) for e in audit[:2]] == [
        ("alice", "user.add", "yan"),
        ("alice", "user.add", "zoe"),
    ]
    text = json.dumps(audit)
    assert password not in text
    assert "zoe-typed-password" not in text
    assert "argon2" not in text


def test_role_disable_enable_and_password_changes_are_audited(hq: Console) -> None:
    client = hq.client()
    headers = hq.admin_headers("ops")
    for change in (
        {"role": "admin"},
        {"disabled": True},
        {"disabled": False},
        {"password": "brand-new-pass-1"},
        {"generate_password": True},
    ):
        answer = client.patch("/api/v1/hq/users/mark", json=change, headers=headers)
        assert answer.status_code == 200, (change, answer.text)
    final = answer.json()
    assert final["role"] == "admin"
    assert final["disabled"] is False
    login(hq.client(), "mark", final["password"])
    audit = [(e["action"], e["before"], e["after"]) for e in hq.audit() if e["actor"] == "ops"]
    assert audit == [
        ("user.password", None, None),
        ("user.password", None, None),
        ("user.enable", None, None),
        ("user.disable", None, None),
        ("user.role", {"role": "marketer"}, {"role": "admin"}),
    ]
    assert "brand-new-pass-1" not in json.dumps(hq.audit())


BAD_USERS = [
    ({"name": "alice", "role": "auditor", "password": "long-enough-pw"}, 409, "user.exists"),
    ({"name": "bad name", "role": "auditor"}, 422, "user.name"),
    ({"name": "short", "role": "auditor", "password": "short"}, 422, "user.password"),
    ({"name": "spaces", "role": "auditor", "password": " padded-password "}, 422, "user.password"),
    ({"name": "x", "role": "owner"}, 422, "invalid"),
    ({"name": "x" * 33, "role": "auditor"}, 422, "invalid"),
    ({"name": "x", "role": "auditor", "password": "p" * 257}, 422, "invalid"),
]


def test_bad_users_are_refused_with_a_reason(hq: Console) -> None:
    for body, status, code in BAD_USERS:
        answer = hq.client().post("/api/v1/hq/users", json=body, headers=hq.admin_headers())
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()["error"] == code, body
    assert [e for e in hq.audit() if e["actor"] == "robot"] == []


def test_the_last_admin_stays_and_unknown_users_are_404(hq: Console) -> None:
    client = hq.client()
    headers = hq.admin_headers()
    last = client.patch("/api/v1/hq/users/alice", json={"role": "marketer"}, headers=headers)
    assert last.status_code == 409
    assert last.json()["error"] == "user.last_admin"
    off = client.patch("/api/v1/hq/users/alice", json={"disabled": True}, headers=headers)
    assert off.json()["error"] == "user.last_admin"
    ghost = client.patch("/api/v1/hq/users/ghost", json={"disabled": True}, headers=headers)
    assert ghost.status_code == 404
    assert ghost.json()["error"] == "user.unknown"
    # With a second admin, the first may step down.
    assert client.patch("/api/v1/hq/users/mark", json={"role": "admin"}, headers=headers).is_success
    assert client.patch(
        "/api/v1/hq/users/alice", json={"role": "auditor"}, headers=headers
    ).is_success


@pytest.mark.parametrize("name", ["mark", "audrey"])
def test_only_admins_manage_users(hq: Console, name: str) -> None:
    client = hq.client()
    csrf = login(client, name)
    assert client.get("/api/v1/hq/users").status_code == 403
    page = client.get("/hq/users")
    assert page.status_code == 403
    assert 'data-testid="forbidden"' in page.text
    assert "您的角色不能使用此页面" in page.text
    made = client.post(
        "/api/v1/hq/users", json={"name": "sneak", "role": "admin"}, headers={"X-CSRF-Token": csrf}
    )
    assert made.status_code == 403
    audit_page = client.get("/hq/audit")
    assert audit_page.status_code == 200
    assert 'data-testid="nav-users"' not in audit_page.text


def test_the_users_page_adds_changes_disables_and_resets(hq: Console) -> None:
    client = hq.client()
    csrf = login(client, "alice")
    page = client.get("/hq/users")
    assert page.status_code == 200
    assert 'data-testid="user-mark"' in page.text
    assert 'data-testid="nav-users"' in page.text
    added = client.post("/hq/users", data={"name": "page1", "role": "marketer", "csrf": csrf})
    assert "初始密码" in added.text
    role = client.post("/hq/users/page1", data={"action": "role", "role": "admin", "csrf": csrf})
    assert "已更新 page1" in role.text
    off = client.post("/hq/users/page1", data={"action": "disable", "csrf": csrf})
    assert off.status_code == 200
    reset = client.post("/hq/users/mark", data={"action": "reset", "csrf": csrf})
    assert "新密码" in reset.text
    bad = client.post("/hq/users", data={"name": "<script>", "role": "auditor", "csrf": csrf})
    assert bad.status_code == 422
    assert "<script>" not in bad.text
    nonsense = client.post("/hq/users/mark", data={"action": "explode", "csrf": csrf})
    assert nonsense.status_code == 422
    actions = [(e["action"], e["target"]) for e in hq.audit() if e["actor"] == "alice"]
    assert actions == [
        ("user.password", "mark"),
        ("user.disable", "page1"),
        ("user.role", "page1"),
        ("user.add", "page1"),
    ]
    assert PASSWORDS["mark"][1] not in json.dumps(hq.audit())
