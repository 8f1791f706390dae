"""What every route needs: the station, the session guards, the language and the renderer.

Guards run in the order a refusal should be explained: no session (401) before a bad CSRF
token (403) before a missing role (403).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, cast

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from ..services.station import Station
from .auth import (
    COOKIE_NAME,
    HashSlots,
    LoginLimiter,
    Session,
    SessionStore,
    WebError,
    csrf_matches,
)
from .i18n import DEFAULT_LANG, LANGS, translate
from .live import LiveBoard
from .metrics import StationMetrics

__all__ = [
    "CSRF_HEADER",
    "CurrentSession",
    "ManagerSession",
    "PassiveSession",
    "WebContext",
    "WriteSession",
    "current_session",
    "fen_text",
    "lang_of",
    "manager_page_session",
    "manager_session",
    "passive_session",
    "render",
    "web_context",
    "write_session",
    "yuan_text",
]

CSRF_HEADER = "X-CSRF-Token"
_TEMPLATES = Path(__file__).parent / "templates"
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass
class WebContext:
    """One app's collaborators; kept on `app.state.ctx`, so tests can reach the clocks."""

    station: Station
    live: LiveBoard
    sessions: SessionStore
    secure_cookies: bool
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    hash_slots: HashSlots = field(default_factory=HashSlots)
    metrics: StationMetrics = field(default_factory=StationMetrics)
    sse_keepalive_s: float = 15.0
    sse_max_s: float = 600.0
    templates: jinja2.Environment = field(
        default_factory=lambda: jinja2.Environment(
            loader=jinja2.FileSystemLoader(_TEMPLATES),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
    )


def web_context(request: Request) -> WebContext:
    return cast(WebContext, request.app.state.ctx)


def lang_of(request: Request) -> str:
    lang = getattr(request.state, "lang", DEFAULT_LANG)
    return lang if lang in LANGS else DEFAULT_LANG


def _session(request: Request, *, touch: bool) -> Session:
    token = request.cookies.get(COOKIE_NAME)
    session = web_context(request).sessions.get(token, touch=touch)
    if session is None:
        raise WebError(401, "auth.required")
    return session


async def current_session(request: Request) -> Session:
    """The signed-in user; this request counts as their activity."""
    return _session(request, touch=True)


async def passive_session(request: Request) -> Session:
    """The signed-in user, without resetting the idle timer (board refreshes, event streams)."""
    return _session(request, touch=False)


async def write_session(request: Request) -> Session:
    """The signed-in user of a state-changing request carrying the session's CSRF token."""
    session = _session(request, touch=True)
    sent = request.headers.get(CSRF_HEADER)
    if not sent and request.headers.get("content-type", "").startswith(_FORM_TYPES):
        value = (await request.form()).get("csrf_token")
        sent = value if isinstance(value, str) else None
    if not csrf_matches(session, sent):
        raise WebError(403, "csrf.invalid")
    return session


async def manager_session(request: Request) -> Session:
    session = await write_session(request)
    if not session.is_manager:
        raise WebError(403, "auth.forbidden")
    return session


async def manager_page_session(request: Request) -> Session:
    session = _session(request, touch=True)
    if not session.is_manager:
        raise WebError(403, "auth.forbidden")
    return session


# A route's session, by what the route may do (read, change, manage), for its signature.
CurrentSession = Annotated[Session, Depends(current_session)]
PassiveSession = Annotated[Session, Depends(passive_session)]
WriteSession = Annotated[Session, Depends(write_session)]
ManagerSession = Annotated[Session, Depends(manager_session)]


def yuan_text(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):.2f}"


def fen_text(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def _grade_label(code: str) -> str:
    """Fuel grades read as on the pump: '92' -> '92#', '0' -> '0#'; other codes as they are."""
    return f"{code}#" if code.isdigit() else code


def _local_time(station: Station, iso: str | None) -> str:
    if not iso:
        return ""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if moment.tzinfo is not None:
        moment = moment.astimezone(station.zone)
    return moment.strftime("%m-%d %H:%M")


def render(
    request: Request,
    template: str,
    *,
    status: int = 200,
    session: Session | None = None,
    headers: dict[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    """Render a page or fragment in the request's language; autoescape is always on."""
    ctx = web_context(request)
    lang = lang_of(request)

    def t(key: str, **kw: object) -> str:
        return translate(lang, key, **kw)

    html = ctx.templates.get_template(template).render(
        lang=lang,
        t=t,
        session=session,
        path=request.url.path,
        yuan=yuan_text,
        fen=fen_text,
        grade=_grade_label,
        local_time=lambda iso: _local_time(ctx.station, iso),
        **values,
    )
    return HTMLResponse(html, status_code=status, headers=headers)
