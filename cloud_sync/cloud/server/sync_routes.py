"""Station routes: enrolment, the idempotent event push, the changes feed.

The gate has already turned the bearer token into a station id; every body that names a
station must name that one. Ledger calls are synchronous, so the handlers are plain `def`
and run in the threadpool.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ValidationError

from cloud_sync.cloud.ledger import EventConflict, LedgerError, SequenceGap
from cloud_sync.core.privacy import MemberKeys
from cloud_sync.core.wire import (
    ChangesResponse,
    EnrolRequest,
    EnrolResponse,
    MemberKeysWire,
    PushRequest,
    PushResponse,
)

from .context import ApiProblem, cloud_context, station_of
from .errors import error_responses
from .validation import validation_detail

__all__ = ["sync_router"]


_STATION_TOKEN = HTTPBearer(
    scheme_name="StationToken",
    description="The station's own token, from `loyalpump cloud station add`.",
    auto_error=False,
)


def _same_station(request: Request, named: str) -> str:
    station_id = station_of(request)
    if named != station_id:
        raise ApiProblem(403, "forbidden", f"this token belongs to station {station_id}")
    return station_id


def _keys_of(wire: list[MemberKeysWire]) -> list[MemberKeys]:
    keys = []
    for index, item in enumerate(wire):
        try:
            keys.append(
                MemberKeys(
                    key_id=item.key_id,
                    encryption_key=base64.b64decode(item.encryption_key, validate=True),
                    index_key=base64.b64decode(item.index_key, validate=True),
                )
            )
        except (binascii.Error, ValueError) as exc:
            detail = f"station_keys.{index}: {exc}"
            raise ApiProblem(422, "invalid", detail) from exc
    return keys


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


async def _push_body(request: Request) -> PushRequest:
    """Parse the batch straight from the bytes (pydantic-core's JSON parser), not through
    json.loads and a second validation pass: a catch-up moves hundreds of batches."""
    try:
        return PushRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise ApiProblem(422, "invalid", validation_detail(exc.errors())) from exc


def _json(model: BaseModel) -> Response:
    """The model as JSON, serialized once (the route's response_model documents it)."""
    return Response(content=model.model_dump_json(), media_type="application/json")


_MAX_CURSOR = 2**63 - 1  # a cursor is a database integer (a larger one overflowed into a 500)


def sync_router() -> APIRouter:
    router = APIRouter(
        prefix="/api/v1/sync",
        tags=["sync (station token)"],
        dependencies=[Depends(_STATION_TOKEN)],  # the gate checks; this documents
    )

    @router.post(
        "/enrol",
        response_model=EnrolResponse,
        responses=error_responses("station.unknown", "keys.conflict", body=True),
    )
    def enrol(body: EnrolRequest, request: Request) -> EnrolResponse:
        """Hand over the station's old member keys; answer the chain keys and signing key."""
        context = cloud_context(request)
        station_id = _same_station(request, body.station_id)
        context.ledger.enrol(station_id, _keys_of(body.station_keys), context.now())
        chain = context.chain_keys
        return EnrolResponse(
            station_id=station_id,
            member_keys=MemberKeysWire(
                key_id=chain.key_id,
                encryption_key=_b64(chain.encryption_key),
                index_key=_b64(chain.index_key),
            ),
            signing_key_id=context.signing_key_id,
            signing_public_key=context.signing_public_key,
        )

    @router.post(
        "/events",
        response_model=PushResponse,
        responses=error_responses("sequence_gap", "event_conflict", "station.mismatch", body=True),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": PushRequest.model_json_schema()}},
            }
        },
    )
    def push(body: Annotated[PushRequest, Depends(_push_body)], request: Request) -> Response:
        """Apply a contiguous batch of one epoch's events, once, in one transaction."""
        context = cloud_context(request)
        station_id = _same_station(request, body.station_id)
        try:
            response = context.ledger.push(station_id, body, context.now())
        except SequenceGap as exc:
            context.metrics.conflict("sequence_gap")
            raise ApiProblem(
                409, "sequence_gap", str(exc), expected_seq=exc.expected_seq, epoch=exc.epoch
            ) from exc
        except EventConflict as exc:
            context.metrics.conflict("event_conflict")
            raise ApiProblem(409, "event_conflict", str(exc), event_id=exc.event_id) from exc
        except LedgerError as exc:
            if exc.code == "batch.invalid":
                raise ApiProblem(422, "invalid", str(exc)) from exc
            raise
        context.metrics.push_answered([result.status for result in response.results])
        return _json(response)

    @router.get(
        "/changes",
        response_model=ChangesResponse,
        responses=error_responses("changes.cursor", "changes.limit"),
    )
    def changes(
        request: Request,
        since: Annotated[
            int, Query(ge=0, le=_MAX_CURSOR, description="The cursor of the last page applied.")
        ] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    ) -> Response:
        """A page of rule sets, member deltas and deny entries, plus allowance and switch."""
        context = cloud_context(request)
        page = context.ledger.changes(station_of(request), since, limit, context.now())
        context.metrics.changes_page()
        return _json(page)

    return router
