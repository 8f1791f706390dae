"""The demo's log file: every log line, redacted like the daemon's journal, kept off the
console, which shows the demo's own view."""

from __future__ import annotations

import logging
from pathlib import Path

from ..logs import RedactFilter

__all__ = ["log_to", "quiet_uvicorn", "unlog"]


def log_to(path: Path) -> logging.Handler:
    """Every log line goes to the demo's log file (redacted like the daemon's journal
    lines); the console shows the demo's own view."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for chatty in ("httpx", "apscheduler"):  # a line per request or job: noise here
        logging.getLogger(chatty).setLevel(logging.WARNING)
    return handler


def unlog(handler: logging.Handler) -> None:
    logging.getLogger().removeHandler(handler)
    for name in ("uvicorn", "uvicorn.access"):
        logger = logging.getLogger(name)
        if handler in logger.handlers:
            logger.removeHandler(handler)
    handler.close()


def quiet_uvicorn(handler: logging.Handler) -> None:
    """uvicorn configures its own stderr handlers when a server is built: send them to the
    log file too, or a warning at shutdown would tear the console's live line."""
    for name in ("uvicorn", "uvicorn.access"):
        logging.getLogger(name).handlers = [handler]
