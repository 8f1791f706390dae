"""A request body read in full under a size limit, then replayed: both ASGI front doors.

The cloud's `CloudGate` and the cashier page's `GuardMiddleware` count a body as it arrives
(`Content-Length` or chunked), refuse it as soon as it passes their limit, and hand the body
read to the app as if it came from the client. Pure: the ASGI channel is a plain callable,
so no web framework is imported here (the shared core's import-linter contract).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["Message", "Receive", "read_body", "replay"]

# The same shapes as starlette.types.Message and starlette.types.Receive.
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
