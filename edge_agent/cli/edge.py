"""`loyalpump edge …`: the station's own commands, each one store transaction or a read.

Each command imports the services it runs (they load the store, httpx, the settings), so
`loyalpump edge --help` and a look-up pay only for what they use.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cloud_sync.core.output import emit, emit_table, fail

if TYPE_CHECKING:
    from ..services.members import MemberView
    from ..services.station import Station

__all__ = ["edge_app"]

edge_app = typer.Typer(
    help="The station agent: store, members, sales, points.", no_args_is_help=True
)
member_app = typer.Typer(help="Members: register, show, plates.", no_args_is_help=True)
sale_app = typer.Typer(help="Manual sale entry and reversal.", no_args_is_help=True)
rules_app = typer.Typer(help="Rule sets.", no_args_is_help=True)
user_app = typer.Typer(help="Cashier-page logins.", no_args_is_help=True)
edge_app.add_typer(member_app, name="member")
edge_app.add_typer(sale_app, name="sale")
edge_app.add_typer(rules_app, name="rules")
edge_app.add_typer(user_app, name="user")

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="LOYALPUMP_CONFIG", help="Path to station.toml."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
PhoneOption = Annotated[str | None, typer.Option("--phone", help="Member's mobile number.")]
PlateOption = Annotated[str | None, typer.Option("--plate", help="Member's licence plate.")]
UserOption = Annotated[
    str | None, typer.Option("--user", help="Who is acting (recorded in the audit log).")
]


def _actor(user: str | None) -> str:
    return user or f"cli:{getpass.getuser()}"


@contextmanager
def _station(config: Path, *, create: bool = False) -> Iterator[Station]:
    from ..services.station import open_station  # noqa: PLC0415 - lazy, see the docstring
    from ..settings import load_settings  # noqa: PLC0415

    station = open_station(load_settings(config), create=create)
    try:
        yield station
    finally:
        station.close()


def _decimal(value: str, name: str) -> Decimal:
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        fail(f"--{name}: {value!r} is not a decimal number")
        raise  # unreachable: fail() exits
    if not number.is_finite():
        fail(f"--{name}: {value!r} is not a finite number")
    return number


def _one_identifier(phone: str | None, plate: str | None) -> None:
    if (phone is None) == (plate is None):
        fail("give exactly one of --phone or --plate")


@contextmanager
def _member_of(
    config: Path, phone: str | None, plate: str | None
) -> Iterator[tuple[Station, MemberView]]:
    """The open station and the member named by exactly one of --phone or --plate."""
    from ..services.members import find_member  # noqa: PLC0415 - lazy, see the docstring

    _one_identifier(phone, plate)
    with _station(config) as station:
        yield station, find_member(station, phone=phone, plate=plate)


@edge_app.command("init")
def init(config: ConfigOption) -> None:
    """Create or migrate the station store and its member keys (idempotent)."""
    with _station(config, create=True) as station:
        typer.echo(
            f"station {station.station_id}: store ready at {station.store.path} "
            f"(schema {station.store.schema_version})"
        )


@edge_app.command("status")
def status(config: ConfigOption, as_json: JsonOption = False) -> None:
    """Store, drivers, sync backlog, rules version, last contact with the cloud."""
    from ..services.status import station_status  # noqa: PLC0415

    with _station(config) as station:
        emit(station_status(station), as_json=as_json)


@edge_app.command("sync")
def sync(config: ConfigOption, as_json: JsonOption = False) -> None:
    """One push+pull cycle with the cloud now; exit 0 when the backlog is empty after it."""
    from ..services.sync import sync_once  # noqa: PLC0415
    from ..settings import load_settings  # noqa: PLC0415
    from ..store import StoreError  # noqa: PLC0415
    from ..store.lock import AgentLock  # noqa: PLC0415

    settings = load_settings(config)
    if not settings.cloud.url:
        fail(f"{config}: cloud.url is not set; this station has no cloud to sync with")
    # The outcome is reported below in one line; log records would add more to stderr.
    logging.getLogger().addHandler(logging.NullHandler())
    lock = AgentLock(settings.station.data_dir)
    try:
        lock.acquire()
    except StoreError as exc:
        fail(str(exc), 1)
    try:
        with _station(config) as station:
            result = sync_once(station)
    finally:
        lock.release()
    summary = {
        "ok": result.ok,
        "pushed": result.pushed,
        "duplicates": result.duplicates,
        "rejected": result.rejected,
        "rewound": result.rewound,
        "pages": result.pages,
        "backlog": result.backlog_after.pending,
        "oldest_pending": result.backlog_after.oldest_created_at,
        "error": result.error,
        "alert": result.alert,
    }
    emit(
        summary,
        as_json=as_json,
        text=(
            f"pushed {result.pushed} (duplicates {result.duplicates}, rejected "
            f"{result.rejected}), pulled {result.pages} page(s), backlog "
            f"{result.backlog_after.pending}"
        ),
    )
    if not result.ok:
        fail(f"sync failed: {' '.join(str(result.error).split())}", 1)
    if result.backlog_after.pending:
        fail(f"{result.backlog_after.pending} events still wait for the cloud", 1)


@edge_app.command("verify")
def verify(config: ConfigOption, as_json: JsonOption = False) -> None:
    """Recompute every balance and lot from the ledger, and list where the cloud's ledger
    disagrees with this station's; exit 1 if anything differs."""
    from ..services.disagreements import describe, open_cloud_disagreements  # noqa: PLC0415
    from ..services.points import verify_ledger  # noqa: PLC0415

    with _station(config) as station:
        problems = verify_ledger(station) + station.store.integrity_problems()
        cloud = [describe(found) for found in open_cloud_disagreements(station)]
    emit(
        {"ok": not (problems or cloud), "problems": problems, "cloud_disagreements": cloud},
        as_json=as_json,
        text="ledger verified: no differences"
        if not (problems or cloud)
        else "\n".join(problems + cloud),
    )
    if problems or cloud:
        raise typer.Exit(1)


@edge_app.command("settle")
def settle(
    config: ConfigOption,
    event_id: Annotated[str, typer.Argument(help="The event the cloud disagreed about.")],
    user: UserOption = None,
) -> None:
    """Mark a disagreement with the cloud settled, once HQ has answered it (audited)."""
    from ..services.disagreements import settle_cloud_disagreement  # noqa: PLC0415

    with _station(config) as station:
        settle_cloud_disagreement(station, event_id, actor=_actor(user))
    typer.echo(f"settled: {event_id}")


@edge_app.command("backup")
def backup(
    config: ConfigOption,
    keep: Annotated[int, typer.Option("--keep", min=1, help="Backups to keep.")] = 7,
    as_json: JsonOption = False,
) -> None:
    """Back up the store now into data_dir/backups (the daily job; safe while the agent runs)."""
    from ..services.backup import backup_store  # noqa: PLC0415

    with _station(config) as station:
        path = backup_store(station, keep=keep)
    emit({"backup": str(path)}, as_json=as_json, text=str(path))


@edge_app.command("restore")
def restore(
    config: ConfigOption,
    backup_file: Annotated[
        Path | None,
        typer.Argument(metavar="BACKUP", help="Backup file (default: the newest good one)."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace the store even though it passes its integrity check."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Replace the store with a backup (agent stopped); new events go under a new epoch."""
    from ..services.backup import restore_store  # noqa: PLC0415
    from ..settings import load_settings  # noqa: PLC0415

    result = restore_store(load_settings(config), backup_file, force=force)
    replaced = None if result.replaced is None else str(result.replaced)
    emit(
        {
            "backup": str(result.backup),
            "epoch": result.epoch,
            "first_seq": result.first_seq,
            "replaced": replaced,
            "unacknowledged": result.unacknowledged,
        },
        as_json=as_json,
        text=(
            f"restored {result.backup}: new epoch {result.epoch} from seq {result.first_seq}"
            + (f"; the previous store is kept at {replaced}" if replaced else "")
            + (
                f"; it held {result.unacknowledged} events the cloud had not acknowledged, "
                "lost to sync unless recovered from it"
                if replaced
                else ""
            )
        ),
    )


@edge_app.command("expire")
def expire(config: ConfigOption) -> None:
    """Book expiry for points past their date (the nightly job, run now)."""
    from ..services.points import expire_points  # noqa: PLC0415

    with _station(config) as station:
        typer.echo(f"expired {expire_points(station)} points")


@edge_app.command("recalc-tiers")
def recalc_tiers(config: ConfigOption, as_json: JsonOption = False) -> None:
    """Recalculate every member's tier now (the nightly job, run now)."""
    from ..services.tiers import recalculate_tiers  # noqa: PLC0415

    with _station(config) as station:
        changes = recalculate_tiers(station)
    rows = [{"member_id": c.member_id, "from": c.old, "to": c.new} for c in changes]
    emit(rows, as_json=as_json, text=f"{len(rows)} tier changes")


@user_app.command("add")
def user_add(
    config: ConfigOption,
    name: Annotated[str, typer.Option("--name")],
    role: Annotated[str, typer.Option("--role", help="cashier or manager")],
    pin: Annotated[str, typer.Option("--pin")],
    user: UserOption = None,
) -> None:
    """Create a cashier-page login."""
    from ..services.users import add_user  # noqa: PLC0415

    with _station(config) as station:
        add_user(station, name=name, role=role, pin=pin, actor=_actor(user))
    typer.echo(f"user {name} ({role}) added")


@member_app.command("add")
def member_add(
    config: ConfigOption,
    phone: Annotated[str, typer.Option("--phone", help="Mainland mobile number.")],
    plate: Annotated[list[str] | None, typer.Option("--plate", help="Plate (repeatable).")] = None,
    name: Annotated[str | None, typer.Option("--name")] = None,
    move_plates: Annotated[
        bool, typer.Option("--move-plates", help="Take plates from their current owner.")
    ] = False,
    user: UserOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a member locally (queued for the cloud); the operator attests consent."""
    from ..services.members import register_member  # noqa: PLC0415

    with _station(config) as station:
        view = register_member(
            station,
            phone=phone,
            plates=plate or [],
            name=name,
            consent_channel="cli",
            actor=_actor(user),
            move_plates=move_plates,
        )
    emit(view.to_dict(), as_json=as_json)


@member_app.command("show")
def member_show(
    config: ConfigOption,
    phone: PhoneOption = None,
    plate: PlateOption = None,
    as_json: JsonOption = False,
) -> None:
    """A member's tier, spendable points and plates."""
    with _member_of(config, phone, plate) as (_, view):
        emit(view.to_dict(), as_json=as_json)


@member_app.command("add-plate")
def member_add_plate(
    config: ConfigOption,
    phone: Annotated[str, typer.Option("--phone")],
    new_plate: Annotated[str, typer.Option("--new-plate", help="The plate to attach.")],
    move: Annotated[bool, typer.Option("--move", help="Take it from its current owner.")] = False,
    user: UserOption = None,
    as_json: JsonOption = False,
) -> None:
    """Attach another plate to a member (a plate belongs to one member at a time)."""
    from ..services.members import add_plate, find_member  # noqa: PLC0415

    with _station(config) as station:
        member = find_member(station, phone=phone)
        view = add_plate(station, member.member_id, new_plate, actor=_actor(user), move=move)
    emit(view.to_dict(), as_json=as_json)


def _parse_at(station: Station, at: str | None) -> datetime:
    if at is None:
        return station.now()
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        fail(f"--at: {at!r} is not an ISO 8601 date-time")
        raise
    return moment if moment.tzinfo else moment.replace(tzinfo=station.zone)


@sale_app.command("add")
def sale_add(
    config: ConfigOption,
    pump: Annotated[int, typer.Option("--pump", help="Fuelling point number.")],
    grade: Annotated[str, typer.Option("--grade", help="Grade code of the rule set.")],
    litres: Annotated[str, typer.Option("--litres")],
    amount: Annotated[str, typer.Option("--amount", help="Yuan, 2 decimals.")],
    at: Annotated[str | None, typer.Option("--at", help="End time, ISO 8601.")] = None,
    nozzle: Annotated[int | None, typer.Option("--nozzle")] = None,
    unit_price: Annotated[str | None, typer.Option("--unit-price")] = None,
    phone: PhoneOption = None,
    plate: PlateOption = None,
    key: Annotated[
        str | None, typer.Option("--id", help="Idempotency key: a retry is recorded once.")
    ] = None,
    user: UserOption = None,
    as_json: JsonOption = False,
) -> None:
    """Key in a sale by hand (dispenser link down); audited, earns points like any sale.

    Refused (exit 2, with the reason) outside the station's [sale_limits]."""
    from ..services.manual_sales import manual_source_key  # noqa: PLC0415
    from ..services.members import find_member  # noqa: PLC0415
    from ..services.sales import SaleInput, record_sale  # noqa: PLC0415

    if phone is not None and plate is not None:
        fail("give at most one of --phone or --plate")
    if key is not None and not 8 <= len(key) <= 64:
        fail("--id: 8 to 64 characters")
    with _station(config) as station:
        member_id = None
        if phone is not None or plate is not None:
            member_id = find_member(station, phone=phone, plate=plate).member_id
        outcome = record_sale(
            station,
            SaleInput(
                source="manual",
                pump=pump,
                nozzle=nozzle,
                grade=grade,
                litres=_decimal(litres, "litres"),
                amount=_decimal(amount, "amount"),
                unit_price=None if unit_price is None else _decimal(unit_price, "unit-price"),
                ended_at=_parse_at(station, at),
                source_key=None if key is None else manual_source_key(station, key),
                member_id=member_id,
                actor=_actor(user),
            ),
        )
    emit(outcome.sale.to_dict(), as_json=as_json)


@sale_app.command("reverse")
def sale_reverse(
    config: ConfigOption,
    sale_id: Annotated[str, typer.Option("--sale", help="The sale id.")],
    reason: Annotated[str, typer.Option("--reason")],
    user: UserOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reverse a sale's points with a reason (audited)."""
    from ..services.sales import reverse_sale  # noqa: PLC0415

    with _station(config) as station:
        view = reverse_sale(station, sale_id, actor=_actor(user), reason=reason)
    emit(view.to_dict(), as_json=as_json)


@edge_app.command("sales")
def sales(
    config: ConfigOption,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 20,
    as_json: JsonOption = False,
) -> None:
    """Recent sales with source, member and points."""
    from ..services.sales import list_sales  # noqa: PLC0415

    with _station(config) as station:
        rows = [view.to_dict() for view in list_sales(station, limit)]
    if as_json:
        emit(rows, as_json=True)
    else:
        emit_table(
            rows,
            [
                "ended_at",
                "source",
                "pump",
                "nozzle",
                "grade",
                "litres",
                "amount",
                "member_id",
                "points",
                "status",
            ],
        )


@edge_app.command("redeem")
def redeem(
    config: ConfigOption,
    points: Annotated[int, typer.Option("--points")],
    phone: PhoneOption = None,
    plate: PlateOption = None,
    redemption_id: Annotated[
        str | None, typer.Option("--id", help="Idempotency key: a retry is booked once.")
    ] = None,
    sale_id: Annotated[str | None, typer.Option("--sale", help="Against this sale's bill.")] = None,
    bill: Annotated[str | None, typer.Option("--bill", help="Against a bill of YUAN.")] = None,
    litres: Annotated[
        str | None, typer.Option("--litres", help="The bill's litres (the tier's discount).")
    ] = None,
    user: UserOption = None,
    as_json: JsonOption = False,
) -> None:
    """Redeem points for yuan off; refused beyond the balance, or beyond what a bill has due."""
    from ..services.points import Bill, redeem_points  # noqa: PLC0415

    against = Bill(
        sale_id=sale_id,
        amount=None if bill is None else _decimal(bill, "bill"),
        litres=None if litres is None else _decimal(litres, "litres"),
    )
    with _member_of(config, phone, plate) as (station, member):
        result = redeem_points(
            station,
            member.member_id,
            points,
            actor=_actor(user),
            redemption_id=redemption_id,
            bill=against,
        )
    emit(result.to_dict(), as_json=as_json)


@edge_app.command("adjust")
def adjust(
    config: ConfigOption,
    points: Annotated[int, typer.Option("--points", help="Positive adds, negative deducts.")],
    reason: Annotated[str, typer.Option("--reason")],
    phone: PhoneOption = None,
    plate: PlateOption = None,
    adjustment_id: Annotated[
        str | None, typer.Option("--id", help="Idempotency key: a retry is booked once.")
    ] = None,
    user: UserOption = None,
    as_json: JsonOption = False,
) -> None:
    """A manager's manual points correction, with a reason (audited)."""
    from ..services.points import adjust_member_points  # noqa: PLC0415

    with _member_of(config, phone, plate) as (station, member):
        done = adjust_member_points(
            station,
            member.member_id,
            points,
            actor=_actor(user),
            reason=reason,
            adjustment_id=adjustment_id,
        )
    emit({"member_id": member.member_id, "points": done.balance_after}, as_json=as_json)


@rules_app.command("load")
def rules_load(
    config: ConfigOption,
    file: Annotated[Path, typer.Argument(help="Rule-set JSON document.")],
    user: UserOption = None,
) -> None:
    """Install a rule set locally (for a station that has never reached the cloud)."""
    from ..errors import ServiceError  # noqa: PLC0415
    from ..services.rules import install_ruleset  # noqa: PLC0415

    try:
        text = file.read_bytes()
    except OSError as exc:
        raise ServiceError("rules.file", f"{file}: {exc.strerror}") from exc
    with _station(config) as station:
        ruleset, created = install_ruleset(station, text, actor=_actor(user))
    state = "installed" if created else "already installed"
    typer.echo(
        f"rule set {ruleset.version} ({ruleset.name}) {state}, "
        f"effective from {ruleset.effective_from.isoformat()}"
    )
