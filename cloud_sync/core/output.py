"""Printing results: one JSON document with --json, short readable text otherwise."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import typer

__all__ = ["emit", "emit_table", "fail"]


def emit(data: Any, *, as_json: bool, text: str | None = None) -> None:
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    elif text is not None:
        typer.echo(text)
    elif isinstance(data, Mapping):
        width = max((len(str(key)) for key in data), default=0)
        for key, value in data.items():
            shown = (
                json.dumps(value, ensure_ascii=False, default=str)
                if isinstance(value, dict | list)
                else value
            )
            typer.echo(f"{str(key).ljust(width)}  {shown if shown is not None else '-'}")
    else:
        typer.echo(str(data))


def emit_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    cells = [[("-" if row.get(c) is None else str(row.get(c))) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def fail(message: str, status: int = 2) -> NoReturn:
    """One clear line on stderr and the exit status; never a traceback."""
    print(f"loyalpump: error: {message}", file=sys.stderr)
    raise SystemExit(status)
