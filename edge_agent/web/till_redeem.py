"""Redemption against the bill on the till: preview (the rate, the minimum, the points'
value and the amount to collect), then confirm. "Max off" and "use all" are previews
whose points the server chooses. Booking and its refusals stay with `redeem_points`."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from ..error_codes import status_of
from ..errors import ServiceError
from ..services.points import redeem_points
from .auth import Session
from .context import WriteSession, fen_text, lang_of, render, web_context
from .i18n import error_text, translate
from .till_common import load_customer, slip_now
from .till_terms import Bill, Quote, RedeemTerms, entered_bill, max_off, parse_yuan, quote
from .till_views import Customer

__all__ = ["parse_points", "redeem_router"]

_MemberId = Annotated[str, Form(max_length=64)]
_Short = Annotated[str, Form(max_length=16)]


def parse_points(text: str) -> int | None:
    cleaned = text.strip()
    if not cleaned.isdigit() or not cleaned.isascii():
        return None
    value = int(cleaned)
    return value if 0 < value <= 10_000_000 else None


def _refusal_text(lang: str, key: str, terms: RedeemTerms, points: int, bill: Bill | None) -> str:
    if key == "redeem.over_balance":
        return translate(lang, "err.points.balance", available=terms.balance, asked=points)
    if key == "redeem.over_bill" and bill is not None:
        most = max_off(terms, bill)
        return translate(lang, "redeem.over_bill", due=fen_text(bill.due_fen), most=most)
    if key == "redeem.not_positive":
        return error_text(lang, key)
    return translate(lang, key, least=terms.least, step=terms.step, per_yuan=terms.points_per_yuan)


def _bill(cust: Customer, bill_text: str) -> Bill | str | None:
    """The sale chosen, an entered bill, none; or the key of why the entry is not a bill."""
    if cust.bill is not None:
        return cust.bill
    if not bill_text.strip():
        return None
    fen = parse_yuan(bill_text)
    return "redeem.bad_bill" if fen is None else entered_bill(fen)


def redeem_router() -> APIRouter:
    router = APIRouter()

    @router.post("/redeem/preview", response_class=HTMLResponse)
    async def preview(
        request: Request,
        session: WriteSession,
        member_id: _MemberId = "",
        points: Annotated[str, Form(max_length=12)] = "",
        use: _Short = "",
        bill: _Short = "",
        sale_id: _MemberId = "",
    ) -> HTMLResponse:
        lang = lang_of(request)
        cust = await load_customer(request, member_id, bill_sale=sale_id or None)
        terms = cust.terms
        if terms is None:
            return _error(request, session, error_text(lang, "rules.none"), 409)
        chosen = _bill(cust, bill)
        if isinstance(chosen, str):
            return _error(request, session, translate(lang, chosen), 422, terms)
        if use in ("max", "all"):
            amount = max_off(terms, chosen) if use == "max" else terms.usable
            if amount <= 0:
                text = translate(lang, "redeem.nothing_usable", least=terms.least)
                return _error(request, session, text, 409, terms)
        else:
            parsed = parse_points(points)
            if parsed is None:
                return _error(request, session, error_text(lang, "redeem.not_positive"), 422, terms)
            amount = parsed
        answer = quote(terms, amount, chosen)
        if not isinstance(answer, Quote):
            text = _refusal_text(lang, answer, terms, amount, chosen)
            return _error(
                request, session, text, 409 if answer.startswith("redeem.over") else 422, terms
            )
        return render(
            request,
            "_redeem_preview.html",
            session=session,
            member_id=cust.card.member.member_id,
            quote=answer,
            terms=terms,
            redemption_id=str(uuid.uuid4()),
        )

    @router.post("/redeem/confirm", response_class=HTMLResponse)
    async def confirm(
        request: Request,
        session: WriteSession,
        member_id: Annotated[str, Form(min_length=1, max_length=64)],
        points: Annotated[str, Form(max_length=12)] = "",
        redemption_id: _MemberId = "",
        sale_id: _MemberId = "",
        bill: _Short = "",
    ) -> HTMLResponse:
        station = web_context(request).station
        lang = lang_of(request)
        amount = parse_points(points)
        if amount is None:
            return _error(request, session, error_text(lang, "redeem.not_positive"), 422)
        actor = f"user:{session.user}"
        try:
            done = await run_in_threadpool(
                lambda: redeem_points(
                    station, member_id, amount, actor=actor, redemption_id=redemption_id or None
                )
            )
        except ServiceError as exc:
            return _error(request, session, error_text(lang, exc.code), status_of(exc.code))
        cust = await load_customer(request, member_id, bill_sale=sale_id or None)
        chosen = cust.bill
        if chosen is None and bill.strip():
            fen = parse_yuan(bill)
            chosen = None if fen is None else entered_bill(fen)
        settled = None
        if chosen is not None:
            settled = Quote(done.points, done.value_fen, chosen, chosen.due_fen - done.value_fen)
        lines = [(translate(lang, "slip.points_used"), str(done.points))]
        lines.append((translate(lang, "slip.points_value"), f"¥{fen_text(done.value_fen)}"))
        totals = [(translate(lang, "receipt.balance"), str(done.balance_after))]
        if settled is not None and settled.bill is not None and settled.to_collect_fen is not None:
            head = [(translate(lang, "redeem.bill_label"), f"¥{fen_text(settled.bill.amount_fen)}")]
            if settled.bill.discount_fen:
                head.append(
                    (translate(lang, "slip.discount"), f"−¥{fen_text(settled.bill.discount_fen)}")
                )
            lines = head + lines
            totals.insert(
                0, (translate(lang, "receipt.to_collect"), f"¥{fen_text(settled.to_collect_fen)}")
            )
        slip = slip_now(request, translate(lang, "slip.redeem"), lines=lines, totals=totals)
        return render(
            request,
            "_redeem_done.html",
            session=session,
            done=done,
            quote=settled,
            cust=replace(cust, bill=None),  # this bill is settled now
            slip=slip,
        )

    return router


def _error(
    request: Request,
    session: Session,
    message: str,
    status: int,
    terms: RedeemTerms | None = None,
) -> HTMLResponse:
    return render(
        request, "_redeem_error.html", status=status, session=session, message=message, terms=terms
    )
