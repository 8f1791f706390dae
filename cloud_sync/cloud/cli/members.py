"""`loyalpump cloud member export|erase|import`: PIPL requests and the member import, on
the database directly (the same ledger functions as the console's API), audited."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from cloud_sync.core.output import emit, fail

from .commands import ConfigOption, DatabaseOption, JsonOption, _ledger, _now, _refusals, member_app

__all__ = ["member_erase", "member_export", "member_import"]

IdOption = Annotated[str, typer.Option("--id", help="Member id.")]
ByOption = Annotated[str, typer.Option("--by", help="Who at HQ asks (kept in the audit log).")]


@member_app.command("export")
def member_export(
    config: ConfigOption,
    member_id: IdOption,
    by: ByOption = "cli",
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the JSON here instead of stdout.")
    ] = None,
    database_url: DatabaseOption = None,
    as_json: JsonOption = True,
) -> None:
    """PIPL: everything the chain holds on a member, as one JSON document (audited)."""
    from cloud_sync.cloud.ledger.member_privacy import export_member  # noqa: PLC0415 - lazy

    with _refusals(), _ledger(config, database_url) as (_, ledger):
        now = _now()
        doc = ledger.db.transact(
            lambda c: export_member(c, ledger.chain_keys, member_id, actor=by, now=now)
        )
    text = orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str)
    if out is None:
        sys.stdout.write(text.decode("utf-8") + "\n")
    else:
        out.write_bytes(text + b"\n")


def _confirmed(member_id: str, masked: str) -> bool:
    try:
        return typer.confirm(f"Erase member {member_id} ({masked})? This cannot be undone")
    except typer.Abort:  # no terminal, or Ctrl-C: not a yes
        return False


@member_app.command("erase")
def member_erase(
    config: ConfigOption,
    member_id: IdOption,
    by: ByOption = "cli",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """PIPL: anonymise a member (phone, name, plates gone; points and sums kept; audited)."""
    from cloud_sync.cloud.ledger.member_privacy import erase_member  # noqa: PLC0415 - lazy

    with _refusals(), _ledger(config, database_url) as (_, ledger):
        view = ledger.member(member_id, _now())
        if view is None or view["member_id"] != member_id:
            fail(f"no member {member_id}")
            return
        if not yes and not _confirmed(member_id, str(view["phone_masked"])):
            fail("not erased (confirm, or pass --yes)")
            return
        now = _now()
        done = ledger.db.transact(
            lambda c: erase_member(ledger.db, c, member_id, actor=by, now=now)
        )
    emit(done, as_json=as_json)


@member_app.command("import")
def member_import(
    config: ConfigOption,
    file: Annotated[Path, typer.Argument(help="FILE.xlsx or FILE.csv", exists=False)],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every row; write nothing.")
    ] = False,
    by: ByOption = "cli",
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import members (phone, plates, name, opening_points): all rows or none."""
    from cloud_sync.cloud.ledger.member_import import apply_import  # noqa: PLC0415 - lazy
    from cloud_sync.cloud.ledger.member_sheet import SheetError, parse_sheet  # noqa: PLC0415

    try:
        data = file.read_bytes()
        sheet = parse_sheet(data, file.name)
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
        return
    except SheetError as exc:
        fail(str(exc))
        return
    with _refusals(), _ledger(config, database_url) as (_, ledger):
        result = apply_import(
            ledger.db,
            ledger.chain_keys,
            ledger.rules,
            sheet,
            actor=by,
            filename=file.name,
            now=_now(),
            dry_run=dry_run,
        )
    if result.problems:
        for line in result.problems:
            typer.echo(line, err=True)
        fail(f"{len(result.problems)} bad rows of {result.rows}: nothing imported")
        return
    emit(result.as_dict(), as_json=as_json)
