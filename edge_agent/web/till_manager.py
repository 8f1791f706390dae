"""A manager's corrections on the till itself: reverse a sale from its row (with a reason)
and adjust a member's points from the customer panel (with a reason). Each asks in the
answer area first, naming the sale or the member, and answers there."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from ..error_codes import status_of
from ..errors import ServiceError
from ..services.corrections import reversal_preview
from ..services.members import member_view
from ..services.points import adjust_member_points
from ..services.sales import reverse_sale, sale_view
from .auth import Session
from .context import ManagerSession, lang_of, manager_page_session, render, web_context
from .i18n import error_text, refusal_text
from .till_common import load_customer
from .till_views import sale_line

__all__ = ["manager_router", "parse_adjustment"]

_Id = Annotated[str, Path(min_length=1, max_length=64)]
_Reason = Annotated[str, Form(max_length=1000)]  # the service says when it is too long
_PageManager = Annotated[Session, Depends(manager_page_session)]
_KEY = re.compile(r"[0-9a-f]{32}")  # the form's own id: a double submit is booked once


def parse_adjustment(text: str) -> int | None:
    """A signed whole number of points as typed ('+50', '-20', '50'); None if not one."""
    cleaned = text.strip().replace("＋", "+").replace("－", "-")
    body = cleaned.lstrip("+-")
    if not body.isdigit() or not body.isascii() or len(cleaned) - len(body) > 1:
        return None
    value = int(cleaned)
    return value if value != 0 else None


def manager_router() -> APIRouter:
    router = APIRouter()

    @router.get("/sales/{sale_id}/reverse", response_class=HTMLResponse)
    async def reverse_form(request: Request, sale_id: _Id, session: _PageManager) -> HTMLResponse:
        station = web_context(request).station
        line = await run_in_threadpool(lambda: sale_line(station, sale_view(station, sale_id)))
        preview = await run_in_threadpool(reversal_preview, station, sale_id)
        return render(
            request,
            "_reverse_form.html",
            session=session,
            line=line,
            preview=preview,
            reason="",
            error=None,
        )

    @router.post("/sales/{sale_id}/reverse", response_class=HTMLResponse)
    async def reverse(
        request: Request, sale_id: _Id, session: ManagerSession, reason: _Reason = ""
    ) -> HTMLResponse:
        ctx = web_context(request)
        lang = lang_of(request)
        error, status = None, 200
        actor = f"user:{session.user}"
        try:
            await run_in_threadpool(
                lambda: reverse_sale(ctx.station, sale_id, actor=actor, reason=reason.strip())
            )
        except ServiceError as exc:
            error, status = refusal_text(lang, exc), status_of(exc.code)
        line = await run_in_threadpool(
            lambda: sale_line(ctx.station, sale_view(ctx.station, sale_id))
        )
        if error is not None:
            preview = await run_in_threadpool(reversal_preview, ctx.station, sale_id)
            return render(
                request,
                "_reverse_form.html",
                status=status,
                session=session,
                line=line,
                preview=preview,
                reason=reason,
                error=error,
            )
        ctx.live.sale_recorded(sale_id)
        return render(request, "_reverse_done.html", session=session, line=line)

    @router.get("/members/{member_id}/adjust", response_class=HTMLResponse)
    async def adjust_form(request: Request, member_id: _Id, session: _PageManager) -> HTMLResponse:
        station = web_context(request).station
        member = await run_in_threadpool(member_view, station, member_id)
        return render(
            request,
            "_adjust_form.html",
            session=session,
            member=member,
            points="",
            reason="",
            error=None,
            bad=None,
            adjustment_id=uuid.uuid4().hex,
        )

    @router.post("/members/{member_id}/adjust", response_class=HTMLResponse)
    async def adjust(
        request: Request,
        member_id: _Id,
        session: ManagerSession,
        points: Annotated[str, Form(max_length=12)] = "",
        reason: _Reason = "",
        adjustment_id: Annotated[str, Form(max_length=64)] = "",
    ) -> HTMLResponse:
        station = web_context(request).station
        lang = lang_of(request)
        amount = parse_adjustment(points)
        key = adjustment_id if _KEY.fullmatch(adjustment_id) else None
        error, status, bad = None, 200, "points"
        if amount is None:
            error, status = error_text(lang, "adjust.points"), 422
        else:
            actor = f"user:{session.user}"
            try:
                await run_in_threadpool(
                    lambda: adjust_member_points(
                        station,
                        member_id,
                        amount,
                        actor=actor,
                        reason=reason.strip(),
                        adjustment_id=key,
                    )
                )
            except ServiceError as exc:
                error, status = refusal_text(lang, exc), status_of(exc.code)
                bad = "reason" if exc.code.startswith("reason.") else "points"
        if error is not None:
            member = await run_in_threadpool(member_view, station, member_id)
            return render(
                request,
                "_adjust_form.html",
                status=status,
                session=session,
                member=member,
                points=points,
                reason=reason,
                error=error,
                bad=bad,
                adjustment_id=key or uuid.uuid4().hex,
            )
        cust = await load_customer(request, member_id)
        return render(request, "_adjust_done.html", session=session, cust=cust, points=amount)

    return router
