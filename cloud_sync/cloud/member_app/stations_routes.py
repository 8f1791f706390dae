"""(Being built: see the member app issue.)"""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["stations_router"]


def stations_router() -> APIRouter:
    return APIRouter(prefix="/m/api/v1", tags=["member app"])
