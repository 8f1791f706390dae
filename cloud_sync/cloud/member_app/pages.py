"""(Being built: the H5 page at /m/.)"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

__all__ = ["mount_member_static", "pages_router"]


def pages_router() -> APIRouter:
    return APIRouter(tags=["member app page"])


def mount_member_static(app: FastAPI) -> None:
    """Scripts, styles and the brand's logo served by this process."""
