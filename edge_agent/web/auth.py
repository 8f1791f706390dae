"""Who is at the counter: server-side sessions, CSRF tokens, login throttling, role guards.

Sessions live in memory only (a restart logs everyone out, which is fine at a counter) and
are keyed by a random 32-byte token sent as an HttpOnly, SameSite=Strict cookie (Secure when
served over TLS). Every state-changing request must echo the session's CSRF token. Logins
are counted before their PIN is checked and hashed a few at a time (`LoginLimiter`,
`HashSlots`).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from cloud_sync.core.hash_slots import HashSlots as SharedHashSlots

__all__ = [
    "COOKIE_NAME",
    "HashSlots",
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
        self.retry_after: int | None = None  # seconds, for a 429


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
    """Login attempts counted before the PIN is checked, per user name and per client.

    `reserve` takes a slot atomically (under the lock) before any work: at most
    `max_per_name` attempts for one name (from any client) and `max_per_client` attempts
    from one client (for any name) within `window_s`. A burst of parallel attempts is
    therefore cut at the limit, whatever order the PIN checks finish in. A failed attempt
    keeps its slot; a successful one gives back its own slot and the earlier failures of
    the same name from the same client (a cashier who mistyped and then got in starts
    afresh; someone else's failures for that name stay counted). `release` gives back a
    slot whose PIN was never checked (the hashing slots were all busy).

    Per name means a stranger can lock a cashier's name out for `window_s`; only someone
    who can send requests to the page can do that, since a cross-site page is refused
    before its login is counted (see `edge_agent.web.guard`).
    """

    max_per_name: int = 5
    max_per_client: int = 10
    window_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _by_name: dict[str, deque[tuple[float, str]]] = field(default_factory=dict)
    _by_client: dict[str, deque[tuple[float, str]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reserve(self, name: str, client: str) -> float:
        """Take an attempt's slot: 0 when taken, else seconds until one frees up."""
        now = self.clock()
        with self._lock:
            by_name = self._recent(self._by_name, name, now)
            by_client = self._recent(self._by_client, client, now)
            waits = []
            if len(by_name) >= self.max_per_name:
                waits.append(by_name[0][0] + self.window_s - now)
            if len(by_client) >= self.max_per_client:
                waits.append(by_client[0][0] + self.window_s - now)
            if waits:
                return max(1.0, *waits)
            by_name.append((now, client))
            by_client.append((now, name))
            self._forget_stale(now)
            return 0.0

    def retry_after(self, name: str, client: str) -> float:
        """Seconds until this name may try again from this client; 0 when it may now."""
        now = self.clock()
        with self._lock:
            by_name = self._recent(self._by_name, name, now)
            by_client = self._recent(self._by_client, client, now)
            waits = [0.0]
            if len(by_name) >= self.max_per_name:
                waits.append(max(1.0, by_name[0][0] + self.window_s - now))
            if len(by_client) >= self.max_per_client:
                waits.append(max(1.0, by_client[0][0] + self.window_s - now))
            return max(waits)

    def release(self, name: str, client: str) -> None:
        """Give back the newest slot of (name, client): its PIN was never checked."""
        with self._lock:
            for table, key, other in (
                (self._by_name, name, client),
                (self._by_client, client, name),
            ):
                entries = table.get(key)
                if not entries:
                    continue
                for index in range(len(entries) - 1, -1, -1):
                    if entries[index][1] == other:
                        del entries[index]
                        break

    def succeeded(self, name: str, client: str) -> None:
        """A right PIN: forget this name's attempts from this client (the success's too)."""
        with self._lock:
            for table, key, other in (
                (self._by_name, name, client),
                (self._by_client, client, name),
            ):
                entries = table.get(key)
                if entries:
                    table[key] = deque(e for e in entries if e[1] != other)

    def attempts(self) -> int:
        """Attempts counted in the window, every name together (tests and metrics)."""
        now = self.clock()
        with self._lock:
            return sum(len(self._recent(self._by_name, n, now)) for n in list(self._by_name))

    def _recent(
        self, table: dict[str, deque[tuple[float, str]]], key: str, now: float
    ) -> deque[tuple[float, str]]:
        entries = table.setdefault(key, deque())
        while entries and now - entries[0][0] > self.window_s:
            entries.popleft()
        return entries

    def _forget_stale(self, now: float) -> None:
        """A flood of names or clients: drop the keys whose attempts all aged out."""
        for table in (self._by_name, self._by_client):
            if len(table) > 10_000:
                for key in list(table):
                    if not self._recent(table, key, now):
                        del table[key]


@dataclass
class HashSlots(SharedHashSlots):
    """At most `size` PIN hashes at once (cloud_sync.core.hash_slots), on "pin-hash" threads."""

    thread_name: str = "pin-hash"


def csrf_matches(session: Session, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(session.csrf_token.encode(), (sent or "").encode())
