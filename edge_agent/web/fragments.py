"""htmx fragments of the cashier screen: board, sales, search, attach, redeem, sync.

Each answers HTML meant for one target on the page; refusals answer a fragment with the
reason (4xx status, swapped in by the page's htmx config) rather than JSON.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from cloud_sync.core.identity import IdentityError, parse_identifier
from cloud_sync.core.ruleset import RedemptionRefused, redemption_value_fen

from ..error_codes import status_of
from ..errors import ServiceError
from ..services.members import find_member, member_view
from ..services.points import redeem_points
from ..services.rules import ruleset_now
from ..services.sales import SaleView, attach_member, sale_view
from .auth import Session
from .context import (
    CurrentSession,
    PassiveSession,
    WriteSession,
    lang_of,
    render,
    web_context,
)
from .i18n import error_text, translate
from .views import MemberCard, build_member_card, pump_cards, sync_state

__all__ = ["fragments_router", "signup_link"]

_Id = Annotated[str, Path(min_length=1, max_length=64)]


def signup_link(q: str) -> str:
    """The sign-up form, prefilled with the phone or plate the cashier just searched."""
    try:
        found = parse_identifier(q)
    except IdentityError:
        return "/members/new"
    return "/members/new?" + urlencode({str(found.kind): q.strip()})


def fragments_router() -> APIRouter:  # noqa: PLR0915 - one small closure per fragment
    router = APIRouter(prefix="/ui")

    @router.get("/pumps", response_class=HTMLResponse)
    async def pumps(request: Request, session: PassiveSession) -> HTMLResponse:
        ctx = web_context(request)
        cards, _ = await run_in_threadpool(pump_cards, ctx.station, ctx.live)
        return render(request, "_pumps.html", session=session, pumps=cards)

    @router.get("/sales", response_class=HTMLResponse)
    async def sales(request: Request, session: PassiveSession) -> HTMLResponse:
        ctx = web_context(request)
        _, found = await run_in_threadpool(pump_cards, ctx.station, ctx.live)
        return render(request, "_sales.html", session=session, sales=found)

    @router.get("/status", response_class=HTMLResponse)
    async def status(request: Request, session: PassiveSession) -> HTMLResponse:
        state = await run_in_threadpool(sync_state, web_context(request).station)
        return render(request, "_sync.html", session=session, sync=state)

    @router.get("/lookup", response_class=HTMLResponse)
    async def lookup(
        request: Request,
        session: CurrentSession,
        q: Annotated[str, Query(max_length=64)] = "",
    ) -> HTMLResponse:
        return await lookup_fragment(request, session, q)

    @router.get("/members/{member_id}", response_class=HTMLResponse)
    async def card(request: Request, member_id: _Id, session: PassiveSession) -> HTMLResponse:
        return await card_fragment(request, session, member_id)

    @router.post("/sales/{sale_id}/attach", response_class=HTMLResponse)
    async def attach(
        request: Request,
        sale_id: _Id,
        session: WriteSession,
        member_id: Annotated[str, Form(max_length=64)] = "",
    ) -> HTMLResponse:
        ctx = web_context(request)
        if not member_id:
            return _attach_error(request, session, "member.none_selected", 422)

        def work() -> dict[str, Any]:
            outcome = attach_member(ctx.station, sale_id, member_id, actor=f"user:{session.user}")
            return {"sale": outcome.sale, "card": build_member_card(ctx.station, member_id)}

        try:
            done = await run_in_threadpool(work)
        except ServiceError as exc:
            current = None
            if exc.code == "sale.already_attached":  # show the loser what the winner did
                current = await run_in_threadpool(sale_view, ctx.station, sale_id)
            return _attach_error(request, session, exc.code, status_of(exc.code), current)
        ctx.live.sale_recorded(sale_id)
        sale, member = done["sale"], done["card"]
        steps = _steps(lang_of(request), sale.receipt)
        discount = Decimal(sale.receipt["discount_per_litre"]) if sale.receipt else Decimal(0)
        return render(
            request,
            "_receipt.html",
            session=session,
            sale=sale,
            card=member,
            steps=steps,
            discount_per_litre=discount,
            discount_fen=int(sale.receipt["discount_fen"]) if sale.receipt else 0,
        )

    @router.post("/redeem/preview", response_class=HTMLResponse)
    async def preview(
        request: Request,
        session: WriteSession,
        member_id: Annotated[str, Form(max_length=64)] = "",
        points: Annotated[str, Form(max_length=12)] = "",
    ) -> HTMLResponse:
        station = web_context(request).station
        lang = lang_of(request)
        amount = _points(points)
        if amount is None:
            return _redeem_error(request, session, error_text(lang, "redeem.not_positive"), 422)

        def work() -> tuple[int, int]:
            ruleset = ruleset_now(station)
            if ruleset is None:
                raise ServiceError("rules.none", "no rule set")
            try:
                value = redemption_value_fen(ruleset, amount)
            except RedemptionRefused as exc:
                raise ServiceError(exc.code, str(exc)) from exc
            return value, member_view(station, member_id).points

        try:
            value_fen, balance = await run_in_threadpool(work)
        except ServiceError as exc:
            return _redeem_error(request, session, error_text(lang, exc.code), status_of(exc.code))
        if amount > balance:
            text = translate(lang, "err.points.balance", available=balance, asked=amount)
            return _redeem_error(request, session, text, 409)
        return render(
            request,
            "_redeem_preview.html",
            session=session,
            member_id=member_id,
            points=amount,
            value_fen=value_fen,
            redemption_id=str(uuid.uuid4()),
        )

    @router.post("/redeem/confirm", response_class=HTMLResponse)
    async def confirm(
        request: Request,
        session: WriteSession,
        member_id: Annotated[str, Form(min_length=1, max_length=64)],
        points: Annotated[str, Form(max_length=12)] = "",
        redemption_id: Annotated[str, Form(max_length=64)] = "",
    ) -> HTMLResponse:
        station = web_context(request).station
        lang = lang_of(request)
        amount = _points(points)
        result: str | None = None
        error: str | None = None
        status = 200
        if amount is None:
            error, status = error_text(lang, "redeem.not_positive"), 422
        else:
            try:
                done = await run_in_threadpool(
                    lambda: redeem_points(
                        station,
                        member_id,
                        amount,
                        actor=f"user:{session.user}",
                        redemption_id=redemption_id or None,
                    )
                )
            except ServiceError as exc:
                error, status = error_text(lang, exc.code), status_of(exc.code)
                if exc.code == "member.not_found":
                    return _redeem_error(request, session, error, status)
            else:
                result = translate(
                    lang,
                    "redeem.done",
                    points=done.points,
                    value=f"{done.value_fen // 100}.{done.value_fen % 100:02d}",
                    balance=done.balance_after,
                )
        card = await run_in_threadpool(build_member_card, station, member_id)
        return render(
            request,
            "_member_card.html",
            status=status,
            session=session,
            card=card,
            redeem_result=result,
            redeem_error=error,
        )

    return router


async def lookup_fragment(request: Request, session: Session, q: str) -> HTMLResponse:
    """The member panel for a search: the card, 'not a member yet' or why the input is bad."""
    station = web_context(request).station

    def work() -> Any:
        view = find_member(station, q=q)
        return build_member_card(station, view.member_id, view)

    try:
        card = await run_in_threadpool(work)
    except ServiceError as exc:
        if exc.code == "member.not_found":
            return render(
                request,
                "_not_member.html",
                status=404,
                session=session,
                q=q.strip(),
                signup=signup_link(q),
            )
        return _search_error(request, session, exc.code)
    return _card(request, session, card)


async def card_fragment(request: Request, session: Session, member_id: str) -> HTMLResponse:
    station = web_context(request).station
    try:
        card = await run_in_threadpool(build_member_card, station, member_id)
    except ServiceError as exc:
        return _search_error(request, session, exc.code)
    return _card(request, session, card)


def _card(request: Request, session: Session, card: MemberCard) -> HTMLResponse:
    return render(
        request,
        "_member_card.html",
        session=session,
        card=card,
        redeem_result=None,
        redeem_error=None,
    )


def _search_error(request: Request, session: Session, code: str) -> HTMLResponse:
    return render(
        request,
        "_search_error.html",
        status=status_of(code),
        session=session,
        message=error_text(lang_of(request), code),
    )


def _points(text: str) -> int | None:
    cleaned = text.strip()
    if not cleaned.isdigit() or not cleaned.isascii():
        return None
    value = int(cleaned)
    return value if 0 < value <= 10_000_000 else None


def _steps(lang: str, receipt: dict[str, Any] | None) -> list[str]:
    if not receipt:
        return []
    lines = []
    for step in receipt.get("steps", []):
        key = f"step.{step.get('code')}"
        value, factor = step.get("value", ""), step.get("factor", "")
        text = translate(lang, key, value=value, factor=factor)
        lines.append(text if text != key else str(step.get("description", "")))
    return lines


def _attach_error(
    request: Request, session: Session, code: str, status: int, sale: SaleView | None = None
) -> HTMLResponse:
    message = error_text(lang_of(request), code)
    return render(
        request, "_attach_error.html", status=status, session=session, message=message, sale=sale
    )


def _redeem_error(request: Request, session: Session, message: str, status: int) -> HTMLResponse:
    return render(request, "_redeem_error.html", status=status, session=session, message=message)
