"""The members screen's JSON API (/api/v1/hq/members…): what the pages call, and scripts.

Readers search, open a member and export the list; admins adjust points, answer PIPL
requests (export, erase) and import a sheet. Every change is audited by the ledger module
in the change's own transaction.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from cloud_sync.cloud.ledger.member_admin import (
    MAX_ADJUST,
    MAX_REASON,
    hq_adjust,
    member_page,
    member_sales,
    search_members,
)
from cloud_sync.cloud.ledger.member_import import apply_import
from cloud_sync.cloud.ledger.member_list import member_rows
from cloud_sync.cloud.ledger.member_privacy import erase_member, export_member
from cloud_sync.cloud.ledger.member_sheet import SheetError, parse_sheet
from cloud_sync.cloud.server.context import ApiProblem, cloud_context
from cloud_sync.cloud.server.errors import error_responses
from cloud_sync.cloud.server.read_ledger import ReadLedger

from .auth import Admin, Reader
from .export import Column, ExportFormat, download

__all__ = ["EXPORT_COLUMNS", "members_api_router"]

EXPORT_COLUMNS = (
    Column("member_id", "会员号 member id"),
    Column("phone_masked", "手机号 phone"),
    Column("name", "姓名 name"),
    Column("tier", "等级 tier"),
    Column("points", "积分 points"),
    Column("registered_at", "注册时间 registered"),
    Column("last_visit", "最近到店 last visit"),
)


_IDENTITY = (
    "member.query",
    "phone.empty",
    "phone.letters",
    "phone.characters",
    "phone.length",
    "phone.invalid",
    "phone.country",
    "plate.empty",
    "plate.format",
    "plate.province",
    "plate.letter",
    "plate.io",
    "identifier.empty",
    "identifier.unrecognised",
)
_ADJUST = (
    "member.unknown",
    "member.erased",
    "member.request_reused",
    "member.adjust_points",
    "member.adjust_reason",
    "member.request_id",
)


class Adjustment(BaseModel):
    points: int = Field(ge=-MAX_ADJUST, le=MAX_ADJUST, description="either sign, not 0")
    reason: str = Field(min_length=1, max_length=MAX_REASON)
    request_id: str = Field(
        min_length=8, max_length=64, description="chosen by the client: a repeat books once"
    )


class Erasure(BaseModel):
    confirm: str = Field(max_length=32, description="the member's masked phone, typed again")


def members_api_router() -> APIRouter:
    """Search, open and export members; adjust, PIPL export/erase and import (admin)."""
    router = APIRouter(prefix="/api/v1/hq/members", tags=["HQ console"])

    @router.get(
        "",
        responses=error_responses(*_IDENTITY),
        summary="Search members by phone, plate or member id",
    )
    def search(
        request: Request, user: Reader, reads: ReadLedger, q: Annotated[str, Query(max_length=64)]
    ) -> Any:
        context = cloud_context(request)
        keys = context.chain_keys
        return {"members": reads.read(lambda c: search_members(c, keys, q, context.now()))}

    @router.get(
        "/export",
        responses=error_responses(),
        summary="Every member as CSV or XLSX (masked phones)",
    )
    def export(
        request: Request,
        user: Reader,
        reads: ReadLedger,
        format: Annotated[ExportFormat, Query()] = "csv",
    ) -> Response:
        context = cloud_context(request)
        rows = reads.read(lambda c: member_rows(c, context.chain_keys, context.now()))
        return download(format, EXPORT_COLUMNS, rows, filename="members")

    @router.post(
        "/import",
        responses=error_responses("import.file", "import.rows", body=True),
        summary="Import members from an .xlsx or .csv sheet (the body is the file)",
        description=(
            "Columns phone, plates, name, opening_points (or 手机号, 车牌, 姓名, 期初积分). "
            "With dry_run=true the sheet is checked only. Every bad row is listed as "
            "'row N: reason'; one bad row and nothing is imported (422 import.rows). "
            "Bodies are limited by the service to 8 MiB: larger files go through "
            "`loyalpump cloud member import`."
        ),
    )
    async def import_sheet(
        request: Request,
        user: Admin,
        filename: Annotated[str, Query(min_length=5, max_length=200)],
        dry_run: Annotated[bool, Query()] = False,
    ) -> Any:
        data = await request.body()
        context = cloud_context(request)
        ledger = context.ledger

        def run() -> Any:
            try:
                sheet = parse_sheet(data, filename)
            except SheetError as exc:
                raise ApiProblem(422, "import.file", str(exc)) from None
            return apply_import(
                ledger.db,
                context.chain_keys,
                ledger.rules,
                sheet,
                actor=user.name,
                filename=filename,
                now=context.now(),
                dry_run=dry_run,
            )

        from starlette.concurrency import run_in_threadpool  # noqa: PLC0415 - async route only

        result = await run_in_threadpool(run)
        body = result.as_dict()
        if result.problems and not dry_run:
            detail = f"{len(result.problems)} bad rows: nothing was imported"
            return JSONResponse({"error": "import.rows", "detail": detail, **body}, status_code=422)
        return body

    @router.get(
        "/{member_id}",
        responses=error_responses("not_found"),
        summary="A member's page: balance, lots, tier history, …",
    )
    def member(request: Request, user: Reader, reads: ReadLedger, member_id: str) -> Any:
        context = cloud_context(request)
        keys = context.chain_keys
        page = reads.read(
            lambda c: member_page(c, keys, member_id, context.now()),
            missing=lambda found: found is None,  # imported a moment ago: ask the primary
        )
        if page is None:
            raise ApiProblem(404, "not_found", f"no member {member_id}")
        return page

    @router.get(
        "/{member_id}/sales",
        responses=error_responses(),
        summary="The member's sales at every station, newest first",
    )
    def sales(
        request: Request,
        user: Reader,
        reads: ReadLedger,
        member_id: str,
        before: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> Any:
        return reads.read(lambda c: member_sales(c, member_id, before=before, limit=limit))

    @router.post(
        "/{member_id}/adjustments",
        responses=error_responses(*_ADJUST, body=True),
        summary="Adjust a member's points at HQ (admin)",
    )
    def adjust(request: Request, user: Admin, member_id: str, body: Adjustment) -> Any:
        context = cloud_context(request)
        ledger = context.ledger
        return ledger.db.transact(
            lambda c: hq_adjust(
                ledger.db,
                c,
                context.chain_keys,
                ledger.rules,
                member_id=member_id,
                points=body.points,
                reason=body.reason,
                request_id=body.request_id,
                actor=user.name,
                now=context.now(),
            )
        )

    @router.post(
        "/{member_id}/pipl-export",
        responses=error_responses("member.unknown"),
        summary="PIPL: everything held on a member (JSON)",
    )
    def pipl_export(request: Request, user: Admin, member_id: str) -> Any:
        context = cloud_context(request)
        return context.ledger.db.transact(
            lambda c: export_member(
                c, context.chain_keys, member_id, actor=user.name, now=context.now()
            )
        )

    @router.post(
        "/{member_id}/erase",
        responses=error_responses(
            "not_found",
            "member.confirm",
            "member.erased",
            "member.merged",
            "member.unknown",
            body=True,
        ),
        summary="PIPL: anonymise a member (keeps the ledger's sums)",
    )
    def erase(
        request: Request, user: Admin, member_id: str, body: Annotated[Erasure, Body()]
    ) -> Any:
        context = cloud_context(request)
        ledger = context.ledger
        view = ledger.member(member_id, context.now())
        if view is None or view["member_id"] != member_id:
            raise ApiProblem(404, "not_found", f"no member {member_id}")
        if body.confirm.strip() != view["phone_masked"]:
            raise ApiProblem(422, "member.confirm", "type the member's masked phone to confirm")
        return ledger.db.transact(
            lambda c: erase_member(ledger.db, c, member_id, actor=user.name, now=context.now())
        )

    return router
