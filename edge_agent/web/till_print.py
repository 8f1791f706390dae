"""Printing a receipt on the station's ESC/POS printer from the till (`[printer]`).

The receipt itself (what it says, how it is encoded) is the receipts service's; this only
answers in the answer area: printed, no printer configured, or the printer not answering.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from ..error_codes import status_of
from ..errors import ServiceError
from ..services.receipts import print_receipt
from .api_till import till_printer
from .context import WriteSession, lang_of, render, web_context
from .i18n import refusal_text

__all__ = ["print_router"]

_Kind = Literal["sale", "redemption", "member"]
_Ref = Annotated[str, Path(min_length=1, max_length=64)]


def print_router() -> APIRouter:
    router = APIRouter()

    @router.post("/receipts/{kind}/{ref}/print", response_class=HTMLResponse)
    async def print_slip(
        request: Request, kind: _Kind, ref: _Ref, session: WriteSession
    ) -> HTMLResponse:
        station, printer = web_context(request).station, till_printer(request)
        try:
            await run_in_threadpool(print_receipt, station, printer, kind, ref)
        except ServiceError as exc:
            message = refusal_text(lang_of(request), exc)
            return render(
                request,
                "_print_answer.html",
                status=status_of(exc.code),
                session=session,
                message=message,
                ok=False,
            )
        return render(request, "_print_answer.html", session=session, message="", ok=True)

    return router
