"""The cashier page's server: its socket bound (and its TLS files loaded) before anything
starts, uvicorn configured from `[web]`, `READY=1` once it listens."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl

import uvicorn

from ..errors import ServiceError
from ..notify import Notifier
from ..services.station import Station
from ..settings import StationSettings
from ..web.app import build_app
from .runtime import StationRuntime, health_probe

__all__ = ["announce_ready", "build_web_server", "check_tls_files", "listen"]

log = logging.getLogger(__name__)


def listen(host: str, port: int) -> socket.socket:
    """Bind the page's socket before anything starts: a taken port is one clear refusal."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ServiceError("web.host", f"web: cannot listen on {host}:{port}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(128)
        sock.set_inheritable(True)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise ServiceError(
            "web.port", f"web.port: cannot listen on {host}:{port}: {reason}"
        ) from exc
    return sock


def check_tls_files(settings: StationSettings) -> None:
    """Load `[web] tls_cert`/`tls_key` once now, so a bad file is a refusal, not a crash."""
    web = settings.web
    if web.tls_cert is None or web.tls_key is None:
        return
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            web.tls_cert, web.tls_key
        )
    except (OSError, ssl.SSLError) as exc:
        raise ServiceError(
            "web.tls", f"web.tls_cert/tls_key: cannot load {web.tls_cert}, {web.tls_key}: {exc}"
        ) from exc


async def announce_ready(
    web: uvicorn.Server, web_task: asyncio.Task[None], notifier: Notifier, settings: StationSettings
) -> None:
    """`READY=1` once uvicorn has bound its socket (the store is already open)."""
    while not web.started:
        if web_task.done():
            return
        await asyncio.sleep(0.02)
    scheme = "https" if settings.web.tls else "http"
    notifier.ready(f"listening on {scheme}://{settings.web.host}:{settings.web.port}")
    log.info(
        "station %s ready: cashier page on %s://%s:%d",
        settings.station.id,
        scheme,
        settings.web.host,
        settings.web.port,
    )


def build_web_server(station: Station, runtime: StationRuntime) -> uvicorn.Server:
    """The page's uvicorn server, configured from `[web]`; it serves on the bound listener."""
    web_settings = station.settings.web
    return uvicorn.Server(
        uvicorn.Config(
            build_app(
                station,
                live=runtime.live,
                probe=health_probe(runtime),
                secure_cookies=web_settings.tls,
            ),
            host=web_settings.host,
            port=web_settings.port,
            log_level="warning",
            log_config=None,  # uvicorn's records go through our (JSON, redacting) handler
            lifespan="off",
            timeout_graceful_shutdown=2,
            # X-Forwarded-For/-Proto only from configured proxies: uvicorn's default trusts
            # them from 127.0.0.1, so any local page could pick the address the login
            # limiter counts.
            proxy_headers=bool(web_settings.trusted_proxies),
            forwarded_allow_ips=list(web_settings.trusted_proxies) or None,
            server_header=False,
            ssl_certfile=web_settings.tls_cert,
            ssl_keyfile=web_settings.tls_key,
        )
    )
