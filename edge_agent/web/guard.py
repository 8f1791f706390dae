"""The cashier page's front door: known host names, same-origin changes, bounded bodies.

`GuardMiddleware` is plain ASGI and runs before any route, form parser or session look-up:

- **Host.** The `Host` header must name the page: the configured `[web] host`, `localhost`,
  `127.0.0.1`, `[::1]` or one of `[web] allowed_hosts`, with any port. Anything else is
  answered 400: a DNS-rebinding page (an attacker's name pointed at 127.0.0.1) gets
  nothing.
- **Same origin.** A state-changing request (POST, PUT, PATCH, DELETE) whose `Origin`,
  or when there is none its `Referer`, is another origin (scheme, host and port) than
  the page's own, or `null`, or whose `Sec-Fetch-Site` says cross-site, is answered 403.
  This covers the login form too, so a page from another site (or another port of this
  PC) can neither log a cashier in nor count failed logins against a cashier's name.
  A request with neither header (curl, a script on the station PC) is let through; it
  still needs a session and its CSRF token for anything but logging in.
- **Body size.** A body is counted as it arrives, `Content-Length` or chunked, and
  answered 413 as soon as it passes the limit (64 KiB), before anything parses it; at most
  the limit is ever held in memory. The body read is then replayed to the app.

The refusals are built by the app (`refuse`), so they are shaped like every other refusal:
JSON for the API, a page or fragment for the browser.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from cloud_sync.core.asgi import read_body, replay

__all__ = [
    "LOOPBACK_NAMES",
    "MAX_BODY",
    "GuardMiddleware",
    "allowed_host_names",
    "host_name",
    "same_origin",
]

MAX_BODY = 64 * 1024
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}

Refuse = Callable[[Request, int, str], Response]


def allowed_host_names(host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The names `Host` may carry: the listening host, the loopback names and `extra`."""
    names = {*LOOPBACK_NAMES, *extra}
    if host not in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard is not a name
        names.add(f"[{host}]" if ":" in host and not host.startswith("[") else host)
    return frozenset(name.lower() for name in names)


def _split_host(value: str) -> tuple[str, int | None] | None:
    """`name[:port]` (IPv6 in brackets) as (lowercase name, port); None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[: end + 1], value[end + 1 :]
    else:
        name, sep, port = value.partition(":")
        rest = sep + port
    if not name:
        return None
    if not rest:
        return name, None
    if not rest.startswith(":") or not rest[1:].isdigit() or len(rest) > 6:
        return None
    return name, int(rest[1:])


def host_name(value: str) -> str | None:
    """The name part of a `Host` header, lowercase; None if it is malformed."""
    split = _split_host(value)
    return None if split is None else split[0]


def _origin(scheme: str, name: str, port: int | None) -> tuple[str, str, int | None]:
    return scheme, name, port if port is not None else _DEFAULT_PORTS.get(scheme)


def _source_origin(source: str) -> tuple[str, str, int | None] | None:
    """The origin an `Origin` or `Referer` header names; None for `null` or garbage."""
    try:
        parts = urlsplit(source.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None  # `null` included
    hostname = parts.hostname.lower()
    if ":" in hostname:
        hostname = f"[{hostname}]"
    return _origin(parts.scheme.lower(), hostname, port)


def same_origin(scope: Scope, headers: Headers) -> bool:
    """False when the request says it comes from another origin than the page's own."""
    if headers.get("sec-fetch-site", "").lower() in ("cross-site", "same-site"):
        return False
    source = headers.get("origin", headers.get("referer"))
    if source is None:
        return True  # no browser told us where it came from: not a browser's forgery
    own = _split_host(headers.get("host", ""))
    theirs = _source_origin(source)
    if own is None or theirs is None:
        return False
    return theirs == _origin(str(scope.get("scheme", "http")).lower(), *own)


class GuardMiddleware:
    """Host names, same-origin changes and body sizes, checked before any route runs."""

    def __init__(
        self, app: ASGIApp, *, allowed_hosts: frozenset[str], refuse: Refuse, max_body: int
    ) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts
        self.refuse = refuse
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host")
        if host is not None and host_name(host) not in self.allowed_hosts:
            await self._refuse(scope, receive, send, 400, "request.bad_host")
            return
        if scope["method"] not in _SAFE_METHODS and not same_origin(scope, headers):
            await self._refuse(scope, receive, send, 403, "request.cross_site")
            return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._refuse(scope, receive, send, 413, "request.too_large")
            return
        body, complete = await read_body(receive, self.max_body)
        if body is None:
            await self._refuse(scope, receive, send, 413, "request.too_large")
            return
        if not complete:
            return  # the client went away while sending
        await self.app(scope, replay(body, receive), send)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, status: int, code: str
    ) -> None:
        response = self.refuse(Request(scope, receive), status, code)
        response.headers["Connection"] = "close"  # the rest of a refused body is not read
        await response(scope, receive, send)
