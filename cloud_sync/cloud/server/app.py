"""The cloud ledger's FastAPI app: the gate, the station and HQ routes, probes, error bodies.

`build_cloud_app` creates everything when called, never at import. Every 4xx answers a
`cloud_sync.core.wire.Problem` so a station can tell a gap from a conflict from a bad request by
its `error` code alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from cloud_sync.cloud.console import console_routers, mount_console_static
from cloud_sync.cloud.console.login import install_signin
from cloud_sync.cloud.ledger import CloudLedger, LedgerError
from cloud_sync.cloud.member_app import install_member_app
from cloud_sync.core.asgi import allowed_methods
from cloud_sync.core.identity import IdentityError
from cloud_sync.core.privacy import MemberKeys
from cloud_sync.core.signing import key_id_of, public_key_b64
from cloud_sync.core.wire import Problem

from .admin_routes import admin_router
from .context import ApiProblem, CloudContext, busy, cloud_context, is_overload
from .errors import status_of
from .gate import CloudGate
from .keyfiles import load_chain_keys
from .metrics import CloudMetrics
from .read_ledger import ReplicaHeaders
from .replica import ReadReplica
from .review_routes import review_router
from .settings import CloudSettings
from .sync_routes import sync_router
from .validation import validation_detail

__all__ = ["MAX_BODY_BYTES", "build_cloud_app", "validation_detail"]

MAX_BODY_BYTES = 8 * 1024 * 1024
log = logging.getLogger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def _problem(
    status: int,
    problem: Problem,
    headers: dict[str, str] | None = None,
    extra: dict[str, int | str | bool] | None = None,
) -> Response:
    body = {**(extra or {}), **problem.model_dump(exclude_none=True)}
    return JSONResponse(body, status_code=status, headers=headers)


def _install_handlers(app: FastAPI) -> None:
    async def api_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiProblem)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        return _problem(exc.status, exc.problem, {**headers, **exc.headers} or None, exc.extra)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        detail = validation_detail(list(exc.errors()))
        return _problem(422, Problem(error="invalid", detail=detail))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400:  # a body FastAPI cannot parse: invalid, like any bad body
            return _problem(422, Problem(error="invalid", detail=f"body: {exc.detail}"))
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        headers = dict(exc.headers) if exc.headers else None
        if exc.status_code == 405:
            headers = {
                **(headers or {}),
                "Allow": allowed_methods(request.app.router.routes, request.scope, Match.NONE),
            }
        return _problem(exc.status_code, Problem(error=code, detail=str(exc.detail)), headers)

    async def coded_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LedgerError | IdentityError)
        return _problem(status_of(exc.code), Problem(error=exc.code, detail=str(exc)))

    quiet_until = [0.0]  # one warning per 10 s: a storm answers thousands of these

    async def no_connection(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PoolTimeout | OperationalError)
        if not is_overload(exc):
            log.error("database error on %s: %s", request.url.path, type(exc).__name__)
            detail = "the ledger database is unreachable"
            return _problem(503, Problem(error="unavailable", detail=detail))
        if time.monotonic() >= quiet_until[0]:
            quiet_until[0] = time.monotonic() + 10.0
            log.warning("no database connection free (%s): answering busy", request.url.path)
        return await api_problem(request, busy())

    app.add_exception_handler(ApiProblem, api_problem)
    app.add_exception_handler(PoolTimeout, no_connection)
    app.add_exception_handler(OperationalError, no_connection)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(LedgerError, coded_error)
    app.add_exception_handler(IdentityError, coded_error)


_HEALTH_DOWN = {
    "type": "object",
    "required": ["status", "dialect", "reason"],
    "properties": {
        "status": {"const": "error"},
        "dialect": {"type": "string"},
        "reason": {"type": "string"},
    },
}


def _install_probes(app: FastAPI) -> None:
    @app.get(
        "/healthz",
        tags=["probes"],
        responses={
            503: {
                "description": "The ledger database does not answer",
                "content": {"application/json": {"schema": _HEALTH_DOWN}},
            }
        },
    )
    def healthz(request: Request) -> JSONResponse:
        """200 while the ledger database answers, 503 otherwise."""
        ledger = cloud_context(request).ledger
        try:
            ledger.offline_redemption()  # one small read proves the database answers
        except Exception as exc:  # any failure means "not healthy", with its kind
            body = {"status": "error", "dialect": ledger.dialect, "reason": type(exc).__name__}
            return JSONResponse(body, status_code=503)
        return JSONResponse({"status": "ok", "dialect": ledger.dialect})

    @app.get("/metrics", tags=["probes"], response_class=PlainTextResponse)
    def metrics(request: Request) -> PlainTextResponse:
        """Prometheus text: pushes, events, conflicts, pages, latency, ledger totals."""
        context = cloud_context(request)
        totals = context.cached_totals()
        return PlainTextResponse(
            context.metrics.render(totals), media_type="text/plain; version=0.0.4"
        )


def _utc_now() -> datetime:
    return datetime.now(UTC)


def build_cloud_app(
    settings: CloudSettings,
    *,
    ledger: CloudLedger,
    signing_key: Ed25519PrivateKey,
    clock: Callable[[], datetime] | None = None,
    chain_keys: MemberKeys | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    replica: ReadReplica | None = None,
) -> FastAPI:
    """The cloud's HTTP face over an open ledger.

    `chain_keys` are the keys the ledger was opened with (read from the data directory when
    not given); `clock` answers aware datetimes (UTC by default). `replica` (from
    `database_url_read`) serves the routes that take `ReadLedger`; the caller opens and
    closes it.
    """
    public_key = public_key_b64(signing_key)
    context = CloudContext(
        ledger=ledger,
        chain_keys=chain_keys if chain_keys is not None else load_chain_keys(settings.data_dir),
        signing_key=signing_key,
        signing_public_key=public_key,
        signing_key_id=key_id_of(public_key),
        admin_token=settings.admin_token(),
        clock=clock or _utc_now,
        metrics=CloudMetrics(),
        max_body_bytes=max_body_bytes,
        replica=replica,
    )
    app = FastAPI(
        title="loyalpump cloud ledger",
        description="The chain's ledger: station sync (station tokens) and HQ (admin token).",
        version="1",
    )
    app.state.cloud = context
    _install_handlers(app)
    _install_probes(app)
    app.include_router(sync_router())
    app.include_router(admin_router())
    app.include_router(review_router())
    for router in console_routers():
        app.include_router(router)
    mount_console_static(app)
    install_signin(app, settings.hq)
    install_member_app(app, settings)
    if replica is not None:
        app.add_middleware(ReplicaHeaders)
    app.add_middleware(CloudGate, context=context)
    return app
