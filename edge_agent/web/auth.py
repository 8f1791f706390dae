"""Who is at the counter: server-side sessions, CSRF tokens, login throttling, role guards.

Sessions live in memory only (a restart logs everyone out, which is fine at a counter) and
are keyed by a random 32-byte token sent as an HttpOnly, SameSite=Strict cookie. Every
state-changing request must echo the session's CSRF token.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "COOKIE_NAME",
    "LoginLimiter",
    "Session",
    "SessionStore",
    "WebError",
    "csrf_matches",
]

COOKIE_NAME = "lp_session"
_MAX_SESSIONS = 1000


class WebError(Exception):
    """A refused web request: HTTP status plus a stable code the catalogue translates."""

    def __init__(self, status: int, code: str, message: str | None = None) -> None:
        super().__init__(message or code)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class Session:
    token: str
    user: str
    role: str
    csrf_token: str
    last_seen: float

    @property
    def is_manager(self) -> bool:
        return self.role == "manager"


@dataclass
class SessionStore:
    """Sessions by token with an idle timeout; `clock` is monotonic seconds (tests move it)."""

    idle_timeout_s: float
    clock: Callable[[], float] = time.monotonic
    _sessions: dict[str, Session] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, user: str, role: str) -> Session:
        now = self.clock()
        session = Session(
            token=secrets.token_urlsafe(32),
            user=user,
            role=role,
            csrf_token=secrets.token_urlsafe(32),
            last_seen=now,
        )
        with self._lock:
            self._drop_idle(now)
            if len(self._sessions) >= _MAX_SESSIONS:
                oldest = min(self._sessions.values(), key=lambda s: s.last_seen)
                del self._sessions[oldest.token]
            self._sessions[session.token] = session
        return session

    def get(self, token: str | None, *, touch: bool = True) -> Session | None:
        """The live session for `token`; `touch` counts this request as the user's activity."""
        if not token:
            return None
        now = self.clock()
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if now - session.last_seen > self.idle_timeout_s:
                del self._sessions[token]
                return None
            if touch:
                session.last_seen = now
            return session

    def end(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._sessions.pop(token, None)

    def count(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _drop_idle(self, now: float) -> None:
        idle = [t for t, s in self._sessions.items() if now - s.last_seen > self.idle_timeout_s]
        for token in idle:
            del self._sessions[token]


@dataclass
class LoginLimiter:
    """At most `max_failures` failed logins per (name, client) within `window_s`."""

    max_failures: int = 5
    window_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def retry_after(self, name: str, client: str) -> float:
        """Seconds until this name may try again from this client; 0 when it may now."""
        now = self.clock()
        with self._lock:
            failures = self._recent((name, client), now)
            if len(failures) < self.max_failures:
                return 0.0
            return max(1.0, failures[0] + self.window_s - now)

    def failed(self, name: str, client: str) -> None:
        now = self.clock()
        with self._lock:
            self._recent((name, client), now).append(now)
            if len(self._failures) > 10_000:  # a flood of names: forget the stale ones
                for key in [k for k, v in self._failures.items() if not v]:
                    del self._failures[key]

    def succeeded(self, name: str, client: str) -> None:
        with self._lock:
            self._failures.pop((name, client), None)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and now - failures[0] > self.window_s:
            failures.popleft()
        return failures


def csrf_matches(session: Session, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(session.csrf_token.encode(), (sent or "").encode())
