"""The ASGI layer in front of every route: body size, bearer tokens, timing, access log.

It runs before FastAPI parses anything, so an unauthenticated caller learns nothing from
validation errors, an oversized body is refused before it is buffered, and every answer
(refusals included) is timed and counted. Tokens and query strings (phones, plates) are never
logged.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import Literal

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud_sync.core.asgi import read_body, replay

from .context import ADMIN_TOKEN_KEY, STATION_ID_KEY, ApiProblem, CloudContext, busy, is_overload

__all__ = ["CloudGate", "route_label"]

log = logging.getLogger("cloud_sync.cloud.server.access")

_Access = Literal["station", "admin", "hq", "open"]
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _access_of(path: str) -> _Access:
    if path.startswith("/api/v1/sync/"):
        return "station"
    if path.startswith("/api/v1/hq/") or path == "/hq" or path.startswith("/hq/"):
        return "hq"  # a session cookie or the admin token; the console's routes decide
    if path.startswith("/api/"):
        return "admin"
    return "open"


def route_label(scope: Scope) -> str:
    """The route template that answered, or a bounded family for requests no route took."""
    template = getattr(scope.get("route"), "path", None)
    if isinstance(template, str):
        return template
    path = str(scope.get("path", ""))
    for prefix in ("/api/v1/sync/", "/api/v1/", "/api/"):
        if path.startswith(prefix):
            return prefix + "*"
    return "unmatched"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _bearer(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


async def _answer(send: Send, problem: ApiProblem) -> None:
    body = json.dumps(problem.problem.model_dump(exclude_none=True)).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    if problem.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    headers += [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in problem.headers.items()
    ]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class CloudGate:
    """Pure ASGI middleware; see the module docstring."""

    def __init__(self, app: ASGIApp, context: CloudContext) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._handle(scope, receive, timed_send)
        finally:
            elapsed = time.perf_counter() - started
            method = str(scope.get("method", ""))
            self.context.metrics.request(method, route_label(scope), status, elapsed)
            station = scope.get("state", {}).get(STATION_ID_KEY, "-")
            log.info(
                "%s %s %d %.1fms station=%s",
                method,
                scope.get("path", ""),
                status,
                elapsed * 1000,
                station,
            )

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.context.max_body_bytes
        length = _header(scope, b"content-length")
        if length is not None and (not length.strip().isdigit() or int(length) > limit):
            await _answer(send, _too_large(limit))
            return
        access = _access_of(str(scope.get("path", "")))
        if access == "hq":
            token = _bearer(scope)
            if token is not None:  # a wrong token is refused, never taken for "no token"
                if not self._is_admin(token):
                    await _answer(send, ApiProblem(401, "unauthorized", "unknown token"))
                    return
                scope.setdefault("state", {})[ADMIN_TOKEN_KEY] = True
        elif access != "open":
            try:
                station_id = await run_in_threadpool(self._authorize, access, _bearer(scope))
            except ApiProblem as problem:
                await _answer(send, problem)
                return
            if station_id is not None:
                scope.setdefault("state", {})[STATION_ID_KEY] = station_id
        if scope.get("method") in _BODY_METHODS:
            body, complete = await read_body(receive, limit)
            if body is None:
                await _answer(send, _too_large(limit))
                return
            if not complete:
                return  # the client went away while sending
            receive = replay(body, receive)
        await self.app(scope, receive, send)

    def _is_admin(self, token: str) -> bool:
        admin = self.context.admin_token
        return bool(admin) and hmac.compare_digest(token.encode("utf-8"), admin.encode("utf-8"))

    def _authorize(self, access: _Access, token: str | None) -> str | None:
        """The station id for station routes, None for HQ routes; ApiProblem when refused."""
        if token is None:
            raise ApiProblem(401, "unauthorized", "send Authorization: Bearer <token>")
        is_admin = self._is_admin(token)
        if access == "station" and is_admin:
            raise ApiProblem(403, "forbidden", "the admin token cannot call station routes")
        if access == "admin" and is_admin:
            return None
        try:
            station_id = self.context.ledger.station_for_token(token)
        except Exception as exc:  # the database is busy or down: not the caller's fault
            if is_overload(exc):  # every connection in use: come back in a moment
                raise busy() from exc
            log.warning("token check failed: %s", type(exc).__name__)
            raise ApiProblem(503, "unavailable", "the ledger database is unreachable") from exc
        if station_id is None:
            raise ApiProblem(401, "unauthorized", "unknown or revoked token")
        if access == "admin":
            raise ApiProblem(403, "forbidden", "a station token cannot call HQ routes")
        return station_id


def _too_large(limit: int) -> ApiProblem:
    return ApiProblem(413, "too_large", f"request bodies are limited to {limit} bytes")
