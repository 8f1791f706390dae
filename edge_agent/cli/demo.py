"""`loyalpump demo`: the README's first command (see edge_agent/demo)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from cloud_sync.core.output import fail

__all__ = ["demo_command"]


def demo_command(
    seconds: Annotated[
        float | None,
        typer.Option("--seconds", min=1.0, help="Stop after N seconds (default: Ctrl-C)."),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Keep everything here (a new or empty directory)."),
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the temporary data directory at exit.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Random seed for the traffic.")] = 1,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print only the summary, as one JSON document.")
    ] = False,
) -> None:
    """Run a whole chain on embedded defaults: cloud, station, simulated pumps and traffic.

    Exit 0 when everything stopped cleanly, the station's backlog reached the cloud and
    neither ledger shows a problem.
    """
    if data_dir is not None and data_dir.exists() and not _empty_dir(data_dir):
        fail(f"--data-dir {data_dir}: must be a new or empty directory")
    # lazy: the demo pulls in the cloud server, which other commands never need
    from rich.console import Console  # noqa: PLC0415

    from ..demo import DemoError, DemoOptions, run_demo  # noqa: PLC0415
    from ..demo.console import QuietView, RichView, print_summary  # noqa: PLC0415

    console = Console(highlight=False)
    view = QuietView() if as_json else RichView(console)
    options = DemoOptions(seconds=seconds, data_dir=data_dir, keep=keep, seed=seed)
    try:
        summary = run_demo(options, view)
    except DemoError as exc:
        view.close()
        fail(str(exc), 1)
        return
    except KeyboardInterrupt:
        view.close()
        print("loyalpump: demo interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        print_summary(console, summary)
    raise SystemExit(0 if summary["ok"] else 1)


def _empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())
