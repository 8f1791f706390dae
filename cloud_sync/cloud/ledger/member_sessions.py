"""A member's signed-in app: short-lived access tokens, rotating refresh tokens, revocation.

Tokens are random (256 bits) and only their SHA-256 is stored, so a copy of the database
signs nobody in. An access token names its session; a refresh gives the session a new pair
and kills the old refresh token at once. The killed token is remembered: presented again
later than `REUSE_GRACE_MS` after the rotation, it means two holders (the member and a
thief, in some order), so the session is revoked and both must sign in again. Within the
grace it is refused without revoking: that is the loser of two refreshes the app itself sent
at once. Only the last killed token is remembered; older ones are merely unknown. Revoking
the session, or all of a member's sessions when the member is erased, ends them; revoked and
expired rows are swept when new sessions start.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy import Connection, delete, insert, or_, select, update

from .schema_app import member_sessions

__all__ = [
    "ACCESS_PREFIX",
    "REFRESH_PREFIX",
    "REUSE_GRACE_MS",
    "MemberTokens",
    "RefreshRefusal",
    "member_of_access",
    "refresh_session",
    "revoke_member_sessions",
    "revoke_session",
    "start_member_session",
    "token_hash",
]

# Prefixes tell a member's token from a station's or the admin's at a glance (and in logs'
# redaction rules); they carry no authority.
ACCESS_PREFIX = "lpm_a_"
REFRESH_PREFIX = "lpm_r_"
# How long after a rotation the killed refresh token is taken for a concurrent refresh of
# the same app (refused, session kept) rather than a second holder (session revoked).
REUSE_GRACE_MS: Final = 10_000

# Why a refresh gave no pair: `unknown` (never issued, expired, revoked, older than the last
# rotation, or the loser of a race), `reused` (the session was revoked just now).
RefreshRefusal = Literal["unknown", "reused"]


@dataclass(frozen=True)
class MemberTokens:
    session_id: str
    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token lives

    def as_dict(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _pair(now_ms: int, access_ms: int, refresh_ms: int) -> tuple[str, str, dict[str, Any]]:
    access = ACCESS_PREFIX + secrets.token_urlsafe(32)
    refresh = REFRESH_PREFIX + secrets.token_urlsafe(32)
    values = {
        "access_hash": token_hash(access),
        "access_expires_ms": now_ms + access_ms,
        "refresh_hash": token_hash(refresh),
        "refresh_expires_ms": now_ms + refresh_ms,
    }
    return access, refresh, values


def start_member_session(
    conn: Connection, member_id: str, *, now_ms: int, access_ms: int, refresh_ms: int
) -> MemberTokens:
    """A new session for `member_id` (after a right one-time code)."""
    conn.execute(
        delete(member_sessions).where(
            or_(
                member_sessions.c.refresh_expires_ms < now_ms,
                member_sessions.c.revoked_ms < now_ms - refresh_ms,
            )
        )
    )
    session_id = str(uuid.uuid4())
    access, refresh, values = _pair(now_ms, access_ms, refresh_ms)
    conn.execute(
        insert(member_sessions).values(
            session_id=session_id, member_id=member_id, created_ms=now_ms, **values
        )
    )
    return MemberTokens(session_id, access, refresh, access_ms // 1000)


def member_of_access(conn: Connection, token: str, *, now_ms: int) -> tuple[str, str] | None:
    """(member id, session id) of a live access token; None when unknown, expired or
    revoked. Read-only, so a request's check never takes SQLite's write lock."""
    if not token.startswith(ACCESS_PREFIX):
        return None
    row = conn.execute(
        select(member_sessions.c.member_id, member_sessions.c.session_id).where(
            member_sessions.c.access_hash == token_hash(token),
            member_sessions.c.access_expires_ms > now_ms,
            member_sessions.c.revoked_ms.is_(None),
        )
    ).first()
    return None if row is None else (str(row.member_id), str(row.session_id))


def refresh_session(
    conn: Connection, refresh_token: str, *, now_ms: int, access_ms: int, refresh_ms: int
) -> MemberTokens | RefreshRefusal:
    """A new pair for a live refresh token (the old pair dies), or why not.

    The UPDATE matches on the old refresh hash, so of two concurrent refreshes with the same
    token exactly one wins; the loser finds it as the previous token within the grace and
    is refused without revoking. The caller commits before answering (a revocation holds)."""
    if not refresh_token.startswith(REFRESH_PREFIX):
        return "unknown"
    old = token_hash(refresh_token)
    live = (member_sessions.c.refresh_expires_ms > now_ms, member_sessions.c.revoked_ms.is_(None))
    row = conn.execute(
        select(member_sessions.c.session_id).where(member_sessions.c.refresh_hash == old, *live)
    ).first()
    if row is None:
        return _reused(conn, old, now_ms, live)
    access, refresh, values = _pair(now_ms, access_ms, refresh_ms)
    done = conn.execute(
        update(member_sessions)
        .where(member_sessions.c.refresh_hash == old, member_sessions.c.revoked_ms.is_(None))
        .values(prev_refresh_hash=old, rotated_ms=now_ms, **values)
    )
    if done.rowcount != 1:
        return "unknown"  # another refresh with the same token won a moment ago
    return MemberTokens(str(row.session_id), access, refresh, access_ms // 1000)


def _reused(conn: Connection, old: str, now_ms: int, live: tuple[Any, ...]) -> RefreshRefusal:
    """Revoke the live session whose previous refresh token is `old`, unless it was
    rotated within the grace (a concurrent refresh of the same app)."""
    done = conn.execute(
        update(member_sessions)
        .where(
            member_sessions.c.prev_refresh_hash == old,
            member_sessions.c.rotated_ms < now_ms - REUSE_GRACE_MS,
            *live,
        )
        .values(revoked_ms=now_ms)
    )
    return "reused" if int(done.rowcount or 0) else "unknown"


def revoke_session(conn: Connection, session_id: str, *, now_ms: int) -> None:
    conn.execute(
        update(member_sessions)
        .where(member_sessions.c.session_id == session_id, member_sessions.c.revoked_ms.is_(None))
        .values(revoked_ms=now_ms)
    )


def revoke_member_sessions(conn: Connection, member_id: str, *, now_ms: int) -> int:
    """Sign the member out everywhere (account deleted, or HQ's erasure); how many ended."""
    done = conn.execute(
        update(member_sessions)
        .where(member_sessions.c.member_id == member_id, member_sessions.c.revoked_ms.is_(None))
        .values(revoked_ms=now_ms)
    )
    return int(done.rowcount or 0)
