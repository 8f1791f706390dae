"""htmx fragments of the till: pumps board, sales list, search, attach (asked, then done).

Each answers HTML for one target on the page; every answer to a cashier's action goes to
the one answer area under the search box (`#answer`), and what it changes elsewhere (the
customer panel, a sale's row) rides along out of band, so nothing races it. Refusals
answer the reason with a 4xx status (swapped in by the page's htmx config).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from cloud_sync.core.identity import IdentityError, parse_identifier

from ..error_codes import status_of
from ..errors import ServiceError
from ..services.members import find_member
from ..services.sales import attach_member, sale_view
from .auth import Session
from .context import (
    CurrentSession,
    PassiveSession,
    WriteSession,
    fen_text,
    lang_of,
    render,
    web_context,
)
from .i18n import error_text, translate
from .till_common import load_customer, slip_now, steps_in_words
from .till_forms import forms_router
from .till_manager import manager_router
from .till_redeem import redeem_router
from .till_terms import bill_of_sale
from .till_views import Customer, sale_line, sale_number, till_board, till_sales
from .views import sync_state

__all__ = ["Lookup", "fragments_router", "lookup", "signup_link"]

_Id = Annotated[str, Path(min_length=1, max_length=64)]
_Pump = Annotated[int | None, Query(ge=1, le=99)]


def signup_link(q: str) -> str:
    """The sign-up form, prefilled with the phone or plate the cashier just searched."""
    try:
        found = parse_identifier(q)
    except IdentityError:
        return "/ui/signup"
    return "/ui/signup?" + urlencode({str(found.kind): q.strip()})


@dataclass(frozen=True)
class Lookup:
    """A search's answer: the template for the answer area and the customer, if found."""

    template: str
    status: int
    values: dict[str, Any]
    customer: Customer | None


async def lookup(request: Request, q: str) -> Lookup:
    """The member for a search: found, 'not a member yet', or why the input is bad."""
    station = web_context(request).station
    try:
        view = await run_in_threadpool(lambda: find_member(station, q=q))
    except ServiceError as exc:
        if exc.code == "member.not_found":
            values = {"q": q.strip(), "signup": signup_link(q)}
            return Lookup("_not_member.html", 404, values, None)
        message = error_text(lang_of(request), exc.code)
        return Lookup("_search_error.html", status_of(exc.code), {"message": message}, None)
    cust = await load_customer(request, view.member_id, view)
    return Lookup("_found.html", 200, {"cust": cust}, cust)


def fragments_router() -> APIRouter:
    router = APIRouter(prefix="/ui")

    @router.get("/pumps", response_class=HTMLResponse)
    async def pumps(request: Request, session: PassiveSession, pump: _Pump = None) -> HTMLResponse:
        ctx = web_context(request)
        tiles = await run_in_threadpool(till_board, ctx.station, ctx.live)
        return render(request, "_pumps.html", session=session, pumps=tiles, selected=pump)

    @router.get("/sales", response_class=HTMLResponse)
    async def sales(request: Request, session: PassiveSession, pump: _Pump = None) -> HTMLResponse:
        station = web_context(request).station
        board = await run_in_threadpool(till_sales, station, pump)
        return render(request, "_sales.html", session=session, board=board)

    @router.get("/status", response_class=HTMLResponse)
    async def status(request: Request, session: PassiveSession) -> HTMLResponse:
        state = await run_in_threadpool(sync_state, web_context(request).station)
        return render(request, "_sync.html", session=session, sync=state)

    @router.get("/lookup", response_class=HTMLResponse)
    async def search(
        request: Request, session: CurrentSession, q: Annotated[str, Query(max_length=64)] = ""
    ) -> HTMLResponse:
        found = await lookup(request, q)
        return render(
            request, found.template, status=found.status, session=session, oob=True, **found.values
        )

    @router.get("/members/{member_id}", response_class=HTMLResponse)
    async def card(request: Request, member_id: _Id, session: PassiveSession) -> HTMLResponse:
        cust = await load_customer(request, member_id)
        return render(request, "_member_card.html", session=session, cust=cust)

    @router.get("/sales/{sale_id}/confirm", response_class=HTMLResponse)
    async def confirm(
        request: Request,
        sale_id: _Id,
        session: CurrentSession,
        member_id: Annotated[str, Query(max_length=64)] = "",
    ) -> HTMLResponse:
        """Ask before attaching: the member (masked phone, plates) and the sale, by name."""
        station = web_context(request).station
        line = await run_in_threadpool(lambda: sale_line(station, sale_view(station, sale_id)))
        if not member_id:
            return _attach_error(request, session, "member.none_selected", 422, focus_search=True)
        if not line.attachable:
            code = "sale.reversed" if line.sale.status == "reversed" else "sale.already_attached"
            if line.sale.member_id is None and line.sale.status == "recorded":
                code = "sale.attach_window"
            return _attach_error(request, session, code, status_of(code), line=line)
        cust = await load_customer(request, member_id)
        return render(request, "_attach_confirm.html", session=session, cust=cust, line=line)

    @router.post("/sales/{sale_id}/attach", response_class=HTMLResponse)
    async def attach(
        request: Request,
        sale_id: _Id,
        session: WriteSession,
        member_id: Annotated[str, Form(max_length=64)] = "",
    ) -> HTMLResponse:
        ctx = web_context(request)
        if not member_id:
            return _attach_error(request, session, "member.none_selected", 422, focus_search=True)
        actor = f"user:{session.user}"
        try:
            outcome = await run_in_threadpool(
                lambda: attach_member(ctx.station, sale_id, member_id, actor=actor)
            )
        except ServiceError as exc:
            line = None
            if exc.code == "sale.already_attached":  # show the loser what the winner did
                line = await run_in_threadpool(
                    lambda: sale_line(ctx.station, sale_view(ctx.station, sale_id))
                )
            return _attach_error(request, session, exc.code, status_of(exc.code), line=line)
        ctx.live.sale_recorded(sale_id)
        return await _receipt(request, session, outcome.sale.sale_id, member_id)

    router.include_router(redeem_router())
    router.include_router(forms_router())
    router.include_router(manager_router())
    return router


async def _receipt(
    request: Request, session: Session, sale_id: str, member_id: str
) -> HTMLResponse:
    """The attach's answer: points, the amount to collect after the tier discount, the
    balance after, the steps, a slip to print; the customer panel now bills this sale."""
    station = web_context(request).station
    lang = lang_of(request)
    line = await run_in_threadpool(lambda: sale_line(station, sale_view(station, sale_id)))
    cust = await load_customer(request, member_id, bill_sale=sale_id)
    sale = line.sale
    bill = cust.bill or bill_of_sale(sale, sale_number(sale.sale_id))
    steps = steps_in_words(lang, sale.receipt)
    per_litre = Decimal(sale.receipt["discount_per_litre"]) if sale.receipt else Decimal(0)
    member = cust.card.member
    slip = slip_now(
        request,
        translate(lang, "slip.attach"),
        lines=[
            (translate(lang, "slip.sale_no"), f"#{line.number}"),
            (translate(lang, "pump.label", fp=sale.pump), f"{line.clock}"),
            (translate(lang, "manager.grade"), sale.grade),
            (translate(lang, "manager.litres"), f"{sale.litres:.2f} L"),
            (translate(lang, "slip.amount"), f"¥{sale.amount:.2f}"),
            (translate(lang, "slip.discount"), f"−¥{fen_text(bill.discount_fen)}"),
            (translate(lang, "attach.member"), member.phone_masked),
        ],
        steps=steps,
        totals=[
            (translate(lang, "receipt.to_collect"), f"¥{fen_text(bill.due_fen)}"),
            (translate(lang, "receipt.points"), f"+{sale.points}"),
            (translate(lang, "receipt.balance"), str(member.points)),
        ],
    )
    return render(
        request,
        "_receipt.html",
        session=session,
        line=line,
        cust=cust,
        bill=bill,
        steps=steps,
        discount_per_litre=per_litre,
        slip=slip,
    )


def _attach_error(
    request: Request, session: Session, code: str, status: int, **values: Any
) -> HTMLResponse:
    message = error_text(lang_of(request), code)
    values.setdefault("line", None)
    values.setdefault("focus_search", False)
    return render(
        request, "_attach_error.html", status=status, session=session, message=message, **values
    )
