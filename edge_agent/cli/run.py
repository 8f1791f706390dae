"""`loyalpump edge run`: the station daemon in the foreground, stopped by SIGTERM or Ctrl-C.

Under systemd stdout is the journal, so logs are JSON lines there by default (text on a
terminal), and every line goes through the redaction filter: no token, no full phone.
A clean stop exits 0; a crash logs its traceback and exits 1, so `Restart=on-failure`
brings the station back. A refusal only a person can lift (a bad config, a damaged store,
a data folder open to other users, the page's port taken) exits 2 with one line on stderr.
The process runs with umask 077: every file it creates is private to the agent's user.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Annotated, Literal

import typer

from cloud_sync.core.output import fail

__all__ = ["run_command"]

log = logging.getLogger("edge_agent.run")
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_FORMATS = ("auto", "json", "text")
_HARD_STOP_S = 9.5  # SIGTERM to exit, at most: the daemon's own grace budget is 8 s


def run_command(
    config: Annotated[
        Path,
        typer.Option("--config", "-c", envvar="LOYALPUMP_CONFIG", help="Path to station.toml."),
    ],
    log_level: Annotated[
        str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")
    ] = "INFO",
    log_format: Annotated[
        str,
        typer.Option("--log-format", help="json, text, or auto (JSON unless on a terminal)."),
    ] = "auto",
) -> None:
    """Run the station: drivers, store, cashier page, sync and nightly jobs in one process."""
    # lazy: the daemon loads the web app (FastAPI, uvicorn); no other command needs them
    import asyncio  # noqa: PLC0415

    from ..daemon import run_station  # noqa: PLC0415
    from ..errors import ServiceError  # noqa: PLC0415
    from ..logs import configure_logging  # noqa: PLC0415
    from ..settings import ConfigError, load_settings  # noqa: PLC0415
    from ..store import StoreError  # noqa: PLC0415
    from ..store.lock import AgentLockHeld  # noqa: PLC0415

    os.umask(0o077)  # whatever it creates (store, WAL, backups, quarantine) is the agent's only
    level = log_level.upper()
    if level not in _LEVELS:
        fail(f"--log-level: {log_level!r} is not one of {', '.join(_LEVELS)}")
    fmt = log_format.lower()
    if fmt not in _FORMATS:
        fail(f"--log-format: {log_format!r} is not one of {', '.join(_FORMATS)}")
    settings = load_settings(config)
    configure_logging(level, _format(fmt))
    if level != "DEBUG":  # the daemon logs each job's outcome itself, with its next times
        logging.getLogger("apscheduler").setLevel(logging.WARNING)

    finished = threading.Event()
    last_resort = threading.Timer(_HARD_STOP_S, _hard_stop, args=(finished,))
    last_resort.daemon = True

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def asked_to_stop() -> None:
            stop.set()
            if not last_resort.is_alive():
                last_resort.start()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, asked_to_stop)
        await run_station(settings, stop)
        finished.set()

    try:
        asyncio.run(main())
    except AgentLockHeld as exc:
        # Temporary (an `edge sync` or `edge restore` holds the store): systemd retries.
        log.error("cannot start yet: %s", exc)
        raise SystemExit(EXIT_TEMPORARY) from None
    except (ServiceError, ConfigError, StoreError) as exc:
        # Permanent until a person acts (bad config, damaged store): exit 2, which the unit's
        # RestartPreventExitStatus keeps from restarting every few seconds.
        log.error("refusing to start: %s", exc)
        raise
    except Exception:
        log.critical("the station daemon crashed", exc_info=True)
        raise SystemExit(1) from None


EXIT_TEMPORARY = 75  # EX_TEMPFAIL: try again later


def _hard_stop(finished: threading.Event) -> None:
    """The last resort if a clean stop overruns its budget: leave before systemd's SIGKILL.

    Nothing is lost by leaving now: a sale is acknowledged only after its commit, and
    SQLite's journal rolls back a transaction that did not finish. Exit 0 if the store was
    already closed (only the interpreter's teardown hung), else 1.
    """
    log.error("the stop took over %.1f s: exiting now", _HARD_STOP_S)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(0 if finished.is_set() else 1)


def _format(name: str) -> Literal["json", "text", "auto"]:
    if name == "json":
        return "json"
    return "text" if name == "text" else "auto"
