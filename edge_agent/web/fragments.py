"""htmx fragments of the till: pumps board, sales list, the search and its pick list.

Each answers HTML for one target on the page; every answer to a cashier's action goes to
the one answer area under the search box (`#answer`), and what it changes elsewhere (the
customer panel, a sale's row) rides along out of band, so nothing races it. Refusals
answer the reason with a 4xx status (swapped in by the page's htmx config).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from cloud_sync.core.identity import IdentityError, parse_identifier

from ..error_codes import status_of
from ..errors import ServiceError
from ..services.till import SearchResult, search_members
from .api_till import till_limiter
from .auth import Session
from .context import (
    CurrentSession,
    PassiveSession,
    lang_of,
    render,
    web_context,
)
from .i18n import error_text
from .till_attach import attach_router
from .till_common import load_customer
from .till_forms import forms_router
from .till_manager import manager_router
from .till_print import print_router
from .till_redeem import redeem_router
from .till_views import (
    Customer,
    pick_lines,
    sales_board,
    till_board,
)
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


async def lookup(request: Request, session: Session, q: str) -> Lookup:
    """The member for a search: found, a pick list (the last 4 digits of a phone), 'not a
    member yet', or why the input is bad."""
    ctx = web_context(request)
    limiter = till_limiter(request)  # the one the JSON search counts against too

    def search() -> SearchResult:
        return search_members(ctx.station, q, who=session.user, limiter=limiter)

    try:
        found = await run_in_threadpool(search)
    except ServiceError as exc:
        if exc.code == "member.not_found":
            values = {"q": q.strip(), "signup": signup_link(q)}
            return Lookup("_not_member.html", 404, values, None)
        message = error_text(lang_of(request), exc.code)
        return Lookup("_search_error.html", status_of(exc.code), {"message": message}, None)
    if found.member is None:
        picks = await run_in_threadpool(pick_lines, ctx.station, found.pick)
        return Lookup("_pick.html", 200, {"picks": picks, "q": q.strip()}, None)
    cust = await load_customer(request, found.member.member_id, found.member)
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
        board = await run_in_threadpool(sales_board, station, pump)
        return render(request, "_sales.html", session=session, board=board)

    @router.get("/status", response_class=HTMLResponse)
    async def status(request: Request, session: PassiveSession) -> HTMLResponse:
        state = await run_in_threadpool(sync_state, web_context(request).station)
        return render(request, "_sync.html", session=session, sync=state)

    @router.get("/lookup", response_class=HTMLResponse)
    async def search(
        request: Request, session: CurrentSession, q: Annotated[str, Query(max_length=64)] = ""
    ) -> HTMLResponse:
        found = await lookup(request, session, q)
        return render(
            request, found.template, status=found.status, session=session, oob=True, **found.values
        )

    @router.get("/pick/{member_id}", response_class=HTMLResponse)
    async def pick(request: Request, member_id: _Id, session: CurrentSession) -> HTMLResponse:
        """A member chosen from the pick list: as if found by the full phone."""
        cust = await load_customer(request, member_id)
        return render(request, "_found.html", session=session, cust=cust, oob=True)

    @router.get("/members/{member_id}", response_class=HTMLResponse)
    async def card(request: Request, member_id: _Id, session: PassiveSession) -> HTMLResponse:
        cust = await load_customer(request, member_id)
        return render(request, "_member_card.html", session=session, cust=cust)

    router.include_router(attach_router())
    router.include_router(print_router())
    router.include_router(redeem_router())
    router.include_router(forms_router())
    router.include_router(manager_router())
    return router
