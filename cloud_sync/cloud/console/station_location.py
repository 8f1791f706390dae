"""HQ sets where a station is: `PUT /api/v1/hq/stations/{station_id}/location` (admin).

The member app's station finder shows the address and sorts by the coordinates. Degrees
come as decimal text (`"31.2304"`) so they are kept exactly, to the millionth; a JSON number
would pass through a float. Audited as `station.locate` with the before and after.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from cloud_sync.cloud.ledger.station_locations import (
    ADDRESS_MAX,
    parse_degrees,
    set_station_location,
)
from cloud_sync.cloud.server.context import cloud_context
from cloud_sync.cloud.server.errors import error_responses

from .auth import Admin

__all__ = ["station_location_router"]


class LocationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lat: Annotated[StrictStr, Field(max_length=24, description='decimal degrees, e.g. "31.2304"')]
    lng: Annotated[StrictStr, Field(max_length=24, description='decimal degrees, e.g. "121.4737"')]
    address: Annotated[
        StrictStr | None, Field(max_length=ADDRESS_MAX * 2, description="kept when absent")
    ] = None


def station_location_router() -> APIRouter:
    router = APIRouter(tags=["HQ console"])

    @router.put(
        "/api/v1/hq/stations/{station_id}/location",
        summary="Set a station's address and coordinates (the member app's station finder)",
        responses=error_responses(
            "station.unknown", "station.location", "station.address", body=True
        ),
    )
    def locate_station(
        request: Request, station_id: str, body: LocationBody, user: Admin
    ) -> JSONResponse:
        lat_e6 = parse_degrees(body.lat, axis="lat")
        lng_e6 = parse_degrees(body.lng, axis="lng")
        context = cloud_context(request)
        now = context.now()
        done = context.ledger.db.transact(
            lambda conn: set_station_location(
                conn,
                station_id,
                lat_e6=lat_e6,
                lng_e6=lng_e6,
                address=body.address,
                actor=user.name,
                now=now,
            )
        )
        return JSONResponse(done)

    return router
