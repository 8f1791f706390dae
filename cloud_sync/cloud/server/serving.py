"""The HTTP part of the service, shared by the one-process service and each worker process:
bind the port, run uvicorn in a thread until told to stop, route signals to that stop.

uvicorn runs in a thread so it leaves signals alone: the calling (main) thread owns them and
turns SIGTERM/SIGINT into one graceful stop: stop accepting, let running requests finish
(a push is answered only after its transaction commits), then return.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable, Iterable
from types import FrameType

import uvicorn
from starlette.types import ASGIApp

from .settings import CloudConfigError, CloudSettings

__all__ = ["GRACE_S", "base_url", "http_server", "listen", "run_http", "stop_on_signals"]

GRACE_S = 5  # how long running requests may take to finish once a stop is asked


def listen(host: str, port: int) -> socket.socket:
    """Bind before serving so a taken port is a clear error, not a uvicorn exit."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise CloudConfigError(f"cloud.host: cannot listen on {host}:{port}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise CloudConfigError(f"cloud.port: cannot listen on {host}:{port}: {exc}") from exc
    return sock


def base_url(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def http_server(settings: CloudSettings, app: ASGIApp) -> uvicorn.Server:
    return uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,  # uvicorn's line carries query strings (phones); ours not
            lifespan="off",
            timeout_graceful_shutdown=GRACE_S,
            # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise: a
            # local caller could then pick the address the HQ login limiter counts.
            proxy_headers=bool(settings.cloud.trusted_proxies),
            forwarded_allow_ips=list(settings.cloud.trusted_proxies) or None,
        )
    )


def run_http(
    server: uvicorn.Server,
    sock: socket.socket,
    stop: threading.Event,
    started: Callable[[], None] | None = None,
) -> bool:
    """Serve on `sock` until `stop` (or uvicorn ends by itself); `started()` once it accepts.

    Returns whether the stop was asked for (False: the server ended on its own)."""
    web = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="cloud-http", daemon=True
    )
    try:
        web.start()
        while not server.started and web.is_alive() and not stop.wait(0.05):
            pass
        if server.started and started is not None:
            started()
        while web.is_alive() and not stop.wait(0.2):
            pass
    finally:
        server.should_exit = True
        web.join(GRACE_S + 10)
    return stop.is_set()


def stop_on_signals(
    stop: threading.Event, signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT)
) -> Callable[[], None]:
    """Route `signals` to `stop` (main thread only); returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in signals}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
