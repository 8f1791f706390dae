"""`loyalpump cloud …`: the chain's ledger service and HQ's verbs on its database.

Every verb but `run` opens the database directly, so HQ can enrol a station or publish rules
while the service is down (SQLite's WAL copes with the service writing at the same time).
The ledger, the settings and the service (SQLAlchemy, pydantic, uvicorn) are imported by the
verbs that use them, so `loyalpump --help` and a station's `loyalpump edge …` do not pay for
loading them (tests/edge_agent/test_cli_imports.py keeps it so).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cloud_sync.core.output import emit, emit_table, fail

if TYPE_CHECKING:
    from cloud_sync.cloud.ledger import CloudLedger
    from cloud_sync.cloud.server.settings import CloudSettings

__all__ = ["cloud_app"]

cloud_app = typer.Typer(
    help="The chain's cloud ledger: the service, stations, rule sets, members.",
    no_args_is_help=True,
)
station_app = typer.Typer(help="Stations and their API tokens.", no_args_is_help=True)
rules_app = typer.Typer(help="Signed rule sets for every station.", no_args_is_help=True)
member_app = typer.Typer(help="The chain-wide view of members.", no_args_is_help=True)
cloud_app.add_typer(station_app, name="station")
cloud_app.add_typer(rules_app, name="rules")
cloud_app.add_typer(member_app, name="member")

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="LOYALPUMP_CLOUD_CONFIG", help="Path to cloud.toml."),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Overrides cloud.database_url (sqlite:///FILE or postgresql://USER@HOST/DB).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]

_STATION_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def _now() -> datetime:
    return datetime.now(UTC)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


@contextmanager
def _refusals() -> Iterator[None]:
    """Errors the user can fix become exit 2 and one line."""
    try:
        yield
    except Exception as exc:
        if isinstance(exc, _refusal_types()):
            fail(_one_line(exc))
        raise


def _refusal_types() -> tuple[type[Exception], ...]:
    """Imported only once something was raised: the modules are heavy (see the docstring)."""
    from cloud_sync.cloud.ledger import LedgerError  # noqa: PLC0415 - lazy, see docstring
    from cloud_sync.cloud.server.keyfiles import KeyFileError  # noqa: PLC0415
    from cloud_sync.cloud.server.settings import CloudConfigError  # noqa: PLC0415
    from cloud_sync.core.identity import IdentityError  # noqa: PLC0415
    from cloud_sync.core.ruleset import RuleSetError  # noqa: PLC0415

    return CloudConfigError, KeyFileError, LedgerError, IdentityError, RuleSetError


def _settings(config: Path, database_url: str | None) -> CloudSettings:
    from cloud_sync.cloud.server.settings import load_cloud_settings  # noqa: PLC0415 - lazy

    settings = load_cloud_settings(config)
    return settings if database_url is None else settings.with_database_url(database_url)


@contextmanager
def _ledger(config: Path, database_url: str | None) -> Iterator[tuple[CloudSettings, CloudLedger]]:
    from cloud_sync.cloud.server.run import open_ledger  # noqa: PLC0415 - lazy, see docstring

    settings = _settings(config, database_url)
    ledger = open_ledger(settings)
    try:
        yield settings, ledger
    finally:
        ledger.close()


@cloud_app.command("run")
def run(
    config: ConfigOption,
    database_url: DatabaseOption = None,
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING")] = "INFO",
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=0,
            max=64,
            help="Worker processes (PostgreSQL); 0 = one per core. Overrides cloud.workers.",
        ),
    ] = None,
) -> None:
    """Run the central ledger service until SIGTERM or Ctrl-C; SIGHUP restarts its workers."""
    from cloud_sync.cloud.server.run import serve  # noqa: PLC0415 - lazy, see docstring
    from cloud_sync.cloud.server.supervisor import cores, worker_count  # noqa: PLC0415

    level = log_level.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        fail(f"--log-level: {log_level!r} is not DEBUG, INFO, WARNING or ERROR")
    with _refusals():
        settings = _settings(config, database_url)
        count, note = worker_count(workers, settings, cores())
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

        def ready(base_url: str) -> None:
            many = f" ({count} workers)" if count > 1 else ""
            typer.echo(f"cloud ledger listening on {base_url}{many}")
            if note is not None:  # once serving (a refusal stays one line), on stderr
                typer.echo(note, err=True)

        serve(settings, ready=ready, workers=count)


@station_app.command("add")
def station_add(
    config: ConfigOption,
    station_id: Annotated[str, typer.Option("--id", help="Station id, e.g. S001.")],
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Enrol a station; prints its API token once (only its hash is kept)."""
    if not _STATION_ID.match(station_id):
        fail("--id: 1-32 letters, digits, '-' or '_'")
    with _refusals(), _ledger(config, database_url) as (_, ledger):
        token = ledger.add_station(station_id, (name or station_id).strip(), _now())
    emit(
        {"station_id": station_id, "token": token},
        as_json=as_json,
        text=f"station {station_id} added; its token (shown once, put it in station.toml):\n"
        f"{token}",
    )


@station_app.command("rotate-token")
def station_rotate_token(
    config: ConfigOption,
    station_id: Annotated[str, typer.Option("--id", help="Station id.")],
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Issue a new token for a station; the old one stops working at once."""
    with _refusals(), _ledger(config, database_url) as (_, ledger):
        token = ledger.rotate_token(station_id)
    emit(
        {"station_id": station_id, "token": token},
        as_json=as_json,
        text=f"station {station_id}: new token (shown once):\n{token}",
    )


@station_app.command("revoke")
def station_revoke(
    config: ConfigOption,
    station_id: Annotated[str, typer.Option("--id", help="Station id.")],
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a station's token at once (audited as "cli"); its history stays, and
    rotate-token reinstates it with a new token."""
    from cloud_sync.cloud.ledger.station_admin import revoke_station  # noqa: PLC0415 - lazy

    now = _now()
    with _refusals(), _ledger(config, database_url) as (_, ledger):
        ledger.db.transact(lambda conn: revoke_station(conn, station_id, actor="cli", now=now))
    emit(
        {"station_id": station_id, "revoked_at": now.isoformat()},
        as_json=as_json,
        text=f"station {station_id}: token revoked",
    )


@station_app.command("list")
def station_list(
    config: ConfigOption, database_url: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """Enrolled stations."""
    with _refusals(), _ledger(config, database_url) as (_, ledger):
        rows = [
            {key: value for key, value in row.items() if "token" not in key}
            for row in ledger.stations()
        ]
    if as_json:
        emit(rows, as_json=True)
    else:
        wanted = ("station_id", "name", "enrolled_at", "last_push_at", "high_water", "backlog")
        present = set(rows[0]) if rows else set(wanted)
        emit_table(rows, [column for column in wanted if column in present])


@rules_app.command("publish")
def rules_publish(
    config: ConfigOption,
    file: Annotated[
        Path | None, typer.Argument(help="Rule-set JSON document (or --draft instead).")
    ] = None,
    draft: Annotated[
        str | None,
        typer.Option("--draft", help="Publish this approved, backtested draft instead of a FILE."),
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Who publishes the draft (kept in the audit).")
    ] = None,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate, sign and publish a rule set (a FILE, or an approved draft) to every station."""
    from cloud_sync.cloud.server.keyfiles import (  # noqa: PLC0415 - lazy, see docstring
        load_or_create_signing_key,
    )
    from cloud_sync.cloud.server.rules import (  # noqa: PLC0415 - lazy, see docstring
        publish_draft,
        publish_ruleset,
    )

    if (file is None) == (draft is None):
        fail("give a FILE or --draft DRAFT_ID")
    if draft is not None:
        if not by:
            fail("--draft needs --by NAME (who publishes it)")
        assert by is not None
        with _refusals(), _ledger(config, database_url) as (settings, ledger):
            signing_key = load_or_create_signing_key(settings.data_dir)
            row = publish_draft(ledger, signing_key, draft, by, _now())
        emit(
            {"draft_id": draft, "version": row["published_version"], "published_by": by},
            as_json=as_json,
            text=f"draft {draft} published as rule set {row['published_version']}",
        )
        return
    assert file is not None
    try:
        raw = file.read_bytes()
    except OSError as exc:
        fail(f"{file}: {exc.strerror or exc}")
        raise  # unreachable: fail() exits
    with _refusals(), _ledger(config, database_url) as (settings, ledger):
        signing_key = load_or_create_signing_key(settings.data_dir)
        published = publish_ruleset(ledger, signing_key, raw, _now())
    emit(
        published.to_dict(),
        as_json=as_json,
        text=f"rule set {published.version} published (signed with key {published.signing_key_id})",
    )


@member_app.command("show")
def member_show(
    config: ConfigOption,
    phone: Annotated[str | None, typer.Option("--phone", help="Mobile number.")] = None,
    plate: Annotated[str | None, typer.Option("--plate", help="Licence plate.")] = None,
    member_id: Annotated[str | None, typer.Option("--id", help="Member id.")] = None,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """The chain-wide view of a member: tier, points, lots, overdraft, plates."""
    if sum(value is not None for value in (phone, plate, member_id)) != 1:
        fail("give exactly one of --phone, --plate or --id")
    with _refusals(), _ledger(config, database_url) as (_, ledger):
        if member_id is not None:
            found = ledger.member(member_id, _now())
        else:
            found = ledger.find_member(phone=phone, plate=plate, now=_now())
    if found is None:
        fail("no such member")
        return
    emit(found, as_json=as_json)


def _switch(value: str) -> bool:
    word = value.strip().lower()
    if word in ("on", "true", "yes", "1"):
        return True
    if word in ("off", "false", "no", "0"):
        return False
    fail(f"--offline-redemption: {value!r} is not on or off")
    raise AssertionError  # unreachable: fail() exits


@cloud_app.command("policy")
def policy(
    config: ConfigOption,
    offline_redemption: Annotated[
        str | None,
        typer.Option("--offline-redemption", help="on or off: may stations redeem offline?"),
    ] = None,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show HQ's offline-redemption switch, or set it (stations see it at their next pull)."""
    enabled = None if offline_redemption is None else _switch(offline_redemption)
    with _refusals(), _ledger(config, database_url) as (_, ledger):
        if enabled is not None:
            ledger.set_offline_redemption(enabled, _now())
        current = ledger.offline_redemption()
    emit(
        {"offline_redemption": current},
        as_json=as_json,
        text=f"offline redemption: {'on' if current else 'off'}",
    )
