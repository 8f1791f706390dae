"""HQ routes (admin token): rule sets, members, the offline-redemption switch, reports."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, StrictBool
from starlette.concurrency import run_in_threadpool

from cloud_sync.core.ruleset import RuleSetError

from .context import ApiProblem, cloud_context
from .errors import IDENTITY_CODES, error_responses
from .rules import publish_ruleset

__all__ = ["PolicyBody", "admin_router"]

_RULESET_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The rule-set JSON document itself; its exact text is signed.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


class PolicyBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    offline_redemption: StrictBool


_ADMIN_TOKEN = HTTPBearer(
    scheme_name="AdminToken",
    description="HQ's admin token (`[cloud] admin_token`).",
    auto_error=False,
)


def _without_secrets(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if "token" not in key}


def admin_router() -> APIRouter:
    router = APIRouter(
        prefix="/api/v1",
        tags=["HQ (admin token)"],
        dependencies=[Depends(_ADMIN_TOKEN)],  # the gate checks; this documents
    )

    @router.post(
        "/rulesets",
        status_code=201,
        openapi_extra=_RULESET_BODY,
        responses=error_responses(
            "rules.invalid", "rules.unsigned", "rules.version_taken", body=True
        ),
    )
    async def publish(request: Request) -> JSONResponse:
        """Validate, sign and publish a rule set to every station."""
        context = cloud_context(request)
        raw = await request.body()
        try:
            published = await run_in_threadpool(
                publish_ruleset, context.ledger, context.signing_key, raw, context.now()
            )
        except RuleSetError as exc:
            raise ApiProblem(422, "rules.invalid", str(exc)) from exc
        return JSONResponse(published.to_dict(), status_code=201)

    @router.get("/rulesets", responses=error_responses())
    def rulesets(request: Request) -> list[dict[str, Any]]:
        """Every published rule set, as the ledger keeps them."""
        return cloud_context(request).ledger.rulesets()

    @router.get("/members/{member_id}", responses=error_responses("not_found"))
    def member(member_id: str, request: Request) -> dict[str, Any]:
        """The chain-wide view of one member."""
        context = cloud_context(request)
        found = context.ledger.member(member_id, context.now())
        if found is None:
            raise ApiProblem(404, "not_found", f"no member {member_id}")
        return found

    @router.get(
        "/members",
        responses=error_responses("not_found", "member.identifier", *IDENTITY_CODES),
        description=(
            "Find a member by phone **or** by plate: exactly one of the two query "
            "parameters (they exclude each other). Neither or both is answered 422 "
            "`invalid`; a phone or plate that is not valid, 422 with its identity code."
        ),
    )
    def find_member(
        request: Request,
        phone: Annotated[
            str | None,
            Query(description="Mainland mobile number. Excludes `plate`.", max_length=32),
        ] = None,
        plate: Annotated[
            str | None, Query(description="Licence plate. Excludes `phone`.", max_length=16)
        ] = None,
    ) -> dict[str, Any]:
        if (phone is None) == (plate is None):
            raise ApiProblem(422, "invalid", "give exactly one of phone or plate")
        context = cloud_context(request)
        found = context.ledger.find_member(phone=phone, plate=plate, now=context.now())
        if found is None:
            raise ApiProblem(404, "not_found", "no member with that phone or plate")
        return found

    @router.get("/policy", response_model=PolicyBody, responses=error_responses())
    def policy(request: Request) -> PolicyBody:
        """HQ's offline-redemption switch."""
        return PolicyBody(offline_redemption=cloud_context(request).ledger.offline_redemption())

    @router.put("/policy", response_model=PolicyBody, responses=error_responses(body=True))
    def set_policy(body: PolicyBody, request: Request) -> PolicyBody:
        """Turn offline redemption on or off; stations see it at their next pull."""
        context = cloud_context(request)
        context.ledger.set_offline_redemption(body.offline_redemption, context.now())
        return PolicyBody(offline_redemption=context.ledger.offline_redemption())

    @router.get("/reports/variance", responses=error_responses())
    def variance(request: Request) -> list[dict[str, Any]]:
        """Where the cloud's recomputed points differ from the stations' receipts."""
        return cloud_context(request).ledger.variance_report()

    @router.get("/quarantine", responses=error_responses())
    def quarantine(
        request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[dict[str, Any]]:
        """Events stored as rejected, newest first, for HQ to look at."""
        return cloud_context(request).ledger.quarantined(limit)

    @router.get("/stations", responses=error_responses())
    def stations(request: Request) -> list[dict[str, Any]]:
        """Enrolled stations (never their tokens)."""
        return [_without_secrets(row) for row in cloud_context(request).ledger.stations()]

    return router
