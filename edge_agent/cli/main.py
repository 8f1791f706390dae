"""Entry point: runs the command tree and turns bad input into exit 2 and one line.

Every command module imports its services inside the command, so `loyalpump --help` (and
any one command) loads only what it runs: no web app, daemon, SQLAlchemy or uvicorn for a
look-up. tests/edge_agent/test_cli_imports.py keeps it so.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Sequence

import typer
from typer.exceptions import TyperException
from typer.models import TyperInfo

from cloud_sync.cloud.cli import cloud_app
from cloud_sync.core.output import fail

from .demo import demo_command
from .edge import edge_app
from .run import run_command
from .sim import sim_app

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
app.add_typer(sim_app, name="sim")
app.add_typer(cloud_app, name="cloud")
app.command("demo")(demo_command)
edge_app.command("run")(run_command)


def _refusal_types() -> tuple[type[Exception], ...]:
    """The errors a user can fix; imported only when something was raised (they are heavy)."""
    from ..errors import ServiceError  # noqa: PLC0415 - lazy, see the module docstring
    from ..settings import ConfigError  # noqa: PLC0415
    from ..store import StoreError  # noqa: PLC0415

    return ServiceError, ConfigError, StoreError


def command_for(args: Sequence[str]) -> typer.core.TyperGroup:
    """The command tree for `args`, with only the group they name built in full.

    typer builds each command's parameters from its signature at start, which costs about
    as much as importing the command modules; the other groups keep their name and help
    (all that `loyalpump --help`, or a name that is no command, shows) without commands.
    """
    wanted = args[0] if args else None
    top = copy.copy(app)
    top.registered_groups = [
        info if info.name == wanted else _shell(info) for info in app.registered_groups
    ]
    command = typer.main.get_command(top)
    assert isinstance(command, typer.core.TyperGroup)
    return command


def _shell(info: TyperInfo) -> TyperInfo:
    """A group's name and help without its commands."""
    instance = copy.copy(info.typer_instance)
    assert instance is not None
    instance.registered_commands = []
    instance.registered_groups = []
    shell = copy.copy(info)
    shell.typer_instance = instance
    return shell


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    command = command_for(args)
    try:
        result = command.main(args=args, prog_name="loyalpump", standalone_mode=False)
    except TyperException as exc:
        # typer vendors click: usage errors arrive as TyperException subclasses
        context = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and context is not None:
            typer.echo(context.get_help(), err=True)
            raise SystemExit(2) from None
        format_message = getattr(exc, "format_message", None)
        message = format_message() if callable(format_message) else str(exc)
        fail(str(message).replace("\n", " "))
    except typer.Abort:
        fail("aborted", 130)
    except Exception as exc:
        if isinstance(exc, _refusal_types()):
            fail(str(exc))
        raise
    raise SystemExit(result if isinstance(result, int) else 0)
