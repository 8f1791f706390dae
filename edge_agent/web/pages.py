"""Whole pages: login, the cashier screen, sign-up and the manager's corrections.

Forms post back as ordinary forms (hidden `csrf_token`), so they work with or without JS;
errors re-render the form with the reason next to the field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from .api import login_user, set_session_cookie
from .auth import COOKIE_NAME, Session, WebError
from .context import (
    CurrentSession,
    WriteSession,
    lang_of,
    manager_page_session,
    render,
    web_context,
)
from .fragments import lookup
from .i18n import error_text
from .till_common import load_customer
from .till_forms import sign_up
from .till_views import sales_board, till_board
from .views import sync_state

__all__ = ["pages_router"]

_Text = Annotated[str, Form(max_length=64)]


# The province abbreviations a plate starts with, for the till's touch keypad.
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"


def _offset_minutes(moment: datetime) -> int:
    """The station's offset from UTC now, so the page's clock shows station time."""
    offset = moment.utcoffset()
    return 0 if offset is None else int(offset.total_seconds() // 60)


def _inner(response: HTMLResponse) -> Markup:
    """A fragment rendered (and autoescaped) by our own templates, to embed in a page."""
    return Markup(bytes(response.body).decode())  # noqa: S704


def pages_router() -> APIRouter:
    router = APIRouter()

    @router.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request) -> Response:
        ctx = web_context(request)
        if ctx.sessions.get(request.cookies.get(COOKIE_NAME), touch=False) is not None:
            return RedirectResponse("/", status_code=303)
        expired = request.query_params.get("expired") == "1"
        return render(request, "login.html", error=None, name="", expired=expired)

    @router.post("/login", response_class=HTMLResponse)
    async def login_form(request: Request, name: _Text = "", pin: _Text = "") -> Response:
        try:
            session = await login_user(request, name.strip(), pin)
        except WebError as exc:
            message = exc.message or error_text(lang_of(request), exc.code)
            headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
            return render(
                request,
                "login.html",
                status=exc.status,
                error=message,
                name=name,
                headers=headers,
                expired=False,
            )
        response = RedirectResponse("/", status_code=303)
        set_session_cookie(request, response, session)
        return response

    @router.post("/logout")
    async def logout(request: Request, session: WriteSession) -> Response:
        web_context(request).sessions.end(session.token)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/")
        return response

    @router.get("/", response_class=HTMLResponse)
    async def index(
        request: Request,
        session: CurrentSession,
        q: Annotated[str, Query(max_length=64)] = "",
        member: Annotated[str, Query(max_length=64)] = "",
    ) -> HTMLResponse:
        ctx = web_context(request)
        tiles = await run_in_threadpool(till_board, ctx.station, ctx.live)
        board = await run_in_threadpool(sales_board, ctx.station, None)
        sync = await run_in_threadpool(sync_state, ctx.station)
        answer = panel = None
        if q.strip():
            found = await lookup(request, session, q)
            answer = _inner(
                render(request, found.template, session=session, oob=False, **found.values)
            )
            if found.customer is not None:
                panel = _inner(
                    render(request, "_member_card.html", session=session, cust=found.customer)
                )
        elif member:
            cust = await load_customer(request, member)
            panel = _inner(render(request, "_member_card.html", session=session, cust=cust))
        return render(
            request,
            "index.html",
            session=session,
            pumps=tiles,
            selected=None,
            board=board,
            sync=sync,
            q=q,
            provinces=PROVINCES,
            utc_offset_min=_offset_minutes(ctx.station.now()),
            printer_ready=ctx.station.settings.printer.kind != "none",
            answer=answer,
            panel=panel,
        )

    @router.get("/members/new", response_class=HTMLResponse)
    async def signup_page(
        request: Request,
        session: CurrentSession,
        phone: Annotated[str, Query(max_length=32)] = "",
        plate: Annotated[str, Query(max_length=16)] = "",
    ) -> HTMLResponse:
        form = {"phone": phone, "plate": plate, "name": "", "consent": False}
        return render(request, "signup.html", session=session, form=form, errors={})

    @router.post("/members/new", response_class=HTMLResponse)
    async def signup(
        request: Request,
        session: WriteSession,
        phone: _Text = "",
        plate: _Text = "",
        name: Annotated[str, Form(max_length=200)] = "",
        consent: _Text = "",
    ) -> Response:
        lang = lang_of(request)
        form = {"phone": phone, "plate": plate, "name": name, "consent": consent == "on"}
        view, errors = await sign_up(request, session, phone, plate, name, consent)
        if view is not None:
            return RedirectResponse(f"/?member={view.member_id}", status_code=303)
        status = 409 if errors.get("phone") == error_text(lang, "member.exists") else 422
        return render(
            request, "signup.html", status=status, session=session, form=form, errors=errors
        )

    @router.get("/manager", response_class=HTMLResponse)
    async def manager(
        request: Request, session: Annotated[Session, Depends(manager_page_session)]
    ) -> HTMLResponse:
        """Where the manager's tools are: all on the till (the old forms here booked a
        double-submitted manual sale twice; the till's own forms carry a retry key)."""
        return render(request, "manager.html", session=session)

    return router
