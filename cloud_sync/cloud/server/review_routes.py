"""HQ routes for station trust (admin token): the review list, suspensions, and the
adjustments that wait for HQ's approval (docs/sync.md, "Trust")."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from .context import cloud_context
from .errors import error_responses

__all__ = ["DecisionBody", "ReviewBody", "review_router"]


class ReviewBody(BaseModel):
    """HQ's decision on a station: suspend its offline redemption, or lift the suspension
    (which resolves its open flags)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    suspended: StrictBool
    by: Annotated[str, Field(min_length=1, max_length=64)] = "hq"
    reason: Annotated[str | None, Field(max_length=500)] = None


class DecisionBody(BaseModel):
    """Approve (book it as the station asked) or decline a held adjustment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approve: StrictBool
    by: Annotated[str, Field(min_length=1, max_length=64)]
    note: Annotated[str | None, Field(max_length=500)] = None


_ADMIN_TOKEN = HTTPBearer(
    scheme_name="AdminToken",
    description="HQ's admin token (`[cloud] admin_token`).",
    auto_error=False,
)


def review_router() -> APIRouter:
    router = APIRouter(
        prefix="/api/v1",
        tags=["HQ (admin token)"],
        dependencies=[Depends(_ADMIN_TOKEN)],  # the gate checks; this documents
    )

    @router.get("/review", responses=error_responses())
    def review(request: Request) -> list[dict[str, Any]]:
        """The review list: stations with open flags, a suspension or held adjustments."""
        return cloud_context(request).ledger.review_list()

    @router.get("/review/flags", responses=error_responses())
    def flags(
        request: Request,
        station: Annotated[str | None, Query(max_length=32)] = None,
        open_only: Annotated[bool, Query(alias="open")] = True,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        """What stations did beyond their authority, newest first."""
        return cloud_context(request).ledger.station_flags(
            station, open_only=open_only, limit=limit
        )

    @router.put(
        "/stations/{station_id}/review",
        responses=error_responses("station.unknown", body=True),
    )
    def set_review(station_id: str, body: ReviewBody, request: Request) -> dict[str, Any]:
        """Suspend a station's offline redemption, or lift it (its open flags resolved)."""
        context = cloud_context(request)
        return context.ledger.set_station_suspended(  # LedgerError: its catalogue status
            station_id, suspended=body.suspended, by=body.by, reason=body.reason, now=context.now()
        )

    @router.get("/adjustments", responses=error_responses())
    def adjustments(
        request: Request,
        status: Annotated[
            Literal["pending", "applied", "approved", "declined", "all"], Query()
        ] = "pending",
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        """Stations' manual adjustments; by default those waiting for HQ's approval."""
        return cloud_context(request).ledger.adjustments(None if status == "all" else status, limit)

    @router.post(
        "/adjustments/{event_id}/decision",
        responses=error_responses("adjustment.unknown", "adjustment.decided", body=True),
    )
    def decide(event_id: str, body: DecisionBody, request: Request) -> dict[str, Any]:
        """Approve or decline a held adjustment, once."""
        context = cloud_context(request)
        return context.ledger.decide_adjustment(  # LedgerError: its catalogue status
            event_id, approve=body.approve, by=body.by, note=body.note, now=context.now()
        )

    return router
