"""(Being built: see the member app issue.)"""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["session_router"]


def session_router() -> APIRouter:
    return APIRouter(prefix="/m/api/v1", tags=["member app"])
