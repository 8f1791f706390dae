"""The JSON API of the cashier page (contracts §4): thin glue between HTTP and the services.

Service calls are blocking SQLite work, so each runs in the thread pool; a refusal becomes
a 4xx with {"error": code, "message": text in the user's language}.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import suppress
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..errors import ServiceError
from ..services.members import find_member, register_member
from ..services.sale_pages import MAX_PAGE, page_sales
from ..services.sales import attach_member, reverse_sale
from ..services.users import check_pin
from .auth import COOKIE_NAME, Session, WebError
from .context import (
    CurrentSession,
    ManagerSession,
    PassiveSession,
    WriteSession,
    lang_of,
    web_context,
)
from .i18n import translate
from .openapi import (
    IDENTITY_CODES,
    READER,
    WRITER,
    error_responses,
)
from .views import build_member_card, pump_dict, sync_state

__all__ = ["api_router", "login_user", "set_session_cookie"]

_SaleId = Annotated[str, Path(min_length=1, max_length=64)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class LoginIn(_Body):
    name: str = Field(min_length=1, max_length=32)
    pin: str = Field(min_length=1, max_length=64)


class MemberIn(_Body):
    phone: str = Field(max_length=32)
    plate: str | None = Field(default=None, max_length=16)
    name: str | None = Field(default=None, max_length=64)
    consent: bool


class AttachIn(_Body):
    q: str = Field(min_length=1, max_length=32)


class ReversalIn(_Body):
    reason: str = Field(max_length=1000)  # the service refuses an empty or too long one


def set_session_cookie(request: Request, response: Response, session: Session) -> None:
    """The session cookie: HttpOnly, SameSite=Strict, and Secure over TLS."""
    response.set_cookie(
        COOKIE_NAME,
        session.token,
        httponly=True,
        samesite="strict",
        secure=web_context(request).secure_cookies or request.url.scheme == "https",
        path="/",
    )


def _rate_limited(request: Request, wait: float) -> WebError:
    minutes = max(1, round(wait / 60))
    text = translate(lang_of(request), "login.rate_limited", minutes=minutes)
    error = WebError(429, "login.rate_limited", text)
    error.retry_after = max(1, round(wait))
    return error


async def login_user(request: Request, name: str, pin: str) -> Session:
    """Check a PIN under the rate limit; raises WebError 429 / 401, or opens a session.

    The attempt is counted before the PIN is checked (so a burst of parallel attempts is
    cut at the limit), and the PIN is checked only when a hashing slot is free at once:
    a login that finds them all busy is answered 429 without waiting (and its attempt is
    given back, since nothing was checked).
    """
    ctx = web_context(request)
    client = request.client.host if request.client else "?"
    wait = ctx.limiter.reserve(name, client)
    if wait > 0:
        raise _rate_limited(request, wait)
    if not ctx.hash_slots.try_acquire():
        ctx.limiter.release(name, client)
        busy = WebError(429, "login.busy")
        busy.retry_after = 1
        raise busy
    try:
        user = await ctx.hash_slots.run(check_pin, ctx.station, name, pin)
    finally:
        ctx.hash_slots.release()
    if user is None:
        raise WebError(401, "login.failed")
    ctx.limiter.succeeded(name, client)
    ctx.sessions.end(request.cookies.get(COOKIE_NAME))
    return ctx.sessions.create(user.name, user.role)


_READER = list(READER)  # documents the session cookie; the guards check it
_WRITER = list(WRITER)  # documents the cookie and the CSRF header


def api_router() -> APIRouter:
    """Build the /api/v1 routes (built per app: nothing is created at import time)."""
    router = APIRouter(prefix="/api/v1")

    @router.post(
        "/login",
        responses=error_responses(
            "login.failed", "login.rate_limited", "login.busy", session=False, write=True
        ),
    )
    async def login(request: Request, body: LoginIn) -> JSONResponse:
        session = await login_user(request, body.name, body.pin)
        response = JSONResponse(
            {"user": session.user, "role": session.role, "csrf_token": session.csrf_token}
        )
        set_session_cookie(request, response, session)
        return response

    @router.post(
        "/logout",
        dependencies=_WRITER,
        responses=error_responses(write=True),
    )
    async def logout(request: Request, session: WriteSession) -> JSONResponse:
        web_context(request).sessions.end(session.token)
        response = JSONResponse({"status": "logged_out"})
        response.delete_cookie(COOKIE_NAME, path="/")
        return response

    @router.get("/pumps", dependencies=_READER, responses=error_responses())
    async def pumps(request: Request, _: PassiveSession) -> dict[str, Any]:
        return {"pumps": [pump_dict(p) for p in web_context(request).live.pumps()]}

    @router.get(
        "/sales",
        dependencies=_READER,
        responses=error_responses("limit", "sales.cursor", "sale.not_found"),
        description=(
            "Sales newest first, a page at a time. Give at most one cursor: `before` (a sale "
            "id, usually the previous page's `next`) or `before_time` (ISO 8601; the sales "
            "that ended before it); both at once is answered 422 `sales.cursor`, an unknown "
            "`before` 404 `sale.not_found`. `next` is the cursor of the following page, "
            "null on the last one; sales recorded during a walk neither shift it nor repeat."
        ),
    )
    async def sales(
        request: Request,
        _: PassiveSession,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
        before: Annotated[
            str | None,
            Query(min_length=1, max_length=64, description="A sale id. Excludes before_time."),
        ] = None,
        before_time: Annotated[
            datetime | None,
            Query(description="ISO 8601 (station time if no offset). Excludes before."),
        ] = None,
    ) -> dict[str, Any]:
        page = await run_in_threadpool(
            lambda: page_sales(
                web_context(request).station, limit, before=before, before_time=before_time
            )
        )
        return {"sales": [s.to_dict() for s in page.sales], "next": page.next}

    @router.get(
        "/members/lookup",
        dependencies=_READER,
        responses=error_responses("member.not_found", *IDENTITY_CODES),
    )
    async def lookup(
        request: Request,
        _: CurrentSession,
        q: Annotated[str, Query(min_length=1, max_length=32)],
    ) -> dict[str, Any]:
        station = web_context(request).station

        def work() -> dict[str, Any]:
            view = find_member(station, q=q)
            return build_member_card(station, view.member_id, view).to_dict()

        return {"member": await run_in_threadpool(work)}

    @router.post(
        "/members",
        status_code=201,
        dependencies=_WRITER,
        responses=error_responses(
            "consent.required",
            "member.exists",
            "plate.taken",
            "member.name_too_long",
            *IDENTITY_CODES,
            write=True,
        ),
    )
    async def create_member(
        request: Request, body: MemberIn, session: WriteSession
    ) -> dict[str, Any]:
        if not body.consent:
            raise ServiceError("consent.required", "the member's consent is required")
        station = web_context(request).station
        view = await run_in_threadpool(
            lambda: register_member(
                station,
                phone=body.phone,
                plates=[body.plate] if body.plate else [],
                name=body.name,
                consent_channel="web",
                actor=f"user:{session.user}",
            )
        )
        return {"member": view.to_dict()}

    @router.post(
        "/sales/{sale_id}/member",
        dependencies=_WRITER,
        responses=error_responses(
            "sale.not_found",
            "member.not_found",
            "sale.already_attached",
            "sale.reversed",
            "sale.attach_window",
            *IDENTITY_CODES,
            write=True,
        ),
    )
    async def attach(
        request: Request,
        sale_id: _SaleId,
        body: AttachIn,
        session: WriteSession,
    ) -> dict[str, Any]:
        ctx = web_context(request)

        def work() -> dict[str, Any]:
            member = find_member(ctx.station, q=body.q)
            outcome = attach_member(
                ctx.station, sale_id, member.member_id, actor=f"user:{session.user}"
            )
            card = build_member_card(ctx.station, member.member_id)
            return {
                "sale": outcome.sale.to_dict(),
                "receipt": outcome.sale.receipt,
                "member": card.to_dict(),
                "created": outcome.created,
            }

        answer = await run_in_threadpool(work)
        ctx.live.sale_recorded(sale_id)
        return answer

    @router.post(
        "/sales/{sale_id}/reversal",
        dependencies=_WRITER,
        responses=error_responses(
            "auth.forbidden",
            "sale.not_found",
            "sale.reversed",
            "reason.required",
            "reason.too_long",
            "points.insufficient",
            write=True,
        ),
    )
    async def reversal(
        request: Request,
        sale_id: _SaleId,
        body: ReversalIn,
        session: ManagerSession,
    ) -> dict[str, Any]:
        ctx = web_context(request)
        view = await run_in_threadpool(
            lambda: reverse_sale(
                ctx.station, sale_id, actor=f"user:{session.user}", reason=body.reason
            )
        )
        ctx.live.sale_recorded(sale_id)
        return {"sale": view.to_dict()}

    @router.get("/status", dependencies=_READER, responses=error_responses())
    async def status(request: Request, _: PassiveSession) -> dict[str, Any]:
        return await run_in_threadpool(sync_state, web_context(request).station)

    @router.get(
        "/events",
        dependencies=_READER,
        responses=error_responses(),
        response_class=StreamingResponse,
    )
    async def events(request: Request, session: PassiveSession) -> StreamingResponse:
        return StreamingResponse(
            _event_stream(request, session.token),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return router


async def _event_stream(request: Request, token: str) -> AsyncIterator[str]:
    """SSE: an event per board change, a comment as keep-alive; ends with the session.

    The stream also ends after `sse_max_s` (the browser reconnects by itself), so a closed
    tab or a stopping server never holds a connection for long.
    """
    ctx = web_context(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.sse_max_s
    updates = ctx.live.subscribe()
    waiting: asyncio.Future[str] | None = None
    yield "retry: 3000\nevent: ready\ndata: {}\n\n"
    try:
        while loop.time() < deadline:
            if waiting is None:
                waiting = asyncio.ensure_future(anext(updates))
            done, _ = await asyncio.wait({waiting}, timeout=ctx.sse_keepalive_s)
            if ctx.sessions.get(token, touch=False) is None or await request.is_disconnected():
                return
            if not done:
                yield ": keep-alive\n\n"
                continue
            try:
                name = waiting.result()
            except StopAsyncIteration:
                return
            waiting = None
            yield f"event: {name}\ndata: {{}}\n\n"
    finally:
        if waiting is None:
            await updates.aclose()
        else:  # cancelling the pending read also finishes the subscription
            waiting.cancel()
            with suppress(asyncio.CancelledError, StopAsyncIteration):
                await waiting
