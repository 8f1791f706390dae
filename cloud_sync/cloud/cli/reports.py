"""`loyalpump cloud report …` and `loyalpump cloud aggregates …`: HQ's reports from the
command line (the console's tables, read from the same aggregates), and the check and
rebuild of those aggregates against the ledger."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from cloud_sync.core.output import emit, emit_table, fail

from .commands import ConfigOption, DatabaseOption, JsonOption, _ledger, _now, _refusals

__all__ = ["aggregates_app", "report_app"]

report_app = typer.Typer(help="HQ's reports: liability, sales, members.", no_args_is_help=True)
aggregates_app = typer.Typer(
    help="The report aggregates: check them against the ledger, or rebuild them.",
    no_args_is_help=True,
)

FromOption = Annotated[
    str | None, typer.Option("--from", help="First day YYYY-MM-DD (chain's time zone).")
]
ToOption = Annotated[str | None, typer.Option("--to", help="Last day YYYY-MM-DD (default today).")]
StationOption = Annotated[
    str | None, typer.Option("--station", help="One station's id ('' for HQ's own postings).")
]
FormatOption = Annotated[
    Literal["table", "csv", "xlsx", "json"],
    typer.Option("--format", help="table (default), csv, xlsx (needs --out) or json."),
]
OutOption = Annotated[Path | None, typer.Option("--out", help="Write to this file.")]


def _report(
    name: str,
    config: Path,
    database_url: str | None,
    first: str | None,
    last: str | None,
    station: str | None,
    fmt: str,
    out: Path | None,
    default_days: int,
) -> None:
    from cloud_sync.cloud.console.export import Column, to_csv, to_xlsx  # noqa: PLC0415 - lazy
    from cloud_sync.cloud.ledger import report_tables as rt  # noqa: PLC0415 - lazy

    if fmt == "xlsx" and out is None:
        fail("--format xlsx needs --out FILE")
    now = _now()

    def work(conn: Any) -> Any:
        period = rt.period_of(conn, now, "custom", first, last, default_days=default_days)
        return period, rt.table(conn, name, period, rt.check_station(conn, station), now)

    with _refusals(), _ledger(config, database_url) as (_, ledger):
        period, table = ledger.db.read(work)
    columns = [Column(c.key, c.zh) for c in table.columns]
    if fmt in ("csv", "xlsx"):
        body = (
            to_csv(columns, table.rows)
            if fmt == "csv"
            else to_xlsx(columns, table.rows, sheet=name)
        )
        if out is None:
            sys.stdout.buffer.write(body)
        else:
            out.write_bytes(body)
        return
    document = {
        "report": name,
        "from": period.start.isoformat(),
        "to": period.end.isoformat(),
        "station": station,
        "rows": table.rows,
    }
    if out is not None:
        keys = [c.key for c in table.columns]
        text = (
            json.dumps(document, ensure_ascii=False, indent=2)
            if fmt == "json"
            else "\n".join("\t".join(str(r.get(k, "")) for k in keys) for r in table.rows)
        )
        out.write_text(text + "\n", encoding="utf-8")
    elif fmt == "json":
        emit(document, as_json=True)
    else:
        emit_table(table.rows, [c.key for c in table.columns])


@report_app.command("liability")
def report_liability(
    config: ConfigOption,
    first: FromOption = None,
    last: ToOption = None,
    station: StationOption = None,
    fmt: FormatOption = "table",
    out: OutOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """The points liability roll-forward per month and station (default: the last 12 months)."""
    _report("liability", config, database_url, first, last, station, fmt, out, 365)


@report_app.command("sales")
def report_sales(
    config: ConfigOption,
    first: FromOption = None,
    last: ToOption = None,
    station: StationOption = None,
    fmt: FormatOption = "table",
    out: OutOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Sales per station × grade × day (default: the last 30 days)."""
    _report("sales", config, database_url, first, last, station, fmt, out, 30)


@report_app.command("members")
def report_members(
    config: ConfigOption,
    first: FromOption = None,
    last: ToOption = None,
    station: StationOption = None,
    fmt: FormatOption = "table",
    out: OutOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Member growth, tiers, activity and RFM segments (default: the last 12 months)."""
    _report("members", config, database_url, first, last, station, fmt, out, 365)


@aggregates_app.command("check")
def aggregates_check(
    config: ConfigOption, database_url: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """Recompute the aggregates from the ledger and name every difference (exit 1 if any)."""
    from cloud_sync.cloud.ledger import aggregates_ledger as aggregates  # noqa: PLC0415

    with _refusals(), _ledger(config, database_url) as (_, ledger):
        problems = ledger.db.read(aggregates.check)
        balances = ledger.db.read(aggregates.ledger_outstanding)
    if as_json:
        emit({"ok": not problems, "problems": problems, "outstanding": balances}, as_json=True)
    else:
        for line in problems:
            typer.echo(line)
        typer.echo(f"{len(problems)} difference(s); outstanding {balances}")
    if problems:
        raise typer.Exit(1)


TimezoneOption = Annotated[
    str | None,
    typer.Option(
        "--timezone",
        help="Set the chain's time zone (IANA name, e.g. Asia/Urumqi) and rebuild in its days.",
    ),
]


@aggregates_app.command("rebuild")
def aggregates_rebuild(
    config: ConfigOption, database_url: DatabaseOption = None, timezone: TimezoneOption = None
) -> None:
    """Replace the aggregates with what the ledger says (one transaction); with --timezone,
    store the chain's zone first, in the same transaction."""
    from cloud_sync.cloud.ledger import aggregates_ledger as aggregates  # noqa: PLC0415
    from cloud_sync.cloud.ledger.aggregates import set_chain_timezone  # noqa: PLC0415

    if timezone is not None and not 0 < len(timezone) <= 64:
        fail("--timezone: an IANA time zone name of 1 to 64 characters, e.g. Asia/Shanghai")

    def work(conn: Any) -> None:
        if timezone is not None:
            set_chain_timezone(conn, timezone)
        aggregates.rebuild(conn)

    with _refusals(), _ledger(config, database_url) as (_, ledger):
        ledger.db.transact(work)
        balances = ledger.db.read(aggregates.ledger_outstanding)
    zone = "" if timezone is None else f" in {timezone} days"
    typer.echo(f"aggregates rebuilt{zone}; outstanding {balances['aggregates']} points")


DayOption = Annotated[
    str | None, typer.Option("--day", help="The day YYYY-MM-DD (default today, chain's zone).")
]


@aggregates_app.command("rfm")
def aggregates_rfm(
    config: ConfigOption,
    database_url: DatabaseOption = None,
    day: DayOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compute RFM as of the end of a day and store its snapshot (run it nightly: the member
    report then reads it instead of scanning 180 days of sales at its first view)."""
    from datetime import date  # noqa: PLC0415

    from cloud_sync.cloud.ledger import rfm  # noqa: PLC0415
    from cloud_sync.cloud.ledger.aggregates import chain_zone  # noqa: PLC0415

    chosen: date | None = None
    try:
        chosen = None if day is None else date.fromisoformat(day)
    except ValueError:
        fail(f"--day {day!r}: not a date YYYY-MM-DD")
    now = _now()

    def work(conn: Any) -> Any:
        end = chosen or now.astimezone(chain_zone(conn)).date()
        return end, rfm.refresh(conn, end, now)

    with _refusals(), _ledger(config, database_url) as (_, ledger):
        end, body = ledger.db.transact(work)
    if as_json:
        emit({"day": end.isoformat()} | body, as_json=True)
        return
    emit_table(
        [{"segment": s["segment"], "members": s["members"]} for s in body["segments"]],
        ["segment", "members"],
    )
    typer.echo(f"RFM as of the end of {end.isoformat()}, computed {body['as_of']}")
