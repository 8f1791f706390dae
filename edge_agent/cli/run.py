"""`loyalpump edge run`: the station daemon in the foreground, stopped by SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from ..daemon import run_station
from ..settings import load_settings

__all__ = ["run_command"]


def run_command(
    config: Annotated[
        Path,
        typer.Option("--config", "-c", envvar="LOYALPUMP_CONFIG", help="Path to station.toml."),
    ],
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING")] = "INFO",
) -> None:
    """Run the station: dispenser drivers feeding the store (more services join later)."""
    settings = load_settings(config)
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run_station(settings, stop)

    asyncio.run(main())
