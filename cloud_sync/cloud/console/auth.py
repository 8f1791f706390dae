"""Who is asking the HQ console, and what their role lets them do.

Two ways in: a person's session cookie (pages and the console's own API calls, with a CSRF
token on every change), or the admin token (`Authorization: Bearer …`, for machines; it acts
as an admin named by `X-HQ-Actor`, "token" when absent). The gate marks a request that
carried the admin token; everything else is decided here. A change (POST, PUT, PATCH,
DELETE) made with a session must carry the session's CSRF token, in the `X-CSRF-Token`
header or the form field `csrf`: 403 `csrf` otherwise. The token needs none (a cross-site
page cannot make a browser send an `Authorization` header).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Final, Literal

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from cloud_sync.cloud.ledger.hq_users import HqSession, peek_session, session_of
from cloud_sync.cloud.server.context import ADMIN_TOKEN_KEY, ApiProblem, cloud_context
from cloud_sync.cloud.server.settings import HqSection

from .throttle import HashSlots, LoginLimiter

__all__ = [
    "ADMIN_TOKEN_KEY",
    "COOKIE_NAME",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "ROLES",
    "Admin",
    "HqState",
    "HqUser",
    "LoginRequired",
    "Marketer",
    "PageAdmin",
    "PageForbidden",
    "PageMarketer",
    "PageReader",
    "Reader",
    "Role",
    "epoch_ms",
    "hq_admin",
    "hq_marketer",
    "hq_reader",
    "hq_state",
    "new_hq_state",
    "page_admin",
    "page_marketer",
    "page_reader",
    "session_token",
]

Role = Literal["admin", "marketer", "auditor"]
ROLES: Final[tuple[Role, ...]] = ("admin", "marketer", "auditor")
_RANK: Final = {"auditor": 0, "marketer": 1, "admin": 2}
COOKIE_NAME: Final = "lp_hq_session"
CSRF_HEADER: Final = "x-csrf-token"
CSRF_FIELD: Final = "csrf"
_UNSAFE: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_FORMS: Final = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True)
class HqUser:
    """A person (or the admin token) using the console; `via` says which."""

    name: str
    role: Role
    via: Literal["session", "token"]
    csrf: str = ""

    def may(self, role: Role) -> bool:
        """True when this user's role includes `role` (admin ⊃ marketer ⊃ auditor)."""
        return _RANK[self.role] >= _RANK[role]


@dataclass
class HqState:
    """What sign-in keeps per app: the settings, the attempt counts, the hashing slots."""

    settings: HqSection
    limiter: LoginLimiter
    slots: HashSlots

    @property
    def idle_ms(self) -> int:
        return self.settings.session_idle_minutes * 60_000

    @property
    def max_age_ms(self) -> int:
        return self.settings.session_max_hours * 3_600_000


def new_hq_state(settings: HqSection) -> HqState:
    limiter = LoginLimiter(
        per_name=settings.login_attempts,
        per_address=settings.login_attempts_per_address,
        window_s=settings.login_window_minutes * 60.0,
    )
    return HqState(settings, limiter, HashSlots(settings.login_concurrency, "hq-hash"))


def hq_state(request: Request) -> HqState:
    state = request.app.state.hq
    assert isinstance(state, HqState)
    return state


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def session_token(request: Request) -> str | None:
    """The session cookie's token, if it looks like one (never longer than 128)."""
    token = request.cookies.get(COOKIE_NAME)
    return token if token and len(token) <= 128 else None


def _token_user(request: Request) -> HqUser | None:
    if not request.scope.get("state", {}).get(ADMIN_TOKEN_KEY):
        return None
    actor = (request.headers.get("x-hq-actor") or "token").strip()[:64] or "token"
    return HqUser(name=actor, role="admin", via="token")


def _lookup(request: Request, token: str) -> HqSession | None:
    """The session, read first; written (touched or deleted) only when that is due."""
    context = cloud_context(request)
    state = hq_state(request)
    now_ms = epoch_ms(context.now())
    limits = {"now_ms": now_ms, "idle_ms": state.idle_ms, "max_age_ms": state.max_age_ms}
    write, session = context.ledger.db.read(lambda conn: peek_session(conn, token, **limits))
    if not write:
        return session
    return context.ledger.db.transact(lambda conn: session_of(conn, token, **limits))


async def _sent_csrf(request: Request) -> str:
    sent = request.headers.get(CSRF_HEADER)
    if sent:
        return sent
    if request.headers.get("content-type", "").startswith(_FORMS):
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


async def _user(request: Request) -> HqUser:
    user = _token_user(request)
    if user is not None:
        return user
    token = session_token(request)
    session = None if token is None else await run_in_threadpool(_lookup, request, token)
    if session is None:
        raise ApiProblem(401, "unauthorized", "sign in to the HQ console or send the admin token")
    if request.method in _UNSAFE:
        sent = await _sent_csrf(request)
        if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise ApiProblem(403, "csrf", "a change needs the session's CSRF token")
    role: Role = session.role if session.role in _RANK else "auditor"  # type: ignore[assignment]
    return HqUser(name=session.name, role=role, via="session", csrf=session.csrf)


async def _requiring(role: Role, request: Request) -> HqUser:
    user = await _user(request)
    if not user.may(role):
        raise ApiProblem(403, "forbidden", f"this needs the {role} role")
    return user


class LoginRequired(Exception):
    """A page asked without a session: the console answers with a redirect to the login."""


class PageForbidden(Exception):
    """A page the person may not use (role or CSRF): the console answers a 403 page."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class _Needs:
    """A route's dependency: the person, when they hold `role` (any HQ user reads). The
    JSON API answers 401/403; a page (`page=True`) redirects to the login form without a
    session and shows a 403 page otherwise."""

    role: Role
    page: bool = False

    async def __call__(self, request: Request) -> HqUser:
        if not self.page:
            return await _requiring(self.role, request)
        try:
            return await _requiring(self.role, request)
        except ApiProblem as problem:
            if problem.status == 401:
                raise LoginRequired from problem
            if problem.status == 403:
                raise PageForbidden(problem.problem.error, str(problem)) from problem
            raise


hq_reader: Final = _Needs("auditor")
hq_marketer: Final = _Needs("marketer")
hq_admin: Final = _Needs("admin")
page_reader: Final = _Needs("auditor", page=True)
page_marketer: Final = _Needs("marketer", page=True)
page_admin: Final = _Needs("admin", page=True)

Reader = Annotated[HqUser, Depends(hq_reader)]
Marketer = Annotated[HqUser, Depends(hq_marketer)]
Admin = Annotated[HqUser, Depends(hq_admin)]


PageReader = Annotated[HqUser, Depends(page_reader)]
PageMarketer = Annotated[HqUser, Depends(page_marketer)]
PageAdmin = Annotated[HqUser, Depends(page_admin)]
