"""`loyalpump cloud rules draft|drafts|backtest|approve`: HQ's rule-set drafts from a shell.

The same ledger functions as the console's /api/v1/hq/rules API, on the database directly.
Publishing a draft is `rules publish --draft DRAFT_ID --by NAME` (commands.py).
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from cloud_sync.core.output import emit, emit_table, fail

from .commands import ConfigOption, DatabaseOption, JsonOption, _ledger, _now, _refusals, rules_app

__all__ = ["window_of"]

ByOption = Annotated[str, typer.Option("--by", help="Who at HQ does this (kept in the audit).")]
_MAX_DAYS = 366


@rules_app.command("draft")
def rules_draft(
    config: ConfigOption,
    file: Annotated[Path, typer.Argument(help="Rule-set JSON document.")],
    by: Annotated[str, typer.Option("--by", help="Who drafts it.")] = "cli",
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Store a draft rule set (validated, every fault with its JSON path); prints its id."""
    from cloud_sync.cloud.ledger.drafts import save_draft  # noqa: PLC0415 - lazy

    try:
        document = file.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{file}: {exc}")
        raise  # unreachable: fail() exits
    with _refusals(), _ledger(config, database_url) as (_, ledger):
        row = ledger.db.transact(lambda c: save_draft(c, document=document, by=by, now=_now()))
    emit(
        {k: row[k] for k in ("draft_id", "name", "document_hash", "status")},
        as_json=as_json,
        text=str(row["draft_id"]),
    )


@rules_app.command("drafts")
def rules_drafts(
    config: ConfigOption, database_url: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """Published versions and drafts, with who drafted, approved and published each."""
    from cloud_sync.cloud.ledger.drafts import list_versions  # noqa: PLC0415 - lazy

    with _refusals(), _ledger(config, database_url) as (_, ledger):
        versions = ledger.db.read(list_versions)
    if as_json:
        emit(versions, as_json=True)
        return
    typer.echo("published:")
    emit_table(
        versions["published"],
        ["version", "name", "effective_from", "drafted_by", "approved_by", "published_by"],
    )
    typer.echo("drafts:")
    rows = [{**d, "backtest": _backtest_word(d["backtest"])} for d in versions["drafts"]]
    emit_table(rows, ["draft_id", "name", "status", "drafted_by", "approved_by", "backtest"])


def _backtest_word(test: dict[str, Any] | None) -> str:
    if test is None:
        return "none"
    return str(test["status"]) + ("" if test["current"] else " (older than the last edit)")


def _parse(value: str, zone: Any, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--{name} {value!r} is not an ISO 8601 date or time")
        raise  # unreachable
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def window_of(
    days: int | None, start: str | None, end: str | None, zone: Any, now: datetime
) -> tuple[datetime, datetime]:
    """--days N (ending now) or --from/--to (a bare date or time is in the rules' zone)."""
    if days is not None and (start or end):
        fail("give --days or --from/--to, not both")
    if start or end:
        if not (start and end):
            fail("--from and --to go together")
        assert start is not None
        assert end is not None
        return _parse(start, zone, "from"), _parse(end, zone, "to")
    span = 30 if days is None else days
    if not 1 <= span <= _MAX_DAYS:
        fail(f"--days is 1 to {_MAX_DAYS}")
    return now - timedelta(days=span), now


@rules_app.command("backtest")
def rules_backtest(
    config: ConfigOption,
    draft_id: Annotated[str, typer.Argument(help="The draft's id (rules drafts lists them).")],
    days: Annotated[
        int | None, typer.Option("--days", help="The last N days (default 30).")
    ] = None,
    start: Annotated[str | None, typer.Option("--from", help="Window start, ISO 8601.")] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Window end (excluded), ISO 8601.")
    ] = None,
    station: Annotated[str | None, typer.Option("--station", help="One station's sales.")] = None,
    by: Annotated[str, typer.Option("--by", help="Who runs it.")] = "cli",
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replay the window's sales under the rules of their time and under the draft."""
    from cloud_sync.cloud.ledger.backtest import run_backtest, start_backtest  # noqa: PLC0415
    from cloud_sync.cloud.ledger.drafts import draft_row  # noqa: PLC0415
    from cloud_sync.core.ruleset.parser import parse_ruleset_json  # noqa: PLC0415

    with _refusals(), _ledger(config, database_url) as (_, ledger):
        draft = ledger.db.read(lambda c: draft_row(c, draft_id))
        zone = parse_ruleset_json(draft["document"]).zone
        lo, hi = window_of(days, start, end, zone, _now())
        test_id = ledger.db.transact(
            lambda c: start_backtest(
                c,
                draft_id=draft_id,
                window_from=lo,
                window_to=hi,
                station_id=station,
                by=by,
                now=_now(),
            )
        )
        if sys.stderr.isatty() and not as_json:
            from rich.progress import Progress  # noqa: PLC0415 - only on a terminal

            with Progress(transient=True) as bar:
                task = bar.add_task("backtest", total=None)
                result = run_backtest(
                    ledger.db,
                    ledger.rules,
                    test_id,
                    _now,
                    lambda done, total: bar.update(task, completed=done, total=total or None),
                )
        else:
            result = run_backtest(ledger.db, ledger.rules, test_id, _now)
    if as_json:
        emit(result, as_json=True)
        return
    _print(result)


def _print(result: dict[str, Any]) -> None:
    totals = result["totals"]
    window = result["window"]
    typer.echo(f"backtest {result['backtest_id']} of draft {result['draft_id']}")
    typer.echo(f"window {window['from']} .. {window['to']}  data as of {result['data_as_of']}")
    typer.echo(f"draft sha256 {result['document_hash']}")
    typer.echo(
        f"sales {totals['sales']} (with a member {totals['member_sales']}; "
        f"unpriced {totals['unpriced_sales']})"
    )
    typer.echo(f"yuan cost: {result['rounding']}")
    columns = [
        "key",
        "member_sales",
        "current_points",
        "draft_points",
        "diff_points",
        "draft_requalified_points",
        "current_fen",
        "draft_fen",
    ]
    emit_table([totals], columns)
    typer.echo("by grade:")
    emit_table(result["by"]["grade"], columns)
    typer.echo(
        f"members whose tier would differ at the window's end: {len(result['tier_changes'])}"
    )


@rules_app.command("approve")
def rules_approve(
    config: ConfigOption,
    draft_id: Annotated[str, typer.Argument(help="The draft's id.")],
    by: ByOption,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve a backtested draft (maker-checker: never the drafter)."""
    from cloud_sync.cloud.ledger.drafts import approve_draft  # noqa: PLC0415 - lazy

    with _refusals(), _ledger(config, database_url) as (_, ledger):
        row = ledger.db.transact(lambda c: approve_draft(c, draft_id=draft_id, by=by, now=_now()))
    emit(
        {k: row[k] for k in ("draft_id", "status", "approved_by", "approved_hash")},
        as_json=as_json,
        text=f"draft {draft_id} approved by {row['approved_by']} (sha256 {row['approved_hash']})",
    )
