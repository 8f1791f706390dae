"""What the cashier API's OpenAPI says about refusals: the real body and every status.

Every refusal of /api/v1 is `{"error": code, "message": text}` (422 `request.invalid` adds
`fields`), with the status the error catalogue (`edge_agent/error_codes.py`) declares for
the code. The front door (host, origin, body size) and the session middleware answer
before any route, so each route documents their statuses too.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel

from ..error_codes import CATALOGUE, ErrorCode

__all__ = ["ErrorBody", "error_responses"]


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
