"""Putting the console into the cloud app: every screen's router, its static files, the
redirect of a page asked without a session to the login form."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from .audit_page import audit_router
from .auth import LoginRequired
from .feedback import feedback_router
from .invoices import invoices_router
from .login import login_router
from .members_api import members_api_router
from .members_pages import members_pages_router
from .reports import router as reports_router
from .rules_api import rules_api_router
from .rules_pages import rules_pages_router
from .station_location import station_location_router
from .stations import stations_router
from .users import users_router

__all__ = ["console_routers", "mount_console_static"]

_STATIC_DIR = Path(__file__).parent / "static"


def console_routers() -> list[APIRouter]:
    """Each screen's pages and API, in the order the navigation shows them."""
    return [
        login_router(),
        reports_router,
        stations_router(),
        station_location_router(),
        rules_pages_router(),
        rules_api_router(),
        members_pages_router(),
        members_api_router(),
        invoices_router(),
        feedback_router(),
        audit_router(),
        users_router(),
    ]


def _login_redirect(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/hq/login?next={quote(target, safe='')}", status_code=303)


def mount_console_static(app: FastAPI) -> None:
    """Scripts, styles and the chart library, served by this process (no CDN: HQ intranets
    may have no internet); and the login redirect."""
    app.mount("/hq/static", StaticFiles(directory=str(_STATIC_DIR)), name="hq-static")
    app.add_exception_handler(LoginRequired, _login_redirect)
