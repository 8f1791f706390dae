"""The JSON API of the manager's tools and of redemption against the bill (contracts §5).

Thin glue: every value is judged by the services (the manual-sale limits, the bill's
arithmetic), so a refusal here is the refusal `loyalpump edge …` prints for the same values.
Body models check types and sizes only; ranges are the services' to refuse, with reasons.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..error_codes import BILL_CODES, MANUAL_SALE_CODES
from ..services.corrections import reversal_preview
from ..services.manual_sales import grade_choices, manual_sale_form, manual_source_key
from ..services.members import find_member
from ..services.points import Bill, adjust_member_points, quote_redemption, redeem_points
from ..services.sales import SaleInput, record_sale
from ..services.station import Station
from .auth import Session
from .context import (
    CurrentSession,
    ManagerSession,
    PassiveSession,
    WriteSession,
    manager_page_session,
    web_context,
)
from .openapi import IDENTITY_CODES, READER, REDEEM_CODES, WRITER, error_responses

__all__ = ["manager_api_router"]

_Id = Annotated[str, Path(min_length=1, max_length=64)]
# Decimals as typed: a JSON number or a numeric string, at most 18 digits; the services
# judge the value (range, decimal places) and say why.
_Quantity = Annotated[Decimal, Field(max_digits=18)]
_ManagerPage = Annotated[Session, Depends(manager_page_session)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ManualSaleIn(_Body):
    pump: int
    nozzle: int | None = None
    grade: str = Field(min_length=1, max_length=16)
    litres: _Quantity
    amount: _Quantity
    unit_price: _Quantity | None = None
    ended_at: datetime | None = Field(
        default=None, description="ISO 8601; station time if no offset; default now"
    )
    q: str | None = Field(default=None, max_length=32, description="the member's phone or plate")
    sale_key: str | None = Field(
        default=None,
        min_length=8,
        max_length=64,
        description="Idempotency key: a retry records the sale once",
    )


class RedeemIn(_Body):
    member_id: str = Field(min_length=1, max_length=64)
    points: int = Field(ge=1, le=10_000_000, strict=True)
    redemption_id: str | None = Field(default=None, min_length=8, max_length=64)
    sale_id: str | None = Field(default=None, min_length=1, max_length=64)
    bill: _Quantity | None = Field(default=None, description="an entered bill in yuan")
    litres: _Quantity | None = Field(default=None, description="the entered bill's litres")


class AdjustmentIn(_Body):
    points: int = Field(strict=True)
    reason: str = Field(max_length=1000)
    adjustment_id: str | None = Field(default=None, min_length=8, max_length=64)


_SALE_CODES = ("auth.forbidden", "rules.none", "sale.key_conflict", "member.not_found")
_BILL_REFUSALS = ("member.not_found", "sale.not_found", "sale.reversed", *BILL_CODES)
_ADJUST_CODES = (
    "auth.forbidden",
    "member.not_found",
    "reason.required",
    "reason.too_long",
    "adjust.points",
    "adjust.conflict",
    "points.insufficient",
)


def _ended_at(station: Station, typed: datetime | None) -> datetime:
    if typed is None:
        return station.now()
    return typed if typed.tzinfo is not None else typed.replace(tzinfo=station.zone)


def _bill(sale_id: str | None, bill: Decimal | None, litres: Decimal | None) -> Bill:
    return Bill(sale_id=sale_id, amount=bill, litres=litres)


def manager_api_router() -> APIRouter:
    """Build the manager's and the bill's /api/v1 routes (per app, nothing at import)."""
    router = APIRouter(prefix="/api/v1")

    @router.get("/grades", dependencies=list(READER), responses=error_responses())
    async def grades(request: Request, _: PassiveSession) -> dict[str, Any]:
        """The grades of the rule set in force, each with its recent price here and the
        unit prices a manual sale of it may have."""
        version, choices = await run_in_threadpool(grade_choices, web_context(request).station)
        return {"ruleset_version": version, "grades": [c.to_dict() for c in choices]}

    @router.get(
        "/sale-limits",
        dependencies=list(READER),
        responses=error_responses("auth.forbidden"),
    )
    async def sale_limits(request: Request, _: _ManagerPage) -> dict[str, Any]:
        """What the manual-sale form shows before a key is pressed: grades with their price
        bands, the litres limit and the end-time bounds (default now)."""
        return await run_in_threadpool(manual_sale_form, web_context(request).station)

    @router.post(
        "/sales",
        status_code=201,
        dependencies=list(WRITER),
        responses=error_responses(*_SALE_CODES, *MANUAL_SALE_CODES, *IDENTITY_CODES, write=True),
    )
    async def manual_sale(
        request: Request, body: ManualSaleIn, session: ManagerSession
    ) -> dict[str, Any]:
        """A manual sale, judged by the station's `[sale_limits]`; a retry with the same
        `sale_key` is recorded once (201 both times, `created` says which)."""
        ctx = web_context(request)

        def work() -> dict[str, Any]:
            station = ctx.station
            member_id = None if not body.q else find_member(station, q=body.q).member_id
            sale = SaleInput(
                source="manual",
                pump=body.pump,
                nozzle=body.nozzle,
                grade=body.grade,
                litres=body.litres,
                amount=body.amount,
                unit_price=body.unit_price,
                ended_at=_ended_at(station, body.ended_at),
                source_key=None
                if body.sale_key is None
                else manual_source_key(station, body.sale_key),
                member_id=member_id,
                actor=f"user:{session.user}",
            )
            outcome = record_sale(station, sale)
            return {"sale": outcome.sale.to_dict(), "created": outcome.created}

        answer = await run_in_threadpool(work)
        ctx.live.sale_recorded(answer["sale"]["sale_id"])
        return answer

    @router.get(
        "/sales/{sale_id}/reversal",
        dependencies=list(READER),
        responses=error_responses("auth.forbidden", "sale.not_found"),
    )
    async def reversal_check(request: Request, sale_id: _Id, _: _ManagerPage) -> dict[str, Any]:
        """What reversing the sale would do: its member (masked) and the points taken back."""
        station = web_context(request).station
        preview = await run_in_threadpool(reversal_preview, station, sale_id)
        return preview.to_dict()

    @router.post(
        "/members/{member_id}/adjustments",
        status_code=201,
        dependencies=list(WRITER),
        responses=error_responses(*_ADJUST_CODES, write=True),
    )
    async def adjust(
        request: Request, member_id: _Id, body: AdjustmentIn, session: ManagerSession
    ) -> dict[str, Any]:
        """A manager's points correction with a reason (audited; beyond the cloud's bounds
        it waits for HQ); a retry with the same `adjustment_id` is booked once."""
        station = web_context(request).station
        done = await run_in_threadpool(
            lambda: adjust_member_points(
                station,
                member_id,
                body.points,
                actor=f"user:{session.user}",
                reason=body.reason,
                adjustment_id=body.adjustment_id,
            )
        )
        return {"adjustment": done.to_dict(), "created": done.created}

    @router.get(
        "/redemptions/quote",
        dependencies=list(READER),
        responses=error_responses("rules.none", *_BILL_REFUSALS),
    )
    async def quote(
        request: Request,
        _: CurrentSession,
        member_id: Annotated[str, Query(min_length=1, max_length=64)],
        sale_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
        bill: Annotated[Decimal | None, Query(max_digits=18)] = None,
        litres: Annotated[Decimal | None, Query(max_digits=18)] = None,
        points: Annotated[int | None, Query(ge=-10_000_000, le=10_000_000)] = None,
    ) -> dict[str, Any]:
        """The bill's redemption figures: the rate and minimum, the tier discount, "max off"
        (`max_points`), "use all" (`all_points`, `all_fits`), and for `points` what they
        take off and the amount to collect; `refused` names why they cannot be redeemed."""
        station = web_context(request).station
        figures = await run_in_threadpool(
            quote_redemption, station, member_id, _bill(sale_id, bill, litres), points
        )
        return {"quote": figures.to_dict()}

    @router.post(
        "/redemptions",
        status_code=201,
        dependencies=list(WRITER),
        responses=error_responses(*REDEEM_CODES, *_BILL_REFUSALS, write=True),
    )
    async def redeem(request: Request, body: RedeemIn, session: WriteSession) -> dict[str, Any]:
        """Redeem points, against a sale (`sale_id`) or an entered bill (`bill`, `litres`)
        or none; a retry with the same `redemption_id` is booked once."""
        station = web_context(request).station
        done = await run_in_threadpool(
            lambda: redeem_points(
                station,
                body.member_id,
                body.points,
                actor=f"user:{session.user}",
                redemption_id=body.redemption_id,
                bill=_bill(body.sale_id, body.bill, body.litres),
            )
        )
        return {"redemption": done.to_dict(), "created": done.created}

    return router
