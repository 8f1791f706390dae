"""Turning pydantic's validation errors into the one line a client can act on."""

from __future__ import annotations

from typing import Any

__all__ = ["validation_detail"]


def validation_detail(errors: list[Any]) -> str:
    """The first validation error as `path: message`, the way a person would fix it."""
    if not errors:
        return "the request is not valid"
    first = errors[0]
    location = [str(part) for part in first.get("loc", ())]
    if location and location[0] == "body":
        location = location[1:]  # the body is what a client sends; name its fields only
    path = ".".join(location) or "body"
    more = len(errors) - 1
    suffix = f" (and {more} more)" if more else ""
    return f"{path}: {first.get('msg', 'invalid')}{suffix}"
