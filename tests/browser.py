"""One way to drive a real browser in the tests: Debian's headless chromium (never a
downloaded one), launched with the same flags everywhere, and an app served on loopback.

Modules outside `tests/web/` take the fixture with
`from tests.browser import browser  # noqa: F401 - the shared chromium fixture`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import pytest
import uvicorn
from playwright.sync_api import Browser, sync_playwright

from tests.support import free_port

__all__ = ["CHROMIUM", "browser", "serve_in_thread"]

CHROMIUM = "/usr/bin/chromium"
# Headless in a container, and quiet: no update checks, sync or first-run screens.
_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless chromium (the browser tests), one per test module."""
    assert Path(CHROMIUM).exists(), "install Debian's chromium (.ci/run does)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=list(_FLAGS)
        )
        yield launched
        launched.close()


@contextmanager
def serve_in_thread(
    app: Any, *, lifespan: Literal["auto", "on", "off"] = "off", start_s: float = 10
) -> Iterator[str]:
    """`app` on a real uvicorn server on a free loopback port, in a thread; yields its URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_s
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
