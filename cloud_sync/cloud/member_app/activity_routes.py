"""What a member does in the app besides reading: check in, ask for a 数电发票, give feedback.

The member is always the token's (`CurrentMember`), never an id from the body; a sale of
another member answers 404 like a sale that does not exist. The ledger modules
(member_checkin, member_invoices, member_feedback) hold the rules and the SQL; this module
is HTTP only.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from cloud_sync.cloud.ledger.member_checkin import CheckedIn, MemberGone, check_in
from cloud_sync.cloud.ledger.member_feedback import FeedbackExists, submit_feedback
from cloud_sync.cloud.ledger.member_invoices import (
    InvoiceExists,
    member_invoices,
    request_invoice,
    validate_ask,
)
from cloud_sync.cloud.ledger.member_self import FRESHNESS_EN, FRESHNESS_ZH
from cloud_sync.cloud.server.context import ApiProblem, cloud_context
from cloud_sync.cloud.server.errors import error_responses, status_of
from cloud_sync.cloud.server.read_ledger import ReadLedger
from cloud_sync.core.wire import Problem

from .auth import CurrentMember
from .state import member_app_state

__all__ = ["activity_router"]

# The same note as every /me answer's (member_self.freshness); these answers name no
# station, so no station's last push is looked up.
_FRESHNESS = {"note": FRESHNESS_ZH, "note_en": FRESHNESS_EN, "stations_synced_at": None}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class InvoiceBody(_Body):
    sale_id: str = Field(min_length=1, max_length=64)
    buyer_name: str = Field(max_length=400, description="the company's or the person's name")
    tax_id: str | None = Field(
        default=None, max_length=40, description="unified social credit code; empty: a person"
    )
    email: str = Field(max_length=400, description="where the invoice is sent")


class FeedbackBody(_Body):
    sale_id: str | None = Field(default=None, min_length=1, max_length=64)
    station_id: str | None = Field(default=None, min_length=1, max_length=32)
    rating: int = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=2000, description="trimmed; at most 500")


class CheckinConflict(Problem):
    """409: `member_app.checked_in` carries the day's check-in; `checkin_off` does not."""

    checkin: dict[str, Any] | None = None


class InvoiceConflict(Problem):
    """409: `member_app.invoice_exists` carries the stored request; `sale_reversed` does not."""

    invoice: dict[str, Any] | None = None


class FeedbackConflict(Problem):
    """409: `member_app.feedback_exists` carries the stored feedback."""

    feedback: dict[str, Any] | None = None


def _documented(codes: tuple[str, ...], conflict: type[BaseModel], *, body: bool) -> Any:
    """The route's refusals, its 409 with the model that carries the stored record."""
    responses = error_responses(*codes, body=body)
    responses[409] = {**responses[409], "model": conflict}
    return responses


def _signed_out() -> ApiProblem:
    return ApiProblem(401, "unauthorized", "signed out: the member is no longer known")


def _conflict(exc: Exception, code: str, detail: str, key: str, record: Any) -> JSONResponse:
    del exc
    return JSONResponse({"error": code, "detail": detail, key: record}, status_code=status_of(code))


def _fresh(request: Request) -> dict[str, Any]:
    return {"as_of": cloud_context(request).now().isoformat(), "freshness": dict(_FRESHNESS)}


def activity_router() -> APIRouter:
    router = APIRouter(prefix="/m/api/v1", tags=["member app"])

    @router.post(
        "/me/checkin",
        status_code=201,
        responses=_documented(
            ("member_app.checkin_off", "member_app.checked_in"), CheckinConflict, body=False
        ),
        summary="Check in today (once a day in the chain's time zone)",
    )
    def checkin(request: Request, member: CurrentMember) -> Any:
        context = cloud_context(request)
        ledger, now = context.ledger, context.now()
        try:
            record, balance = ledger.db.transact(
                lambda conn: check_in(
                    ledger.db, conn, ledger.rules, member_id=member.member_id, now=now
                )
            )
        except MemberGone:
            raise _signed_out() from None
        except CheckedIn as exc:
            return _conflict(exc, exc.code, str(exc), "checkin", exc.record.as_dict())
        return {**record.as_dict(), "balance": balance, **_fresh(request)}

    @router.post(
        "/me/invoices",
        status_code=201,
        responses={
            200: {"description": "The same request again: the stored one"},
            **_documented(
                (
                    "not_found",
                    "member_app.invoice_exists",
                    "member_app.sale_reversed",
                    "member_app.buyer_name",
                    "member_app.tax_id",
                    "member_app.email",
                ),
                InvoiceConflict,
                body=True,
            ),
        },
        summary="Ask for the 数电发票 of one of the member's sales (one request per sale)",
    )
    def invoice(request: Request, member: CurrentMember, body: InvoiceBody) -> Any:
        context = cloud_context(request)
        ledger, keys, now = context.ledger, context.chain_keys, context.now()
        ask = validate_ask(body.sale_id, body.buyer_name, body.tax_id, body.email)
        try:
            stored, created = ledger.db.transact(
                lambda conn: request_invoice(
                    ledger.db,
                    conn,
                    keys,
                    ledger.rules,
                    member_id=member.member_id,
                    ask=ask,
                    now=now,
                )
            )
        except MemberGone:
            raise _signed_out() from None
        except InvoiceExists as exc:
            return _conflict(exc, exc.code, str(exc), "invoice", exc.stored)
        return JSONResponse(stored, status_code=201 if created else 200)

    @router.get(
        "/me/invoices",
        responses=error_responses("member_app.cursor"),
        summary="The member's invoice requests, newest first (paged)",
    )
    def invoices(
        request: Request,
        member: CurrentMember,
        reads: ReadLedger,
        before: Annotated[str | None, Query(max_length=80)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> Any:
        keys = cloud_context(request).chain_keys
        try:
            page = reads.read(
                lambda conn: member_invoices(
                    conn, keys, member.member_id, before=before, limit=limit
                )
            )
        except MemberGone:
            raise _signed_out() from None
        return {**page, **_fresh(request)}

    @router.post(
        "/me/feedback",
        status_code=201,
        responses={
            200: {"description": "The same feedback on the same sale again: the stored one"},
            **_documented(
                (
                    "not_found",
                    "station.unknown",
                    "member_app.feedback_exists",
                    "member_app.feedback_limit",
                    "member_app.rating",
                    "member_app.comment",
                    "member_app.station_mismatch",
                ),
                FeedbackConflict,
                body=True,
            ),
        },
        summary="Rate a visit 1-5 with a comment, about a sale, a station or the chain",
    )
    def give_feedback(request: Request, member: CurrentMember, body: FeedbackBody) -> Any:
        context = cloud_context(request)
        ledger, now = context.ledger, context.now()
        per_day = member_app_state(request).settings.feedback_per_day
        try:
            stored, created = ledger.db.transact(
                lambda conn: submit_feedback(
                    ledger.db,
                    conn,
                    member_id=member.member_id,
                    sale_id=body.sale_id,
                    station_id=body.station_id,
                    rating=body.rating,
                    comment=body.comment,
                    per_day=per_day,
                    now=now,
                )
            )
        except MemberGone:
            raise _signed_out() from None
        except FeedbackExists as exc:
            return _conflict(exc, exc.code, str(exc), "feedback", exc.stored)
        return JSONResponse(stored, status_code=201 if created else 200)

    return router
