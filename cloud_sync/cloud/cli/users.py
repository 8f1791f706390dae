"""`loyalpump cloud user …`: HQ console logins, on the database directly.

The first admin is made here (the console needs one to sign in). The password comes from a
file (its first line) or is asked twice on a terminal; it is never an option, so it never
lands in a shell history or a process list. Changes are audited as actor "cli".
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cloud_sync.core.output import emit, emit_table, fail

from .commands import ConfigOption, DatabaseOption, JsonOption, _ledger, _now, _refusals

__all__ = ["user_app"]

user_app = typer.Typer(help="HQ console logins (admin, marketer, auditor).", no_args_is_help=True)

NameOption = Annotated[
    str, typer.Option("--name", help="The login name (1-32 letters, digits, . _ -).")
]
_ACTOR = "cli"


def _password(password_file: Path | None) -> str:
    if password_file is not None:
        try:
            text = password_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"--password-file: cannot read {password_file}: {exc}")
        lines = text.splitlines()
        return lines[0] if lines else ""
    if not sys.stdin.isatty():
        fail("no terminal to ask the password on: give --password-file")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@user_app.command("add")
def user_add(
    config: ConfigOption,
    name: NameOption,
    role: Annotated[str, typer.Option("--role", help="admin, marketer or auditor.")],
    password_file: Annotated[
        Path | None,
        typer.Option("--password-file", help="A file whose first line is the password."),
    ] = None,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add an HQ console login (argon2id); asks for the password when no file is given."""
    from cloud_sync.cloud.ledger.hq_users import (  # noqa: PLC0415 - lazy, like every verb
        add_hq_user,
        hash_password,
        validate_name,
        validate_role,
    )

    with _refusals():
        validate_name(name)
        validate_role(role)
        password_hash = hash_password(_password(password_file))
        with _ledger(config, database_url) as (_, ledger):
            user = ledger.db.transact(
                lambda conn: add_hq_user(
                    conn, name=name, role=role, password_hash=password_hash, by=_ACTOR, at=_now()
                )
            )
    emit(user, as_json=as_json, text=f"HQ user {name} added ({role})")


@user_app.command("list")
def user_list(
    config: ConfigOption, database_url: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """HQ console logins, their role, whether disabled, their live sessions."""
    from cloud_sync.cloud.ledger.hq_users import list_hq_users  # noqa: PLC0415

    with _refusals(), _ledger(config, database_url) as (_, ledger):
        rows = ledger.db.read(list_hq_users)
    if as_json:
        emit(rows, as_json=True)
    elif not rows:
        typer.echo("no HQ user yet: add one with `loyalpump cloud user add`")
    else:
        emit_table(rows, ["name", "role", "disabled", "sessions", "created_at", "created_by"])


def _switch(config: Path, name: str, database_url: str | None, *, disabled: bool) -> None:
    from cloud_sync.cloud.ledger.hq_users import update_hq_user  # noqa: PLC0415

    with _refusals(), _ledger(config, database_url) as (_, ledger):
        ledger.db.transact(
            lambda conn: update_hq_user(conn, name, by=_ACTOR, at=_now(), disabled=disabled)
        )
    typer.echo(f"HQ user {name} {'disabled; their sessions ended' if disabled else 'enabled'}")


@user_app.command("disable")
def user_disable(
    config: ConfigOption, name: NameOption, database_url: DatabaseOption = None
) -> None:
    """Switch a login off at once (its sessions end); the audit keeps its history."""
    _switch(config, name, database_url, disabled=True)


@user_app.command("enable")
def user_enable(
    config: ConfigOption, name: NameOption, database_url: DatabaseOption = None
) -> None:
    """Switch a disabled login back on."""
    _switch(config, name, database_url, disabled=False)
