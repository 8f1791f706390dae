"""Attaching a member to a sale at the till, and undoing it.

The cashier picks a row; the answer area asks first, naming the member (masked phone,
plates, tier) and the sale (short number, pump, time with seconds, litres, amount), so a
list that moved or a mistaken click cannot attach the wrong sale unseen. The attach's
answer is the receipt: points, the amount to collect after the tier discount, the balance
after, a slip to print and an undo while the attach window is open.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from ..error_codes import status_of
from ..errors import ServiceError
from ..services.detach import MAX_REASON, detach_member
from ..services.sales import SaleView, attach_member, sale_view
from .auth import Session
from .context import CurrentSession, WriteSession, fen_text, lang_of, render, web_context
from .i18n import error_text, translate
from .till_common import load_customer, slip_now, steps_in_words
from .till_views import SaleLine, sale_line

__all__ = ["SaleDue", "attach_router"]

_Id = Annotated[str, Path(min_length=1, max_length=64)]


@dataclass(frozen=True)
class SaleDue:
    """What the customer pays for a fill: its amount less the tier discount its points
    receipt granted (the receipt's own `discount_fen`)."""

    amount_fen: int
    discount_fen: int

    @property
    def due_fen(self) -> int:
        return max(0, self.amount_fen - self.discount_fen)

    @classmethod
    def of(cls, sale: SaleView) -> SaleDue:
        discount = int((sale.receipt or {}).get("discount_fen", 0) or 0)
        return cls(int(sale.amount * 100), discount)


def attach_router() -> APIRouter:
    router = APIRouter()

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

    @router.get("/sales/{sale_id}/detach", response_class=HTMLResponse)
    async def detach_question(
        request: Request, sale_id: _Id, session: CurrentSession
    ) -> HTMLResponse:
        """Ask before undoing from the list: which sale, which member, how many points."""
        station = web_context(request).station
        line = await run_in_threadpool(lambda: sale_line(station, sale_view(station, sale_id)))
        code = _undo_refused(line, session)
        if code is not None:
            return _attach_error(request, session, code, status_of(code), line=line)
        mine = f"user:{session.user}"
        needs_reason = line.till is None or not line.till.undoable_by(mine, manager=False)
        return render(
            request,
            "_detach_confirm.html",
            session=session,
            line=line,
            needs_reason=needs_reason,
            max_reason=MAX_REASON,
        )

    @router.post("/sales/{sale_id}/detach", response_class=HTMLResponse)
    async def detach(
        request: Request,
        sale_id: _Id,
        session: WriteSession,
        member_id: Annotated[str, Form(min_length=1, max_length=64)],
        attach_no: Annotated[int, Form(ge=1, le=1_000_000)],
        reason: Annotated[str, Form(max_length=MAX_REASON)] = "",
    ) -> HTMLResponse:
        """Undo an attach (the wrong member): points back once, the sale open again. Its
        own cashier soon after; otherwise a manager with a reason (services/detach.py)."""
        ctx = web_context(request)
        actor = f"user:{session.user}"
        try:
            done = await run_in_threadpool(
                lambda: detach_member(
                    ctx.station,
                    sale_id,
                    member_id,
                    actor=actor,
                    manager=session.is_manager,
                    attach_no=attach_no,
                    reason=reason,
                )
            )
        except ServiceError as exc:
            line = await run_in_threadpool(
                lambda: sale_line(ctx.station, sale_view(ctx.station, sale_id))
            )
            return _attach_error(request, session, exc.code, status_of(exc.code), line=line)
        ctx.live.sale_recorded(sale_id)
        line = await run_in_threadpool(lambda: sale_line(ctx.station, done.sale))
        cust = await load_customer(request, done.member_id)
        return render(
            request, "_detach_done.html", session=session, line=line, cust=cust, done=done
        )

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
    bill = SaleDue.of(sale)
    steps = steps_in_words(lang, sale.receipt)
    per_litre = Decimal(sale.receipt["discount_per_litre"]) if sale.receipt else Decimal(0)
    member = cust.card.member
    slip = slip_now(
        request,
        translate(lang, "slip.attach"),
        lines=[
            (translate(lang, "slip.sale_no"), f"#{line.number}"),
            (translate(lang, "manager.pump"), translate(lang, "pump.label", fp=sale.pump)),
            (translate(lang, "slip.time"), line.clock),
            (
                translate(lang, "manager.grade"),
                f"{sale.grade}#" if sale.grade.isdigit() else sale.grade,
            ),
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


def _undo_refused(line: SaleLine, session: Session) -> str | None:
    """Why this login may not undo the sale's attach now (an error code), or None."""
    if line.undoable_by(session):
        return None
    if not line.sale.member_id:
        return "detach.not_attached"
    if not line.can_undo:
        return "detach.window"
    mine = line.till is not None and line.till.attached_by == f"user:{session.user}"
    return "detach.undo_window" if mine else "detach.not_yours"


def _attach_error(
    request: Request, session: Session, code: str, status: int, **values: Any
) -> HTMLResponse:
    message = error_text(lang_of(request), code)
    values.setdefault("line", None)
    values.setdefault("focus_search", False)
    return render(
        request, "_attach_error.html", status=status, session=session, message=message, **values
    )
