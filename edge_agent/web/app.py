"""The cashier page's FastAPI app, built per station: routes, guards, headers, error answers.

`build_app` creates everything (sessions, limiter, counters, templates) when called, never at
import, so tests and the daemon each get their own.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from cloud_sync.core.asgi import allowed_methods

from ..error_codes import status_of
from ..errors import ServiceError
from ..services.health import store_write_error
from ..services.station import Station
from ..services.status import station_status
from .api import api_router
from .api_manager import manager_api_router
from .api_till import api_till_router
from .auth import COOKIE_NAME, HashSlots, SessionStore, WebError
from .context import WebContext, lang_of, render, web_context
from .fragments import fragments_router
from .guard import MAX_BODY, GuardMiddleware, allowed_host_names
from .health import HealthProbe, RuntimeHealth, assess_health
from .i18n import LANGS, error_text, refusal_text, translate
from .live import LiveBoard
from .metrics import StationMetrics, TimingMiddleware, route_label
from .openapi import install_openapi
from .pages import pages_router

__all__ = ["OPENAPI_URL", "build_app"]

OPENAPI_URL = "/api/v1/openapi.json"

log = logging.getLogger(__name__)

_STATIC = Path(__file__).parent / "static"
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _needs_session(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/api/v1/") and path != "/api/v1/login"


def _is_fragment(request: Request) -> bool:
    return request.url.path.startswith("/ui/") or request.headers.get("HX-Request") == "true"


def _refusal(
    request: Request, status: int, code: str, message: str | None = None, english: str | None = None
) -> Response:
    """A refusal shaped for its caller: JSON for the API, a fragment for htmx, else a page.

    `english` is the service's own sentence, shown to English readers for codes the
    catalogue does not know yet.
    """
    lang = lang_of(request)
    text = message or error_text(lang, code, english)
    if _is_api(request):
        return JSONResponse({"error": code, "message": text}, status_code=status)
    if status == 401:
        # A session cookie the station no longer knows: the session timed out, say so.
        login = "/login?expired=1" if request.cookies.get(COOKIE_NAME) else "/login"
        if _is_fragment(request):
            return PlainTextResponse(text, status_code=401, headers={"HX-Redirect": login})
        return RedirectResponse(login, status_code=303)
    if _is_fragment(request):
        return render(request, "_error.html", status=status, message=text, code=code)
    session = web_context(request).sessions.get(request.cookies.get(COOKIE_NAME), touch=False)
    if code == "auth.forbidden":
        return render(request, "forbidden.html", status=403, session=session, message=text)
    return render(request, "error.html", status=status, session=session, message=text, code=code)


def _page_problem(request: Request, status: int, key: str) -> Response:
    """A whole page for a missing page or a fault, in the reader's language."""
    _choose_lang(request)
    session = web_context(request).sessions.get(request.cookies.get(COOKIE_NAME), touch=False)
    text = translate(lang_of(request), key)
    response = render(
        request, "error.html", status=status, session=session, message=text, code=str(status)
    )
    _harden(request, response)
    return response


def _install_handlers(app: FastAPI) -> None:
    async def web_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WebError)
        response = _refusal(request, exc.status, exc.code, exc.message)
        if exc.status == 429:
            response.headers["Retry-After"] = str(exc.retry_after or 300)
        return response

    async def service_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceError)
        text = refusal_text(lang_of(request), exc)
        return _refusal(request, status_of(exc.code), exc.code, text, english=str(exc))

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        fields = [
            {"loc": [str(part) for part in err.get("loc", ())], "type": err.get("type")}
            for err in exc.errors()[:20]
        ]
        response = _refusal(request, 422, "request.invalid")
        if isinstance(response, JSONResponse):
            text = error_text(lang_of(request), "request.invalid")
            return JSONResponse(
                {"error": "request.invalid", "message": text, "fields": fields}, status_code=422
            )
        return response

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400:  # a body FastAPI cannot parse: invalid, like any bad body
            return _refusal(request, 422, "request.invalid")
        code = f"http.{exc.status_code}"
        if exc.status_code == 404 and not _is_api(request) and not _is_fragment(request):
            return _page_problem(request, 404, "page.404")
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request.app.router.routes, request.scope, Match.NONE)
        return JSONResponse(
            {"error": code, "message": str(exc.detail)},
            status_code=exc.status_code,
            headers=headers or None,
        )

    async def server_error(request: Request, exc: Exception) -> Response:
        _choose_lang(request)
        text = translate(lang_of(request), "page.500")
        if _is_api(request):
            response: Response = JSONResponse(
                {"error": "internal", "message": text}, status_code=500
            )
        elif _is_fragment(request):
            response = render(request, "_error.html", status=500, message=text, code="internal")
        else:
            return _page_problem(request, 500, "page.500")
        _harden(request, response)
        return response

    app.add_exception_handler(WebError, web_error)
    app.add_exception_handler(Exception, server_error)
    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)


def _choose_lang(request: Request) -> str | None:
    """Set the request's language (query, then cookie, then Chinese); the asked one or None."""
    asked = request.query_params.get("lang")
    cookie_lang = request.cookies.get("lang")
    request.state.lang = (
        asked if asked in LANGS else cookie_lang if cookie_lang in LANGS else LANGS[0]
    )
    return asked if asked in LANGS else None


def _harden(request: Request, response: Response) -> None:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    # same-origin, not no-referrer: with no-referrer a browser sends `Origin: null` on the
    # page's own form posts, which the same-origin check must refuse.
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Content-Security-Policy", _CSP)
    if not request.url.path.startswith("/static/"):
        headers.setdefault("Cache-Control", "no-store")


def _guard_refusal(request: Request, status: int, code: str) -> Response:
    """A refusal from the front door (host, origin, body size), counted like any answer."""
    _choose_lang(request)
    response = _refusal(request, status, code)
    _harden(request, response)
    web_context(request).metrics.count(request.method, route_label(request.scope), status)
    return response


def _install_middleware(app: FastAPI) -> None:
    @app.middleware("http")
    async def around(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        ctx = web_context(request)
        asked = _choose_lang(request)
        if _needs_session(request) and not ctx.sessions.get(
            request.cookies.get(COOKIE_NAME), touch=False
        ):
            response: Response = _refusal(request, 401, "auth.required")  # unknown paths too
        else:
            response = await call_next(request)
        if asked is not None:
            response.set_cookie("lang", asked, samesite="strict", path="/", max_age=31536000)
        _harden(request, response)
        ctx.metrics.count(request.method, route_label(request.scope), response.status_code)
        return response


def _install_probes(app: FastAPI, probe: HealthProbe | None) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz(request: Request) -> JSONResponse:
        station = web_context(request).station
        runtime, probe_error = _ask(probe)

        def facts() -> tuple[str | None, dict[str, Any] | None]:
            error = store_write_error(station)
            if error is not None:
                return error, None
            try:
                return None, station_status(station)
            except Exception as exc:  # the store took the lock but cannot be read
                return type(exc).__name__, None

        store_error, status = await run_in_threadpool(facts)
        code, body = assess_health(
            station.settings,
            station.now(),
            store_error=store_error,
            status=status,
            runtime=runtime,
            probe_error=probe_error,
        )
        return JSONResponse(body, status_code=code)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> PlainTextResponse:
        ctx = web_context(request)
        runtime, _ = _ask(probe)
        status = await run_in_threadpool(station_status, ctx.station)
        text = ctx.metrics.render(
            status,
            sessions=ctx.sessions.count(),
            listeners=ctx.live.subscriber_count(),
            runtime=runtime,
        )
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


def _ask(probe: HealthProbe | None) -> tuple[RuntimeHealth | None, str | None]:
    """The daemon's view of drivers and sync, or (None, the error's kind) if the probe raised."""
    if probe is None:
        return None, None
    try:
        return probe(), None
    except Exception as exc:  # a broken probe must not take the health endpoint down with it
        log.exception("health probe failed")
        return None, type(exc).__name__


def build_app(
    station: Station,
    *,
    live: LiveBoard | None = None,
    idle_timeout_s: float = 900,
    secure_cookies: bool = False,
    probe: HealthProbe | None = None,
) -> FastAPI:
    """The cashier page for `station`; `live` is the daemon's pump board (a quiet one if None).

    `probe` reports the drivers and the sync thread for /healthz and /metrics; None (tests,
    the web page alone) leaves them out. `secure_cookies` (the page is served over TLS)
    marks the session cookie Secure. The host names and the number of PIN hashes at once
    come from the station's `[web]` settings.
    """
    web = station.settings.web
    app = FastAPI(
        title="loyalpump station: cashier API",
        description="The cashier API (contracts §4). This document needs a session too.",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url=OPENAPI_URL,  # under /api/v1/: the session middleware guards it
    )
    metrics = StationMetrics()  # this app's own registry: two apps never share a series
    app.state.ctx = WebContext(
        station=station,
        metrics=metrics,
        live=live if live is not None else LiveBoard(),
        sessions=SessionStore(idle_timeout_s=idle_timeout_s),
        secure_cookies=secure_cookies,
        hash_slots=HashSlots(web.login_concurrency),
    )
    _install_handlers(app)
    _install_middleware(app)
    app.add_middleware(
        GuardMiddleware,
        allowed_hosts=allowed_host_names(web.host, web.allowed_hosts),
        refuse=_guard_refusal,
        max_body=MAX_BODY,
    )
    app.add_middleware(TimingMiddleware, metrics=metrics)  # outermost: refusals count too
    _install_probes(app, probe)
    app.include_router(api_router())
    app.include_router(manager_api_router())
    app.include_router(api_till_router())
    install_openapi(app)
    app.include_router(fragments_router(), include_in_schema=False)
    app.include_router(pages_router(), include_in_schema=False)
    app.mount("/static", StaticFiles(directory=_STATIC), name="static")
    return app
