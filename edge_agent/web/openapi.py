"""What the cashier API's OpenAPI says about refusals: the real body and every status.

Every refusal of /api/v1 is `{"error": code, "message": text}` (422 `request.invalid` adds
`fields`), with the status the error catalogue (`edge_agent/error_codes.py`) declares for
the code. The front door (host, origin, body size) and the session middleware answer
before any route, so each route documents their statuses too.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import Depends, FastAPI
from fastapi.security import APIKeyCookie, APIKeyHeader
from pydantic import BaseModel

from ..error_codes import CATALOGUE, MANUAL_SALE_CODES, ErrorCode
from .auth import COOKIE_NAME

__all__ = [
    "IDENTITY_CODES",
    "MANUAL_SALE_CODES",
    "READER",
    "REDEEM_CODES",
    "WRITER",
    "ErrorBody",
    "error_responses",
    "install_openapi",
]

_SESSION_COOKIE = APIKeyCookie(
    name=COOKIE_NAME,
    scheme_name="SessionCookie",
    description="The session cookie POST /api/v1/login sets.",
    auto_error=False,
)
_CSRF_HEADER = APIKeyHeader(
    name="X-CSRF-Token",
    scheme_name="CsrfToken",
    description="The session's csrf_token (from the login answer), on every change.",
    auto_error=False,
)
READER: Final = (Depends(_SESSION_COOKIE),)
WRITER: Final = (Depends(_SESSION_COOKIE), Depends(_CSRF_HEADER))

IDENTITY_CODES: Final = tuple(
    code for code in CATALOGUE if code.startswith(("phone.", "plate.", "identifier."))
)
REDEEM_CODES: Final = (
    "rules.none",
    "points.insufficient",
    "redeem.conflict",
    *(code for code in CATALOGUE if code.startswith("redeem.")),
)


class ErrorBody(BaseModel):
    """A refusal: the stable code, and its text in the request's language."""

    error: str
    message: str
    fields: list[dict[str, Any]] | None = None  # request.invalid: where and what kind


_FRONT_DOOR: Final = ("request.bad_host", "request.invalid")
_SESSION: Final = ("auth.required",)
_WRITE: Final = ("request.cross_site", "csrf.invalid", "request.too_large")


def error_responses(
    *codes: str, session: bool = True, write: bool = False
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a route: the front door's refusals, the session's (401) when
    it needs one, a write's (cross-site, CSRF, body size) and `codes`, grouped by status."""
    chosen = [*_FRONT_DOOR, *(_SESSION if session else ()), *(_WRITE if write else ()), *codes]
    by_status: dict[int, list[ErrorCode]] = {}
    for code in dict.fromkeys(chosen):
        entry = CATALOGUE[code]  # KeyError: an undeclared code in a route's documentation
        by_status.setdefault(entry.status, []).append(entry)
    return {
        status: {
            "model": ErrorBody,
            "description": "Refused: " + ", ".join(f"`{e.code}`" for e in by_status[status]),
        }
        for status in sorted(by_status)
    }


def install_openapi(app: FastAPI) -> None:
    """FastAPI lists a route's two credentials as alternatives (`[{cookie}, {csrf}]`); a
    change needs both at once, so the document says `[{cookie, csrf}]`."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            for item in document.get("paths", {}).values():
                for operation in item.values():
                    security = operation.get("security")
                    if security and len(security) > 1:
                        operation["security"] = [{k: v for r in security for k, v in r.items()}]
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
