"""HQ's people and their signed-in browsers: `hq_users` and `hq_sessions`.

Passwords are hashed with argon2id at OWASP's minimum setting (m = 19 MiB, t = 2, p = 1),
as the station hashes its PINs: each hash in flight holds its memory, and the console lets
only a few run at once. An unknown or disabled name costs one verification against a dummy
hash, so the time taken does not tell which names exist.

A session is a random token the browser holds; only its SHA-256 is stored, so a copy of the
database signs nobody in. A session ends after `idle` without a request, after `lifetime`
in any case, at logout, and whenever its user is disabled or their password or role changes.
Every change is audited in its own transaction (never a password or a hash).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Final

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, delete, func, insert, select, update

from .audit import record_audit
from .errors import LedgerError
from .schema import hq_sessions, hq_users

__all__ = [
    "HQ_ROLES",
    "MAX_PASSWORD",
    "MIN_PASSWORD",
    "HqSession",
    "add_hq_user",
    "check_password",
    "end_session",
    "generate_password",
    "hash_password",
    "hq_user",
    "list_hq_users",
    "peek_session",
    "session_hash",
    "session_of",
    "start_session",
    "update_hq_user",
    "validate_name",
    "validate_password",
    "validate_role",
]

HQ_ROLES: Final = ("admin", "marketer", "auditor")
MIN_PASSWORD: Final = 10
MAX_PASSWORD: Final = 256
_NAME: Final = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")
_TOUCH_MS: Final = 15_000  # a session's last-seen is rewritten at most this often
_hasher: Final = PasswordHasher(
    time_cost=2, memory_cost=19_456, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
)


@cache
def _dummy_hash() -> str:
    return _hasher.hash("not a password: the cost of an unknown name")


def validate_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise LedgerError("user.name", "a user name is 1-32 letters, digits, '.', '_' or '-'")
    return name


def validate_role(role: str) -> str:
    if role not in HQ_ROLES:
        raise LedgerError("user.role", f"the role is one of {', '.join(HQ_ROLES)}")
    return role


def validate_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise LedgerError(
            "user.password", f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters long"
        )
    if password.strip() != password:
        raise LedgerError("user.password", "a password has no spaces at either end")
    return password


def generate_password() -> str:
    """16 URL-safe random characters (96 bits), shown once to the admin who asked."""
    return secrets.token_urlsafe(12)


def hash_password(password: str) -> str:
    """Blocking (one argon2 hash): run it within the console's hashing slots."""
    return _hasher.hash(validate_password(password))


def session_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _public(row: Any) -> dict[str, Any]:
    return {
        "name": row.name,
        "role": row.role,
        "disabled": bool(row.disabled),
        "created_at": row.created_at,
        "created_by": row.created_by,
    }


def hq_user(conn: Connection, name: str) -> dict[str, Any] | None:
    row = conn.execute(select(hq_users).where(hq_users.c.name == name)).first()
    return None if row is None else _public(row)


def list_hq_users(conn: Connection) -> list[dict[str, Any]]:
    """Every HQ user by name, with the number of live sessions (never a hash)."""
    sessions = (
        select(hq_sessions.c.name, func.count().label("sessions"))
        .group_by(hq_sessions.c.name)
        .subquery()
    )
    stmt = (
        select(hq_users, func.coalesce(sessions.c.sessions, 0).label("sessions"))
        .select_from(hq_users.outerjoin(sessions, sessions.c.name == hq_users.c.name))
        .order_by(hq_users.c.name)
    )
    return [{**_public(row), "sessions": int(row.sessions)} for row in conn.execute(stmt)]


def add_hq_user(
    conn: Connection, *, name: str, role: str, password_hash: str, by: str, at: datetime
) -> dict[str, Any]:
    validate_name(name)
    validate_role(role)
    if conn.execute(select(hq_users.c.name).where(hq_users.c.name == name)).first():
        raise LedgerError("user.exists", f"an HQ user named {name} exists already")
    conn.execute(
        insert(hq_users).values(
            name=name,
            role=role,
            password_hash=password_hash,
            created_at=at.isoformat(),
            created_by=by,
            disabled=False,
        )
    )
    after = {"role": role, "disabled": False}
    record_audit(conn, actor=by, action="user.add", target=name, at=at, after=after)
    user = hq_user(conn, name)
    assert user is not None
    return user


def _active_admins(conn: Connection) -> int:
    stmt = (
        select(func.count())
        .select_from(hq_users)
        .where(hq_users.c.role == "admin", hq_users.c.disabled.is_(False))
    )
    return int(conn.execute(stmt).scalar_one())


def update_hq_user(
    conn: Connection,
    name: str,
    *,
    by: str,
    at: datetime,
    role: str | None = None,
    disabled: bool | None = None,
    password_hash: str | None = None,
) -> dict[str, Any]:
    """Change a user's role, switch them off or on, or set their password; each change that
    happened is one audit row, and any of them ends the user's sessions."""
    row = conn.execute(select(hq_users).where(hq_users.c.name == name)).first()
    if row is None:
        raise LedgerError("user.unknown", f"no HQ user named {name}")
    before = {"role": row.role, "disabled": bool(row.disabled)}
    after = dict(before)
    if role is not None:
        after["role"] = validate_role(role)
    if disabled is not None:
        after["disabled"] = disabled
    was_admin = before["role"] == "admin" and not before["disabled"]
    stays_admin = after["role"] == "admin" and not after["disabled"]
    if was_admin and not stays_admin and _active_admins(conn) <= 1:
        raise LedgerError("user.last_admin", "the last active admin cannot be demoted or disabled")
    values: dict[str, Any] = {}
    if after != before:
        values.update(role=after["role"], disabled=after["disabled"])
    if after["role"] != before["role"]:
        change = {"before": {"role": before["role"]}, "after": {"role": after["role"]}}
        record_audit(conn, actor=by, action="user.role", target=name, at=at, **change)
    if after["disabled"] != before["disabled"]:
        action = "user.disable" if after["disabled"] else "user.enable"
        record_audit(conn, actor=by, action=action, target=name, at=at)
    if password_hash is not None:
        values["password_hash"] = password_hash
        record_audit(conn, actor=by, action="user.password", target=name, at=at)
    if values:
        conn.execute(update(hq_users).where(hq_users.c.name == name).values(**values))
        conn.execute(delete(hq_sessions).where(hq_sessions.c.name == name))
    user = hq_user(conn, name)
    assert user is not None
    return user


def check_password(conn: Connection, name: str, password: str) -> dict[str, Any] | None:
    """The user when the password is theirs and the login is enabled; None otherwise.

    Blocking (one argon2 verification) and the same cost for a name that does not exist.
    """
    row = conn.execute(select(hq_users).where(hq_users.c.name == name)).first()
    if row is None or row.disabled:
        with suppress(VerificationError):
            _hasher.verify(_dummy_hash(), password)
        return None
    try:
        _hasher.verify(row.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return _public(row)


@dataclass(frozen=True)
class HqSession:
    name: str
    role: str
    csrf: str


def start_session(conn: Connection, name: str, *, now_ms: int, max_age_ms: int) -> tuple[str, str]:
    """A new session for `name`: (the browser's token, its CSRF token). Sessions past their
    lifetime are swept here, so the table never grows with abandoned browsers."""
    conn.execute(delete(hq_sessions).where(hq_sessions.c.created_ms < now_ms - max_age_ms))
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    conn.execute(
        insert(hq_sessions).values(
            session_hash=session_hash(token),
            name=name,
            csrf=csrf,
            created_ms=now_ms,
            seen_ms=now_ms,
        )
    )
    return token, csrf


def peek_session(
    conn: Connection, token: str, *, now_ms: int, idle_ms: int, max_age_ms: int
) -> tuple[bool, HqSession | None]:
    """Without writing: (whether `session_of` must write, the live session or None).

    Most requests only read (a session's last-seen is rewritten at most every 15 s), so on
    SQLite they never take the write lock."""
    key = session_hash(token)
    stmt = (
        select(hq_sessions, hq_users.c.role, hq_users.c.disabled)
        .select_from(hq_sessions.join(hq_users, hq_users.c.name == hq_sessions.c.name))
        .where(hq_sessions.c.session_hash == key)
    )
    row = conn.execute(stmt).first()
    if row is None:
        return False, None
    if row.disabled or now_ms - row.seen_ms > idle_ms or now_ms - row.created_ms > max_age_ms:
        return True, None
    return now_ms - row.seen_ms >= _TOUCH_MS, HqSession(row.name, row.role, row.csrf)


def session_of(
    conn: Connection, token: str, *, now_ms: int, idle_ms: int, max_age_ms: int
) -> HqSession | None:
    """The live session of `token` (its user enabled), touched; an expired one is deleted."""
    key = session_hash(token)
    write, session = peek_session(
        conn, token, now_ms=now_ms, idle_ms=idle_ms, max_age_ms=max_age_ms
    )
    if write and session is None:
        conn.execute(delete(hq_sessions).where(hq_sessions.c.session_hash == key))
    elif write:
        conn.execute(
            update(hq_sessions).where(hq_sessions.c.session_hash == key).values(seen_ms=now_ms)
        )
    return session


def end_session(conn: Connection, token: str) -> None:
    conn.execute(delete(hq_sessions).where(hq_sessions.c.session_hash == session_hash(token)))
