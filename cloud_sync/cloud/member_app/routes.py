"""Putting the member app into the cloud app: its routers, its static files, its state."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from cloud_sync.cloud.ledger.tax_platform import FileTaxPlatform, outbox_of
from cloud_sync.cloud.server.settings import CloudSettings

from .activity_routes import activity_router
from .me_routes import me_router
from .pages import mount_member_static, pages_router
from .session_routes import session_router
from .state import MemberAppState
from .stations_routes import stations_router

__all__ = ["API_PREFIX", "install_member_app", "member_app_routers"]

API_PREFIX = "/m/api/v1"


def member_app_routers() -> list[APIRouter]:
    return [
        session_router(),
        me_router(),
        activity_router(),
        stations_router(),
        pages_router(),
    ]


def install_member_app(app: FastAPI, settings: CloudSettings) -> None:
    app.state.member_app = MemberAppState(settings=settings.member_app, data_dir=settings.data_dir)
    # Where invoice requests go (the console hands them over): the `file` adapter for now.
    app.state.tax_platform = FileTaxPlatform(outbox_of(settings.data_dir))
    for router in member_app_routers():
        app.include_router(router)
    mount_member_static(app)
