"""`loyalpump cloud db distribute`: the ledger's plan for a Citus cluster (docs/scale.md).

`--print` writes the SQL for this program's schema (no database needed); `--apply` runs it
on the configured PostgreSQL database once it has the `citus` extension, skipping the
tables Citus holds already, so a second run changes nothing. SQLAlchemy and the ledger are
imported by the command, so `loyalpump --help` does not pay for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cloud_sync.core.output import emit, fail

from .commands import DatabaseOption, JsonOption, _one_line, _refusals, _settings

__all__ = ["db_app", "distribute", "plan_sql"]

db_app = typer.Typer(help="The ledger's database: its plan for Citus.", no_args_is_help=True)

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
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", envvar="LOYALPUMP_CLOUD_CONFIG", help="Path to cloud.toml."),
    ] = None,
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
