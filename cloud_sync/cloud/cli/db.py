"""`loyalpump cloud db`: the ledger's plan for a Citus cluster and its events partitions
(docs/scale.md).

`distribute --print` writes the SQL for this program's schema (no database needed);
`--apply` runs it on the configured PostgreSQL database once it has the `citus` extension,
skipping the tables Citus holds already, so a second run changes nothing. `partitions`
lists the months of events on PostgreSQL and, with `--detach-before`, takes whole months
out of the ledger for the archive. SQLAlchemy and the ledger are imported by the command,
so `loyalpump --help` does not pay for them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cloud_sync.core.output import emit, fail

from .commands import DatabaseOption, JsonOption, _one_line, _refusals, _settings

KEEP_MONTHS = 13  # partitions.KEEP_MONTHS, without importing the ledger for --help
# Optional here: `distribute --print` and a `--database-url` need no cloud.toml.
_ConfigFile = Annotated[
    Path | None,
    typer.Option("--config", "-c", envvar="LOYALPUMP_CLOUD_CONFIG", help="Path to cloud.toml."),
]

if TYPE_CHECKING:
    from cloud_sync.cloud.ledger.partitions import Partition

__all__ = ["db_app", "distribute", "partitions", "plan_sql"]

db_app = typer.Typer(
    help="The ledger's database: its plan for Citus, its events partitions.",
    no_args_is_help=True,
)

_HEADER = (
    "-- loyalpump cloud ledger, schema {version}: the Citus distribution plan (docs/scale.md).\n"
    "-- Run on the coordinator of a cluster with the citus extension, after the ledger\n"
    "-- is at this schema: reference tables first, then each co-location group."
)


def plan_sql() -> list[str]:
    """The comment header and the statements, as `--print` writes them."""
    from cloud_sync.cloud.ledger import schema_app as _app  # noqa: F401, PLC0415 - its tables
    from cloud_sync.cloud.ledger.database import SCHEMA_VERSION  # noqa: PLC0415 - lazy
    from cloud_sync.cloud.ledger.distribution import statements  # noqa: PLC0415 - lazy
    from cloud_sync.cloud.ledger.schema import metadata  # noqa: PLC0415 - lazy

    return [_HEADER.format(version=SCHEMA_VERSION), *statements(metadata)]


@db_app.command("distribute")
def distribute(
    print_sql: Annotated[
        bool, typer.Option("--print", help="Print the SQL for this program's schema.")
    ] = False,
    apply: Annotated[
        bool, typer.Option("--apply", help="Run it on the configured database (needs citus).")
    ] = False,
    config: _ConfigFile = None,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print or apply the Citus plan: reference tables and distributed tables, co-located."""
    if print_sql == apply:
        fail("give exactly one of --print or --apply")
    if print_sql:
        typer.echo("\n".join(plan_sql()))
        return
    if config is None and database_url is None:
        fail("--apply needs --config (cloud.toml) or --database-url")
    with _refusals():
        url = database_url if config is None else _settings(config, database_url).database_url
    done, skipped = _apply(url or "")
    emit(
        {"distributed": done, "already": skipped},
        as_json=as_json,
        text=f"citus plan applied: {len(done)} tables placed, {len(skipped)} were already",
    )


def _apply(url: str) -> tuple[list[str], list[str]]:
    from sqlalchemy import create_engine, text  # noqa: PLC0415 - lazy
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415 - lazy

    from cloud_sync.cloud.ledger import LedgerError  # noqa: PLC0415 - lazy
    from cloud_sync.cloud.ledger.database import Database, normalize_url  # noqa: PLC0415

    url = normalize_url(url)
    if url.startswith("sqlite"):
        fail("the ledger is on SQLite: Citus needs PostgreSQL (see docs/scale.md)")
    if not url.startswith("postgresql"):
        fail("database_url is not a PostgreSQL URL: Citus is PostgreSQL (see docs/scale.md)")
    try:
        engine = create_engine(url)
        with engine.connect() as conn:
            found = conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'citus'"))
            has_citus = found.first() is not None
        engine.dispose()
    except SQLAlchemyError as exc:
        fail(f"cannot reach the database: {_one_line(exc)[:200]}")
    if not has_citus:
        fail("the database has no citus extension: run CREATE EXTENSION citus on the coordinator")
    try:
        # The plan is for this program's schema: migrate an existing ledger first, but never
        # create one in a database that holds none (a wrong URL would get a whole ledger).
        db = Database.open(url, create=False)
    except (LedgerError, SQLAlchemyError) as exc:
        fail(_one_line(exc)[:200])
    done: list[str] = []
    skipped: list[str] = []
    try:
        with db.engine.connect() as conn:
            placed = set(
                conn.execute(text("SELECT logicalrelid::regclass::text FROM pg_dist_partition"))
                .scalars()
                .all()
            )
        for statement in plan_sql()[1:]:
            table = statement.split("'")[1]
            if table in placed:
                skipped.append(table)
                continue
            with db.engine.begin() as conn:
                conn.exec_driver_sql(statement)
            done.append(table)
    except SQLAlchemyError as exc:
        fail(f"citus refused the plan after {len(done)} tables: {_one_line(exc)[:300]}")
    finally:
        db.close()
    return done, skipped


_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})", re.ASCII)


def _month(text: str) -> date:
    match = _MONTH.fullmatch(text.strip())
    try:
        if match is None:
            raise ValueError(text)
        return date(int(match[1]), int(match[2]), 1)
    except ValueError:
        fail(f"--detach-before wants a month as YYYY-MM (e.g. 2025-11), got {text[:20]!r}")


@dataclass(frozen=True)
class _Found:
    partitions: list[Partition]  # as they are after this run
    detached: list[Partition]  # by this run
    leftover: list[str]  # detached earlier and not dropped yet
    url: str  # for the printed archive commands, password hidden
    now: datetime


@db_app.command("partitions")
def partitions(
    detach_before: Annotated[
        str | None,
        typer.Option(
            "--detach-before",
            help="Detach every month of events that ends by this one (YYYY-MM) for the archive.",
        ),
    ] = None,
    keep_months: Annotated[
        int,
        typer.Option(
            "--keep-months",
            min=1,
            max=120,
            help="Whole months kept before the current one, whatever --detach-before says.",
        ),
    ] = KEEP_MONTHS,
    config: _ConfigFile = None,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the events partitions (PostgreSQL), or detach the old months for the archive."""
    cutoff = None if detach_before is None else _month(detach_before)
    if config is None and database_url is None:
        fail("partitions needs --config (cloud.toml) or --database-url")
    with _refusals():
        url = database_url if config is None else _settings(config, database_url).database_url
    found = _partitions(url or "", cutoff, keep_months)
    if cutoff is None:
        listing = _listing(found, keep_months)
        emit(listing, as_json=as_json, text=_listing_text(listing, keep_months))
        return
    detached = [_row(p, keep_months) for p in found.detached]
    commands = [_archive_commands(found.url, p.name) for p in found.detached]
    lines = [
        f"detached {p.name} ({p.rows} events); keep it, then drop it:\n  " + "\n  ".join(steps)
        for p, steps in zip(found.detached, commands, strict=True)
    ]
    if not lines:
        from cloud_sync.cloud.ledger.partitions import leaves_from  # noqa: PLC0415 - lazy

        lines = [f"no month of events ends by {cutoff:%Y-%m}: nothing detached"]
        oldest = next((p for p in found.partitions if not p.default), None)
        leaves = None if oldest is None else leaves_from(oldest, keep_months)
        if oldest is not None and oldest.end is not None and leaves is not None:
            lines.append(
                f"the oldest, {oldest.name}, holds events received before {oldest.end} and "
                f"may leave from {leaves:%Y-%m} (--keep-months {keep_months})"
            )
    emit(
        {"detached": detached, "archive_commands": commands},
        as_json=as_json,
        text="\n".join(lines),
    )


def _row(partition: Partition, keep_months: int) -> dict[str, Any]:
    from cloud_sync.cloud.ledger.partitions import leaves_from  # noqa: PLC0415 - lazy

    leaves = leaves_from(partition, keep_months)
    return {
        "name": partition.name,
        "from": None if partition.start is None else partition.start.isoformat(),
        "to": None
        if partition.end is None or partition.end == date.max
        else partition.end.isoformat(),
        "rows": partition.rows,
        "default": partition.default,
        "leaves_from": None if leaves is None else f"{leaves:%Y-%m}",
    }


def _listing(found: _Found, keep_months: int) -> dict[str, Any]:
    from cloud_sync.cloud.ledger.partitions import earliest_cutoff  # noqa: PLC0415 - lazy

    return {
        "partitions": [_row(p, keep_months) for p in found.partitions],
        "latest_cutoff": f"{earliest_cutoff(found.now, keep_months):%Y-%m}",
        "detached_not_dropped": found.leftover,
    }


def _listing_text(listing: dict[str, Any], keep_months: int) -> str:
    table = [f"{'partition':<16} {'from':<10}  {'to':<10}  {'rows (est.)':<11}  may leave from"]
    for row in listing["partitions"]:
        start = "DEFAULT" if row["default"] else row["from"] or "(start)"
        rows = "unknown" if row["rows"] is None else str(row["rows"])
        leaves = row["leaves_from"] or "never (the default partition)"
        table.append(f"{row['name']:<16} {start:<10}  {row['to'] or '':<10}  {rows:<11}  {leaves}")
    table.append(
        f"latest --detach-before today: {listing['latest_cutoff']} (--keep-months {keep_months})"
    )
    if listing["detached_not_dropped"]:
        left = ", ".join(listing["detached_not_dropped"])
        table.append(f"detached, not dropped yet (they still hold events): {left}")
    return "\n".join(table)


def _archive_commands(url: str, name: str) -> list[str]:
    """What keeps a detached month and then drops it, for the operator to run."""
    return [
        f"pg_dump '{url}' --table={name} --format=custom --file={name}.dump",
        f"psql '{url}' --command='DROP TABLE {name};'",
    ]


def _partitions(url: str, cutoff: date | None, keep_months: int) -> _Found:
    """The listing, or the months detached. The ledger is opened as it is, never migrated:
    a listing must not start a migration's long lock, nor a detach run on an older schema."""
    from sqlalchemy import create_engine, inspect, select  # noqa: PLC0415 - lazy
    from sqlalchemy.engine import make_url  # noqa: PLC0415 - lazy
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415 - lazy

    from cloud_sync.cloud.ledger import LedgerError  # noqa: PLC0415 - lazy
    from cloud_sync.cloud.ledger import partitions as parts  # noqa: PLC0415 - lazy
    from cloud_sync.cloud.ledger.database import (  # noqa: PLC0415 - lazy
        SCHEMA_VERSION,
        Database,
        normalize_url,
    )
    from cloud_sync.cloud.ledger.schema import schema_version  # noqa: PLC0415 - lazy

    url = normalize_url(url)
    if url.startswith("sqlite"):
        fail("the ledger is SQLite: events are partitioned on PostgreSQL only (one table here)")
    if not url.startswith("postgresql"):
        fail("the database URL is not PostgreSQL's (postgresql://USER@HOST/DB)")
    shown = make_url(url).set(drivername="postgresql").render_as_string(hide_password=True)
    db = Database(create_engine(url))
    try:
        found = db.read(
            lambda conn: (
                conn.execute(select(schema_version.c.version)).scalar_one_or_none()
                if inspect(conn).has_table("schema_version")
                else None
            )
        )
        if found is None:
            fail("the database holds no ledger")
        if found != SCHEMA_VERSION:
            fail(
                f"the ledger is at schema {found}, this program's is {SCHEMA_VERSION}: start "
                "this version's `loyalpump cloud run` once (it migrates), then try again"
            )
        now = datetime.now(UTC)
        detached: list[Partition] = []
        if cutoff is not None:
            detached = db.transact(lambda conn: parts.detach_before(conn, cutoff, now, keep_months))
        listed = db.read(parts.partitions)
        leftover = db.read(parts.detached_tables)
        return _Found(listed, detached, leftover, shown, now)
    except LedgerError as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        reason = getattr(exc, "orig", None) or exc
        fail(f"the database refused: {_one_line(reason)[:300]}")
    finally:
        db.close()
