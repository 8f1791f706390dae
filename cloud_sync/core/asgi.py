"""What the cloud's and the cashier page's ASGI front doors do alike.

- `read_body`/`replay`: the cloud's `CloudGate` and the page's `GuardMiddleware` count a
  body as it arrives (`Content-Length` or chunked), refuse it as soon as it passes their
  limit, and hand the body read to the app as if it came from the client.
- `allowed_methods`: both apps' 405 answers name, in `Allow`, every method of the path.

Pure: the ASGI channel is a plain callable and a route is anything with `matches`, so no
web framework is imported here (the shared core's import-linter contract).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Protocol

__all__ = ["Message", "Receive", "Route", "Scope", "allowed_methods", "read_body", "replay"]

# The same shapes as starlette.types.Scope, .Message and .Receive.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]


async def read_body(receive: Receive, limit: int) -> tuple[bytes | None, bool]:
    """The whole body, or (None, …) as soon as it passes `limit`; False when the client left."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = bytes(message.get("body", b""))
        size += len(chunk)
        if size > limit:
            return None, True
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True


def replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, then the real channel (which reports a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


class Route(Protocol):
    """A route as Starlette's router holds it: it says how it matches a request."""

    def matches(self, scope: Scope) -> tuple[object, Scope]: ...


def allowed_methods(routes: Iterable[Route], scope: Scope, no_match: object) -> str:
    """Every method some route of the request's path takes (Starlette names only the first's).

    `no_match` is what a route's `matches` answers for another path (`Match.NONE`).
    """
    methods: set[str] = set()
    for route in routes:
        match, _ = route.matches(scope)
        if match is not no_match:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))
