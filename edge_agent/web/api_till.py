"""The till's JSON routes (issue 15): pump-first attach, undo attach, the last-4 search and
receipts. Thin glue over services/till.py, detach.py and receipts.py, as api.py is.

The last-4 limiter and the printer live on the app (one of each, built at first use), so
the page's fragments share them with these routes: `till_limiter(request)` and
`till_printer(request)`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..receipts.printer import Printer, open_printer
from ..services.detach import MAX_REASON, detach_member
from ..services.receipts import make_receipt, print_receipt
from ..services.till import (
    MAX_PUMP_SALES,
    SearchLimiter,
    pump_sales,
    recent_till_sales,
    search_members,
    unattached_by_pump,
)
from .context import CurrentSession, PassiveSession, WriteSession, web_context
from .openapi import IDENTITY_CODES, READER, WRITER, error_responses
from .views import build_member_card

__all__ = ["api_till_router", "till_limiter", "till_printer"]

_SaleId = Annotated[str, Path(min_length=1, max_length=64)]
_Ref = Annotated[str, Path(min_length=1, max_length=64)]
_Kind = Literal["sale", "redemption", "member"]
_READER = list(READER)
_WRITER = list(WRITER)


class DetachIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    member_id: str = Field(min_length=1, max_length=64, description="the member on the sale")
    attach_no: int = Field(
        ge=1,
        le=1_000_000,
        strict=True,
        description="which attach of the sale to undo (`attach_no` of the till's sale view); "
        "required, so a retry never undoes a later attach",
    )
    reason: str = Field(
        default="",
        max_length=MAX_REASON,
        description="why; required unless the cashier undoes their own attach within "
        "`undo_window_min`",
    )


def till_limiter(request: Request) -> SearchLimiter:
    """The app's last-4 search limiter (one per app, shared by every route that searches)."""
    state = request.app.state
    if not hasattr(state, "till_limiter"):
        state.till_limiter = SearchLimiter()
    limiter: SearchLimiter = state.till_limiter
    return limiter


def till_printer(request: Request) -> Printer | None:
    """The app's receipt printer from `[printer]` (None: none configured)."""
    state = request.app.state
    if not hasattr(state, "till_printer"):
        state.till_printer = open_printer(web_context(request).station.settings.printer)
    printer: Printer | None = state.till_printer
    return printer


def api_till_router() -> APIRouter:
    """Build the till's /api/v1 routes (per app: nothing is created at import time)."""
    router = APIRouter(prefix="/api/v1")

    @router.get(
        "/till/sales",
        dependencies=_READER,
        responses=error_responses("limit"),
        description="The newest sales, each with its short number (`sale_no`), until when a "
        "member can be attached (`attach_until`), and whether it can be attached or its "
        "attach undone now by this login (`can_attach`, `can_undo`, `attach_no`; who made "
        "the attach, `attached_by`, and until when they may undo it alone, `undo_until`).",
    )
    async def till_sales(
        request: Request,
        session: PassiveSession,
        limit: Annotated[int, Query(ge=1, le=500)] = 20,
    ) -> dict[str, Any]:
        station = web_context(request).station
        found = await run_in_threadpool(recent_till_sales, station, limit)
        viewer = (f"user:{session.user}", session.is_manager)
        return {"sales": [sale.to_dict(viewer) for sale in found]}

    @router.get(
        "/till/pumps/{pump}/sales",
        dependencies=_READER,
        responses=error_responses("limit", "sale.pump"),
        description="A fuelling point's sales a member can still be attached to, newest first.",
    )
    async def one_pump(
        request: Request,
        _: CurrentSession,
        pump: Annotated[int, Path(ge=1, le=99)],
        limit: Annotated[int, Query(ge=1, le=MAX_PUMP_SALES)] = 5,
    ) -> dict[str, Any]:
        station = web_context(request).station
        found = await run_in_threadpool(lambda: pump_sales(station, pump, limit=limit))
        return {"pump": pump, "sales": [sale.to_dict() for sale in found]}

    @router.get(
        "/till/unattached",
        dependencies=_READER,
        responses=error_responses("limit"),
        description="Every fuelling point's sales still open for a member, `per_pump` each.",
    )
    async def unattached(
        request: Request,
        _: PassiveSession,
        per_pump: Annotated[int, Query(ge=1, le=MAX_PUMP_SALES)] = 3,
    ) -> dict[str, Any]:
        station = web_context(request).station
        board = await run_in_threadpool(lambda: unattached_by_pump(station, per_pump=per_pump))
        return {
            "pumps": [
                {"pump": pump, "sales": [sale.to_dict() for sale in sales]}
                for pump, sales in sorted(board.items())
            ]
        }

    @router.get(
        "/till/search",
        dependencies=_READER,
        responses=error_responses(
            "member.not_found", "search.too_many", "search.rate_limited", *IDENTITY_CODES
        ),
        description="A full phone or a plate finds one member (`kind: member`); exactly four "
        "digits, the members whose phone ends so (`kind: pick`, at most 10, masked phones and "
        "plates). More than 10 is refused, and each login may search by 4 digits 30 times in "
        "5 minutes.",
    )
    async def search(
        request: Request,
        session: CurrentSession,
        q: Annotated[str, Query(min_length=1, max_length=32)],
    ) -> dict[str, Any]:
        station, limiter = web_context(request).station, till_limiter(request)
        found = await run_in_threadpool(
            lambda: search_members(station, q, who=session.user, limiter=limiter)
        )
        return found.to_dict()

    @router.post(
        "/sales/{sale_id}/member/undo",
        dependencies=_WRITER,
        responses=error_responses(
            "sale.not_found",
            "sale.reversed",
            "detach.not_attached",
            "detach.member_changed",
            "detach.window",
            "detach.undo_window",
            "detach.not_yours",
            "detach.conflict",
            "points.insufficient",
            "reason.required",
            "reason.too_long",
            write=True,
        ),
        description="Undo the attach of `member_id` to the sale: the points go back and the "
        "sale can be attached again. The cashier who made the attach may, within "
        "`[station] undo_window_min` of it; otherwise a manager, with a `reason`, while the "
        "attach window is open. A repeat (double click, retry) answers the first undo with "
        "`created: false`.",
    )
    async def undo(
        request: Request, sale_id: _SaleId, body: DetachIn, session: WriteSession
    ) -> dict[str, Any]:
        ctx = web_context(request)

        def work() -> dict[str, Any]:
            done = detach_member(
                ctx.station,
                sale_id,
                body.member_id,
                actor=f"user:{session.user}",
                manager=session.is_manager,
                attach_no=body.attach_no,
                reason=body.reason,
            )
            card = build_member_card(ctx.station, done.member_id)
            return done.to_dict() | {"member": card.to_dict()}

        answer = await run_in_threadpool(work)
        ctx.live.sale_recorded(sale_id)
        return answer

    @router.get(
        "/receipts/{kind}/{ref}",
        dependencies=_READER,
        responses=error_responses(
            "sale.not_found", "member.not_found", "redemption.not_found", "receipt.no_member"
        ),
        description="A member's receipt: of a sale's attach (`sale`, the sale id), a "
        "redemption (`redemption`, its id) or a sign-up (`member`, the member id).",
    )
    async def receipt(
        request: Request, _: CurrentSession, kind: _Kind, ref: _Ref
    ) -> dict[str, Any]:
        station = web_context(request).station
        made = await run_in_threadpool(make_receipt, station, kind, ref)
        return {"receipt": made.to_dict()}

    @router.post(
        "/receipts/{kind}/{ref}/print",
        dependencies=_WRITER,
        responses=error_responses(
            "sale.not_found",
            "member.not_found",
            "redemption.not_found",
            "receipt.no_member",
            "printer.none",
            "printer.unreachable",
            write=True,
        ),
        description="Print the receipt on the station's ESC/POS printer (`[printer]`).",
    )
    async def print_(request: Request, _: WriteSession, kind: _Kind, ref: _Ref) -> dict[str, Any]:
        station, printer = web_context(request).station, till_printer(request)
        made, sent = await run_in_threadpool(print_receipt, station, printer, kind, ref)
        return {"printed": True, "bytes": sent, "receipt": made.to_dict()}

    return router
