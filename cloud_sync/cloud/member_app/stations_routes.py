"""The station finder: `GET /m/api/v1/stations?lat=&lng=&limit=`.

Public (a visitor looks for a station before signing up): no token, nothing about members,
only what a sign at the roadside says (name, address, coordinates). Bounded: at most 50
stations an answer, and the search reads a band of latitude through an index, not the whole
table.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from cloud_sync.cloud.ledger.errors import LedgerError
from cloud_sync.cloud.ledger.station_locations import MAX_NEARBY, nearby_stations, parse_degrees
from cloud_sync.cloud.server.errors import error_responses
from cloud_sync.cloud.server.read_ledger import ReadLedger

__all__ = ["stations_router"]

_PHONE_PLACES = 9  # a phone's fix may carry more decimals than HQ types; kept to the millionth

DegreesParam = Annotated[
    str | None,
    Query(max_length=24, description="decimal degrees (WGS-84 or GCJ-02 as HQ keys them)"),
]


def stations_router() -> APIRouter:
    router = APIRouter(prefix="/m/api/v1", tags=["member app"])

    @router.get(
        "/stations",
        summary="Stations nearest first from a point (or by id without one); no token needed",
        responses=error_responses("member_app.location"),
    )
    def find_stations(
        request: Request,
        reads: ReadLedger,
        lat: DegreesParam = None,
        lng: DegreesParam = None,
        limit: Annotated[int, Query(ge=1, le=MAX_NEARBY, description="at most 50")] = 20,
    ) -> JSONResponse:
        if (lat is None) != (lng is None):
            raise LedgerError("member_app.location", "send both lat and lng, or neither")
        lat_e6 = None if lat is None else _degrees(lat, "lat")
        lng_e6 = None if lng is None else _degrees(lng, "lng")
        found = reads.read(lambda conn: nearby_stations(conn, lat_e6, lng_e6, limit))
        origin = None if lat is None else {"lat": lat.strip(), "lng": (lng or "").strip()}
        return JSONResponse({"stations": found, "from": origin})

    return router


def _degrees(text: str, axis: str) -> int:
    return parse_degrees(text, axis=axis, places=_PHONE_PLACES, code="member_app.location")
