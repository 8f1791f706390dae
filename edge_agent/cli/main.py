"""Entry point: runs the command tree and turns bad input into exit 2 and one line."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click
import typer

from ..errors import ServiceError
from ..settings import ConfigError
from ..store import StoreError
from .edge import edge_app
from .output import fail

__all__ = ["app", "main"]

app = typer.Typer(
    name="loyalpump",
    help="Offline-first loyalty for fuel-station chains.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(edge_app, name="edge")


def main(argv: Sequence[str] | None = None) -> None:
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = command.main(args=args, prog_name="loyalpump", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else "", err=True)
        raise SystemExit(2) from None
    except click.ClickException as exc:
        fail(exc.format_message().replace("\n", " "))
    except click.exceptions.Abort:
        fail("aborted", 130)
    except (ServiceError, ConfigError, StoreError) as exc:
        fail(str(exc))
    raise SystemExit(result if isinstance(result, int) else 0)
