"""Signing in and out of the HQ console, and who the console thinks you are.

The login form posts `name` and `password`. The attempt is counted before the password is
checked (`throttle.LoginLimiter`) and the check runs within the hashing slots; the address
counted is the connection's own (`X-Forwarded-For` is never trusted). A right password
starts a session: a random token in an HttpOnly, SameSite=Strict cookie (Secure when
`[hq] secure_cookies`), its SHA-256 in the database. `next` is followed only when it is a
path of the console itself, never to another site.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from cloud_sync.cloud.ledger.hq_users import check_password, end_session, start_session
from cloud_sync.cloud.server.context import cloud_context
from cloud_sync.cloud.server.errors import error_responses
from cloud_sync.cloud.server.settings import HqSection

from .auth import COOKIE_NAME, PageForbidden, PageReader, Reader, epoch_ms, hq_state, new_hq_state
from .auth import session_token as _session_token
from .pages import render

__all__ = ["install_signin", "login_router", "safe_next"]

_NEXT: Final = re.compile(r"^/hq(?:/[A-Za-z0-9_\-./?=&%~+:]*)?$")
_MAX_NAME: Final = 64
_MAX_PASSWORD: Final = 256


def safe_next(target: str | None) -> str:
    """`target` when it is a console path on this site; else the console's front page."""
    if not target or len(target) > 512 or "//" in target or "\\" in target:
        return "/hq/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not _NEXT.fullmatch(target):
        return "/hq/"
    if target.startswith(("/hq/login", "/hq/logout")):
        return "/hq/"
    return target


def _cross_site(request: Request) -> bool:
    """True when the browser says the form came from another site (login CSRF)."""
    if request.headers.get("sec-fetch-site", "").lower() in ("cross-site", "same-site"):
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False
    return urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()


def _form(
    request: Request, *, status: int, message: str, name: str = "", nxt: str = ""
) -> Response:
    return render(
        request,
        "hq_login.html",
        None,
        {"message": message, "name": name, "next": safe_next(nxt)},
        status_code=status,
    )


def _start(request: Request, name: str) -> tuple[str, str]:
    """A new session; the one this browser held before (if any) ends, so a token planted in
    the browser before sign-in never becomes a signed-in session."""
    context = cloud_context(request)
    state = hq_state(request)
    now_ms = epoch_ms(context.now())
    previous = _session_token(request)

    def work(conn: Connection) -> tuple[str, str]:
        if previous is not None:
            end_session(conn, previous)
        return start_session(conn, name, now_ms=now_ms, max_age_ms=state.max_age_ms)

    return context.ledger.db.transact(work)


def _check(request: Request, name: str, password: str) -> dict[str, Any] | None:
    db = cloud_context(request).ledger.db
    return db.read(lambda conn: check_password(conn, name, password))


def login_router() -> APIRouter:
    router = APIRouter(tags=["HQ console"])

    @router.get("/hq/login", include_in_schema=False)
    def login_page(request: Request, next: str = "/hq/") -> Response:
        """The sign-in form."""
        return _form(request, status=200, message="", nxt=next)

    @router.post("/hq/login", include_in_schema=False)
    async def login(
        request: Request,
        name: Annotated[str, Form(max_length=_MAX_NAME)] = "",
        password: Annotated[str, Form(max_length=_MAX_PASSWORD)] = "",
        next: Annotated[str, Form(max_length=512)] = "/hq/",
    ) -> Response:
        """Check the password (counted first, hashed within the slots); start a session."""
        zh = request.cookies.get("lang") != "en" and request.query_params.get("lang") != "en"
        if _cross_site(request):
            text = "请从本站的登录页登录。" if zh else "Sign in from this site's own login page."
            return _form(request, status=403, message=text, nxt=next)
        name = name.strip()
        if not name or not password:
            text = "请输入用户名和密码。" if zh else "Enter your name and password."
            return _form(request, status=422, message=text, name=name, nxt=next)
        state = hq_state(request)
        address = request.client.host if request.client else "-"
        wait = state.limiter.reserve(name, address)
        if wait:
            minutes = max(1, round(wait / 60))
            text = (
                f"尝试次数过多，请 {minutes} 分钟后再试。"
                if zh
                else f"Too many attempts: try again in {minutes} minutes."
            )
            response = _form(request, status=429, message=text, name=name, nxt=next)
            response.headers["Retry-After"] = str(int(wait))
            return response
        if not state.slots.try_acquire():
            state.limiter.release(name, address)
            text = "系统繁忙，请稍后再试。" if zh else "Busy: try again in a moment."
            response = _form(request, status=503, message=text, name=name, nxt=next)
            response.headers["Retry-After"] = "1"
            return response
        try:
            user = await state.slots.run(_check, request, name, password)
        finally:
            state.slots.release()
        if user is None:
            text = "用户名或密码错误。" if zh else "Wrong name or password."
            return _form(request, status=401, message=text, name=name, nxt=next)
        state.limiter.succeeded(name, address)
        token, _csrf = await run_in_threadpool(_start, request, user["name"])
        response = RedirectResponse(safe_next(next), status_code=303)
        response.set_cookie(
            COOKIE_NAME,
            token,
            httponly=True,
            samesite="strict",
            secure=state.settings.secure_cookies,
            path="/",
            max_age=state.settings.session_max_hours * 3600,
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    @router.post("/hq/logout", include_in_schema=False)
    async def logout(request: Request, user: PageReader) -> Response:
        """End this browser's session (needs its CSRF token, like every change)."""
        token = _session_token(request)
        if token is not None and user.via == "session":
            db = cloud_context(request).ledger.db
            await run_in_threadpool(db.transact, lambda conn: end_session(conn, token))
        response = RedirectResponse("/hq/login", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
        return response

    @router.get("/api/v1/hq/me", responses=error_responses())
    def me(user: Reader) -> dict[str, str]:
        """Who the console thinks you are: name, role, how you came in, and (with a session)
        the CSRF token its changes must carry. Same-origin only: no CORS lets another site
        read it."""
        return {"name": user.name, "role": user.role, "via": user.via, "csrf": user.csrf}

    return router


def _forbidden_page(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageForbidden)
    return render(
        request,
        "hq_forbidden.html",
        None,
        {"code": exc.code, "detail": exc.detail},
        status_code=403,
    )


def install_signin(app: FastAPI, settings: HqSection) -> None:
    """Give the app its sign-in state (attempt counts, hashing slots) and its 403 page."""
    app.state.hq = new_hq_state(settings)
    app.add_exception_handler(PageForbidden, _forbidden_page)
