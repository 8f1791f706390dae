"""Redemption against the bill on the till: preview (the rate, the minimum, the points'
value and the amount to collect after the tier discount), then confirm.

"Max off" and "use all" are previews whose points the redemption service's quote chooses;
the preview and the booking share that quote (`quote_redemption`, `redeem_points`), so
what the cashier confirms is what is booked, or the booking says why not.
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from ..error_codes import status_of
from ..errors import ServiceError
from ..services.bill import Refused
from ..services.redemption import Bill, redeem_points
from .auth import Session
from .context import WriteSession, fen_text, lang_of, render, web_context
from .i18n import error_text, refusal_text, translate
from .till_common import load_customer, slip_now
from .till_views import Terms, terms_of

__all__ = ["parse_points", "redeem_router", "typed_bill"]

_Id = Annotated[str, Form(max_length=64)]
_Short = Annotated[str, Form(max_length=16)]
_NUMBER = re.compile(r"[0-9]{1,9}(\.[0-9]{1,3})?")


def parse_points(text: str) -> int | None:
    cleaned = text.strip()
    if not cleaned.isdigit() or not cleaned.isascii():
        return None
    value = int(cleaned)
    return value if 0 < value <= 10_000_000 else None


def typed_bill(sale_id: str, amount: str, litres: str) -> Bill | str | None:
    """The bill as the form gives it: a sale, an entered amount (and litres), none; or the
    name of the field that is not a number (the service judges the numbers' ranges)."""
    if sale_id.strip():
        return Bill(sale_id=sale_id.strip())
    typed_amount = amount.strip().removeprefix("¥").strip()
    if not typed_amount:
        return None if not litres.strip() else "amount"
    if not _NUMBER.fullmatch(typed_amount):
        return "amount"
    typed_litres = litres.strip()
    if typed_litres and not _NUMBER.fullmatch(typed_litres):
        return "litres"
    return Bill(
        amount=Decimal(typed_amount), litres=Decimal(typed_litres) if typed_litres else None
    )


def _refused_text(lang: str, refused: Refused) -> str:
    return error_text(lang, refused.code, refused.message or None, **refused.params)


def redeem_router() -> APIRouter:
    router = APIRouter()

    @router.post("/redeem/preview", response_class=HTMLResponse)
    async def preview(
        request: Request,
        session: WriteSession,
        member_id: _Id = "",
        points: Annotated[str, Form(max_length=12)] = "",
        use: _Short = "",
        bill: _Short = "",
        litres: _Short = "",
        sale_id: _Id = "",
    ) -> HTMLResponse:
        station = web_context(request).station
        lang = lang_of(request)
        chosen = typed_bill(sale_id, bill, litres)
        if isinstance(chosen, str):
            text = translate(lang, "redeem.bad_bill" if chosen == "amount" else "redeem.bad_litres")
            return _error(request, session, text, 422)
        try:
            base = await run_in_threadpool(lambda: terms_of(station, member_id, chosen))
        except ServiceError as exc:
            return _error(request, session, refusal_text(lang, exc), status_of(exc.code))
        if use in ("max", "all"):
            amount = base.quote.max_points if use == "max" else base.quote.all_points
            if amount <= 0:
                text = translate(lang, "redeem.nothing_usable", least=base.least)
                return _error(request, session, text, 409, base)
        else:
            parsed = parse_points(points)
            if parsed is None:
                text = error_text(lang, "redeem.not_positive")
                return _error(request, session, text, 422, base)
            amount = parsed
        asked = await run_in_threadpool(lambda: terms_of(station, member_id, chosen, amount))
        refused = asked.quote.refused
        if refused is not None:
            text = _refused_text(lang, refused)
            return _error(request, session, text, status_of(refused.code), base)
        return render(
            request,
            "_redeem_preview.html",
            session=session,
            member_id=member_id,
            terms=asked,
            bill_typed=bill if chosen is not None and chosen.sale_id is None else "",
            litres_typed=litres if chosen is not None and chosen.sale_id is None else "",
            redemption_id=str(uuid.uuid4()),
        )

    @router.post("/redeem/confirm", response_class=HTMLResponse)
    async def confirm(
        request: Request,
        session: WriteSession,
        member_id: Annotated[str, Form(min_length=1, max_length=64)],
        points: Annotated[str, Form(max_length=12)] = "",
        redemption_id: _Id = "",
        sale_id: _Id = "",
        bill: _Short = "",
        litres: _Short = "",
    ) -> HTMLResponse:
        station = web_context(request).station
        lang = lang_of(request)
        amount = parse_points(points)
        chosen = typed_bill(sale_id, bill, litres)
        if amount is None or isinstance(chosen, str):
            return _error(request, session, error_text(lang, "redeem.not_positive"), 422)
        actor = f"user:{session.user}"
        try:
            done = await run_in_threadpool(
                lambda: redeem_points(
                    station,
                    member_id,
                    amount,
                    actor=actor,
                    redemption_id=redemption_id or None,
                    bill=chosen,
                )
            )
        except ServiceError as exc:
            return _error(request, session, refusal_text(lang, exc), status_of(exc.code))
        cust = await load_customer(request, member_id)  # the bill is settled: no bill now
        figures = done.bill
        lines = [(translate(lang, "slip.points_used"), str(done.points))]
        lines.append((translate(lang, "slip.points_value"), f"−¥{fen_text(done.value_fen)}"))
        totals = [(translate(lang, "receipt.balance"), str(done.balance_after))]
        if figures is not None and figures.facts.bill_fen is not None:
            head = [(translate(lang, "redeem.bill_label"), f"¥{fen_text(figures.facts.bill_fen)}")]
            if figures.facts.discount_fen:
                discount = fen_text(figures.facts.discount_fen)
                head.append((translate(lang, "slip.discount"), f"−¥{discount}"))
            lines = head + lines
            if figures.collect_fen is not None:
                collect = (
                    translate(lang, "receipt.to_collect"),
                    f"¥{fen_text(figures.collect_fen)}",
                )
                totals.insert(0, collect)
        slip = slip_now(request, translate(lang, "slip.redeem"), lines=lines, totals=totals)
        return render(
            request,
            "_redeem_done.html",
            session=session,
            done=done,
            figures=figures,
            cust=cust,
            slip=slip,
        )

    return router


def _error(
    request: Request,
    session: Session,
    message: str,
    status: int,
    terms: Terms | None = None,
) -> HTMLResponse:
    return render(
        request, "_redeem_error.html", status=status, session=session, message=message, terms=terms
    )
