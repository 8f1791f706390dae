"""`loyalpump cloud review …`: HQ's review of what stations did beyond their authority.

The same as the admin API's /api/v1/review and /api/v1/adjustments, on the database
directly, so HQ can look and decide while the service is down.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cloud_sync.core.output import emit, emit_table

from .commands import ConfigOption, DatabaseOption, JsonOption, _ledger, _now, _refusals

__all__ = ["review_app"]

review_app = typer.Typer(
    help="Stations' flags and suspensions, and adjustments waiting for HQ.", no_args_is_help=True
)

StationOption = Annotated[str, typer.Option("--station", help="Station id.")]
ByOption = Annotated[str, typer.Option("--by", help="Who at HQ decides (kept with it).")]


@review_app.command("list")
def review_list(
    config: ConfigOption, database_url: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """Stations with open flags, a suspension or adjustments waiting for HQ."""
    with _refusals(), _ledger(config, database_url) as (_, ledger):
        rows = ledger.review_list()
    if as_json:
        emit(rows, as_json=True)
    elif not rows:
        typer.echo("no station needs review")
    else:
        emit_table(
            rows,
            ["station_id", "suspended", "open_flags", "flagged_overdraft", "pending_adjustments"],
        )


@review_app.command("flags")
def review_flags(
    config: ConfigOption,
    station: Annotated[str | None, typer.Option("--station", help="One station.")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Resolved ones too.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """What stations did beyond their authority, newest first."""
    with _refusals(), _ledger(config, database_url) as (_, ledger):
        rows = ledger.station_flags(station, open_only=not everything, limit=limit)
    if as_json:
        emit(rows, as_json=True)
    else:
        emit_table(rows, ["flag_id", "station_id", "code", "points", "shortfall", "detail"])


def _set(config: ConfigOption, station: str, by: str, reason: str | None, *, on: bool) -> None:
    with _refusals(), _ledger(config, None) as (_, ledger):
        row = ledger.set_station_suspended(station, suspended=on, by=by, reason=reason, now=_now())
    emit(row, as_json=False)


@review_app.command("suspend")
def review_suspend(
    config: ConfigOption,
    station: StationOption,
    by: ByOption,
    reason: Annotated[str | None, typer.Option("--reason")] = None,
) -> None:
    """Turn a station's offline redemption off (it hears so at its next pull)."""
    _set(config, station, by, reason, on=True)


@review_app.command("lift")
def review_lift(
    config: ConfigOption,
    station: StationOption,
    by: ByOption,
    reason: Annotated[str | None, typer.Option("--reason")] = None,
) -> None:
    """Lift a suspension and resolve the station's open flags."""
    _set(config, station, by, reason, on=False)


@review_app.command("adjustments")
def review_adjustments(
    config: ConfigOption,
    status: Annotated[
        str, typer.Option("--status", help="pending, applied, approved, declined or all.")
    ] = "pending",
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stations' manual adjustments; by default those waiting for HQ."""
    with _refusals(), _ledger(config, database_url) as (_, ledger):
        rows = ledger.adjustments(None if status == "all" else status)
    if as_json:
        emit(rows, as_json=True)
    else:
        emit_table(rows, ["event_id", "station_id", "member_id", "points", "status", "reason"])


def _decide(config: ConfigOption, event_id: str, by: str, note: str | None, *, ok: bool) -> None:
    with _refusals(), _ledger(config, None) as (_, ledger):
        row = ledger.decide_adjustment(event_id, approve=ok, by=by, note=note, now=_now())
    emit(row, as_json=False)


@review_app.command("approve")
def review_approve(
    config: ConfigOption,
    event_id: Annotated[str, typer.Argument(help="The held adjustment's event id.")],
    by: ByOption,
    note: Annotated[str | None, typer.Option("--note")] = None,
) -> None:
    """Book a held adjustment as the station asked (once)."""
    _decide(config, event_id, by, note, ok=True)


@review_app.command("decline")
def review_decline(
    config: ConfigOption,
    event_id: Annotated[str, typer.Argument(help="The held adjustment's event id.")],
    by: ByOption,
    note: Annotated[str | None, typer.Option("--note")] = None,
) -> None:
    """Never book a held adjustment."""
    _decide(config, event_id, by, note, ok=False)
