"""(Being built: see the member app issue.)"""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["me_router"]


def me_router() -> APIRouter:
    return APIRouter(prefix="/m/api/v1", tags=["member app"])
