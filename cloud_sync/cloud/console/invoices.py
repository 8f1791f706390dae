"""The 数电发票 queue: members' invoice requests by status, handed to the tax platform, and
marked issued (with the invoice number) or rejected (with a reason) by an admin, audited.

Any role reads the queue; only admins act. The page's forms post back here with the
session's CSRF token; the JSON API under /api/v1/hq/invoices does the same for scripts. The
tax platform is the app's `tax_platform` (the `file` adapter: one JSON file per request).
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from cloud_sync.cloud.ledger import LedgerError
from cloud_sync.cloud.ledger.member_invoices_hq import (
    INVOICE_STATUSES,
    decide_invoice,
    file_invoices,
    invoice_queue,
)
from cloud_sync.cloud.ledger.tax_platform import TaxPlatform
from cloud_sync.cloud.server.context import ApiProblem, cloud_context
from cloud_sync.cloud.server.errors import error_responses, status_of

from .auth import Admin, HqUser, PageAdmin, PageReader, Reader
from .export import Column, ExportFormat, download
from .pages import fen_to_yuan, lang_of, render

__all__ = ["invoices_router"]

PAGE: Final = 50
EXPORT_MAX: Final = 200  # the queue's page limit: an export is one page of the filter
_Status = Annotated[Literal["requested", "issued", "rejected"] | None, Query()]
_Before = Annotated[str | None, Query(max_length=80)]
_DECIDE = ("invoice.unknown", "invoice.decided", "invoice.sale_changed")

COLUMNS: Final = (
    Column("requested_at", "申请时间 requested"),
    Column("station_id", "油站 station"),
    Column("sale_id", "交易 sale"),
    Column("buyer_kind", "抬头类型 buyer kind"),
    Column("buyer_name", "抬头 buyer"),
    Column("tax_id", "税号 tax id"),
    Column("email", "邮箱 email"),
    Column("amount_fen", "金额（分）amount fen"),
    Column("status", "状态 status"),
    Column("filed_at", "已交税务平台 filed"),
    Column("invoice_no", "发票号码 invoice no"),
    Column("reason", "驳回原因 reason"),
    Column("decided_by", "处理人 decided by"),
)


class Issue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    invoice_no: str = Field(min_length=1, max_length=64, description="the 数电发票 number")


class Reject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=400)


def _platform(request: Request) -> TaxPlatform:
    platform: TaxPlatform | None = getattr(request.app.state, "tax_platform", None)
    if platform is None:  # pragma: no cover - install_member_app sets it
        raise ApiProblem(503, "unavailable", "no tax platform is configured")
    return platform


def _queue(request: Request, status: str | None, before: str | None, limit: int) -> Any:
    context = cloud_context(request)
    return context.ledger.db.read(
        lambda conn: invoice_queue(
            conn, context.chain_keys, status=status, before=before, limit=limit
        )
    )


def _decide(
    request: Request,
    user: HqUser,
    request_id: str,
    decision: Literal["issue", "reject"],
    invoice_no: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    context = cloud_context(request)
    return context.ledger.db.transact(
        lambda conn: decide_invoice(
            conn,
            context.chain_keys,
            request_id=request_id,
            decision=decision,
            invoice_no=invoice_no,
            reason=reason,
            actor=user.name,
            now=context.now(),
        )
    )


def _file(request: Request, user: HqUser) -> int:
    context = cloud_context(request)
    return file_invoices(
        context.ledger.db, context.chain_keys, _platform(request), context.now(), actor=user.name
    )


async def _page(
    request: Request,
    user: HqUser,
    status: str | None,
    before: str | None,
    *,
    notice: str = "",
    error: str = "",
    code: int = 200,
) -> Response:
    try:
        queue = await run_in_threadpool(_queue, request, status, before, PAGE)
    except LedgerError as exc:
        queue = await run_in_threadpool(_queue, request, status, None, PAGE)
        error, code = str(exc), 422
    query = {"status": status} if status else {}
    context = {
        "active": "invoices",
        "queue": queue,
        "status": status,
        "statuses": INVOICE_STATUSES,
        "notice": notice,
        "error": error,
        "next_url": f"?{urlencode({**query, 'before': queue['next']})}" if queue["next"] else None,
        "first_url": f"?{urlencode(query)}" if before else None,
        "export_url": f"/hq/invoices?{urlencode({**query, 'format': ''})}",
    }
    return render(request, "hq_invoices.html", user, context, status_code=code)


def invoices_router() -> APIRouter:
    router = APIRouter(tags=["HQ console"])

    @router.get("/api/v1/hq/invoices", responses=error_responses("invoice.filter"))
    def api_invoices(
        request: Request,
        user: Reader,
        status: _Status = None,
        before: _Before = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> Any:
        """Invoice requests with `counts` per status; `requested` oldest first (the queue),
        the others newest first; `next` pages on. Emails are masked."""
        return _queue(request, status, before, limit)

    @router.post(
        "/api/v1/hq/invoices/file",
        responses=error_responses("csrf"),
        summary="Hand waiting requests to the tax platform (admin)",
    )
    def api_file(request: Request, user: Admin) -> dict[str, int]:
        return {"filed": _file(request, user)}

    @router.post(
        "/api/v1/hq/invoices/{request_id}/issue",
        responses=error_responses("csrf", "invoice.number", *_DECIDE, body=True),
        summary="Mark a request issued with its invoice number (admin)",
    )
    def api_issue(request: Request, user: Admin, request_id: str, body: Issue) -> Any:
        return _decide(request, user, request_id, "issue", invoice_no=body.invoice_no)

    @router.post(
        "/api/v1/hq/invoices/{request_id}/reject",
        responses=error_responses("csrf", "invoice.reason", *_DECIDE, body=True),
        summary="Reject a request with a reason (admin)",
    )
    def api_reject(request: Request, user: Admin, request_id: str, body: Reject) -> Any:
        return _decide(request, user, request_id, "reject", reason=body.reason)

    @router.get("/hq/invoices", include_in_schema=False)
    async def invoices_page(
        request: Request,
        user: PageReader,
        status: _Status = None,
        before: _Before = None,
        format: ExportFormat | None = None,
    ) -> Response:
        if format is not None:
            queue = await run_in_threadpool(_queue, request, status, None, EXPORT_MAX)
            return download(format, COLUMNS, queue["invoices"], filename="hq-invoices")
        return await _page(request, user, status, before)

    @router.post("/hq/invoices", include_in_schema=False)
    async def invoices_act(
        request: Request,
        user: PageAdmin,
        action: Annotated[str, Form(max_length=16)] = "",
        request_id: Annotated[str, Form(max_length=64)] = "",
        invoice_no: Annotated[str, Form(max_length=64)] = "",
        reason: Annotated[str, Form(max_length=400)] = "",
        status: Annotated[str, Form(max_length=16)] = "",
    ) -> Response:
        zh = lang_of(request) == "zh-CN"
        shown = status if status in INVOICE_STATUSES else None
        try:
            if action == "file":
                filed = await run_in_threadpool(_file, request, user)
                notice = f"已交税务平台 {filed} 张。" if zh else f"Filed {filed}."
            elif action in ("issue", "reject"):
                decision: Literal["issue", "reject"] = "issue" if action == "issue" else "reject"
                done = await run_in_threadpool(
                    _decide, request, user, request_id, decision, invoice_no, reason
                )
                what = f"{done['buyer_name']} · {fen_to_yuan(done['amount_fen'])}"
                notice = (
                    f"{'已开具' if action == 'issue' else '已驳回'}：{what}。"
                    if zh
                    else f"{'Issued' if action == 'issue' else 'Rejected'}: {what}."
                )
            else:
                return await _page(request, user, shown, None, error="unknown action", code=422)
        except (LedgerError, OSError) as exc:
            code = status_of(exc.code) if isinstance(exc, LedgerError) else 503
            return await _page(request, user, shown, None, error=str(exc), code=code)
        return await _page(request, user, shown, None, notice=notice)

    return router
