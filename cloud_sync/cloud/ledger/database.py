"""Opening the ledger's database: engine settings per backend, transactions, migrations.

SQLite (the default, one file) runs in WAL mode with synchronous=FULL, a busy timeout and
foreign keys, and every write transaction starts with BEGIN IMMEDIATE so two writers queue
instead of failing half-way. PostgreSQL runs at READ COMMITTED with explicit row locks; a
transaction that loses a deadlock or a uniqueness race is simply run again.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from sqlalchemy import Connection, Engine, Table, create_engine, event, insert, inspect, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool

from .aggregates_ledger import rebuild
from .errors import LedgerError
from .heartbeat import create_heartbeat
from .migrate_5 import migrate_5
from .migrate_6 import migrate_6
from .partitions import keep_partitions
from .schema import V1_TABLES, V2_TABLES, V3_TABLES, redemptions, sales, schema_version
from .schema_app import V4_INDEXES, V4_MEMBER_COLUMNS, V4_STATION_COLUMNS, V4_TABLES

__all__ = ["SCHEMA_VERSION", "Database", "PoolSize", "bulk_insert", "normalize_url", "serials"]

_T = TypeVar("_T")

log = logging.getLogger(__name__)

SCHEMA_VERSION = 6
_BUSY_TIMEOUT_MS = 30_000
_ATTEMPTS = 8
_RETRY_PAUSE_S = 0.01  # times the attempt, jittered: racing transactions spread out
# PostgreSQL states worth a second run of the whole transaction: serialization failure,
# deadlock, and a unique key another transaction took between our read and our write.
_RETRY_STATES = frozenset({"40001", "40P01", "23505"})
_MIGRATION_LOCK = 0x6C70_6D69  # pg_advisory_xact_lock keys: "lpmi", "lpch"
_CHANGES_LOCK = 0x6C70_6368


_CITUS_SEQUENTIAL = "SET LOCAL citus.multi_shard_modify_mode TO 'sequential'"


def _has_citus(conn: Connection) -> bool:
    found = conn.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'citus'")
    return found.first() is not None


def _migrate_1(conn: Connection) -> None:
    for table in V1_TABLES:
        table.create(conn, checkfirst=True)


_V1_REDEMPTION_COLUMNS = (
    "station_id, redemption_id, member_id, points, value_fen, allowance_id, shortfall, at, event_id"
)


# The dispenser's facts on each sale (nullable: a 0.6 cloud's sales lack them).
_V2_SALE_COLUMNS = (
    ("source", "TEXT"),
    ("source_key", "TEXT"),
    ("fuelling_point", "BIGINT"),
    ("nozzle", "BIGINT"),
)


def _add_sale_columns(conn: Connection) -> None:
    """Add the sales columns a 0.6 ledger lacks (migration 1 made today's on a new one)."""
    present = {column["name"] for column in inspect(conn).get_columns("sales")}
    for name, sql_type in _V2_SALE_COLUMNS:
        if name not in present:
            conn.exec_driver_sql(f"ALTER TABLE sales ADD COLUMN {name} {sql_type}")


def _migrate_2(conn: Connection) -> None:
    """Station trust: the review tables, and redemptions keyed by (station, id); the
    dispenser's facts on sales.

    A ledger made by this program already has the new key (migration 1 creates today's
    tables); one made by 0.6 is rebuilt: SQLite cannot change a primary key in place.
    """
    for table in V2_TABLES:
        table.create(conn, checkfirst=True)
    _add_sale_columns(conn)
    key = inspect(conn).get_pk_constraint("redemptions")
    if "station_id" in (key.get("constrained_columns") or []):  # schema 2's key, or 5's
        return
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f'ALTER TABLE redemptions DROP CONSTRAINT "{key["name"]}"')
        conn.exec_driver_sql("ALTER TABLE redemptions ADD PRIMARY KEY (station_id, redemption_id)")
        conn.exec_driver_sql("ALTER TABLE redemptions ADD COLUMN member_sent TEXT")
        conn.exec_driver_sql("ALTER TABLE redemptions ADD COLUMN flag TEXT")
    else:
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_redemptions_allowance")
        conn.exec_driver_sql("ALTER TABLE redemptions RENAME TO redemptions_v1")
        redemptions.create(conn)
        columns = _V1_REDEMPTION_COLUMNS
        conn.exec_driver_sql(
            f"INSERT INTO redemptions ({columns}) SELECT {columns} FROM redemptions_v1"  # noqa: S608
        )
        conn.exec_driver_sql("DROP TABLE redemptions_v1")
    # The member id the station named is in the event it pushed; 0.6 kept the survivor.
    named = (
        "(e.body::json -> 'payload' ->> 'member_id')"
        if conn.dialect.name == "postgresql"
        else "json_extract(e.body, '$.payload.member_id')"
    )
    conn.exec_driver_sql(
        f"UPDATE redemptions SET member_sent = COALESCE((SELECT {named} FROM events e "  # noqa: S608
        "WHERE e.event_id = redemptions.event_id), member_id)"
    )


def _migrate_3(conn: Connection) -> None:
    """The HQ console: its users, sessions, audit log, rule drafts, backtests, aggregates;
    the report aggregates of a ledger that already holds sales are filled from it here."""
    for table in V3_TABLES:
        table.create(conn, checkfirst=True)
    _add_station_columns(conn)
    for index in _V3_SALE_INDEXES:
        index.create(conn, checkfirst=True)
    rebuild(conn)


# Schema 3 on tables migration 1 made: a station's revocation, the stations list's and the
# backtest's indexes.
_V3_STATION_COLUMNS = (("revoked_at", "TEXT"),)
_V3_SALE_INDEXES = tuple(
    index
    for index in sales.indexes
    if index.name
    in ("ix_sales_station_end", "ix_sales_differing", "ix_sales_ended", "ix_sales_member")
)


def _add_station_columns(conn: Connection) -> None:
    """Add the stations columns an older ledger lacks (migration 1 made today's on a new one)."""
    _add_columns(conn, "stations", _V3_STATION_COLUMNS)


def _add_columns(conn: Connection, table: str, wanted: Sequence[tuple[str, str]]) -> None:
    present = {column["name"] for column in inspect(conn).get_columns(table)}
    for name, sql_type in wanted:
        if name not in present:
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}")


def _migrate_4(conn: Connection) -> None:
    """The member's app: sessions, codes, check-ins, invoice requests, feedback; marketing
    consent on members; address and coordinates on stations; the indexes of a member's
    redemptions and of stations by latitude."""
    for table in V4_TABLES:
        table.create(conn, checkfirst=True)
    _add_columns(conn, "members", V4_MEMBER_COLUMNS)
    _add_columns(conn, "stations", V4_STATION_COLUMNS)
    for index in V4_INDEXES:
        index.create(conn, checkfirst=True)


_MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    1: _migrate_1,
    2: _migrate_2,
    3: _migrate_3,
    4: _migrate_4,
    5: migrate_5,
    6: migrate_6,
}


def normalize_url(url: str) -> str:
    """postgresql:// (as people write it) means psycopg 3, the driver we ship."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_engine(url: str, *, create: bool) -> Engine:
    parsed = make_url(url)
    database = parsed.database or ""
    in_memory = database in ("", ":memory:")
    if not in_memory:
        path = Path(database)
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.exists():
            raise LedgerError("schema.missing", f"no ledger database at {path}")
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False},
        poolclass=StaticPool if in_memory else None,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we say BEGIN ourselves, see _on_begin
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


@dataclass(frozen=True)
class PoolSize:
    """Connections a PostgreSQL engine keeps open (`size`) and may open beyond (`overflow`),
    and how long a request waits for one (`wait_s`) before the service answers "busy".

    The wait is shorter than a station's request timeout (10 s): under a catch-up storm a
    push that cannot get a connection is told to come back (503, Retry-After) instead of
    being worked on after its station has given up and sent it again.
    """

    size: int = 5
    overflow: int = 10
    wait_s: float = 5.0


class Database:
    """One engine and the ways the ledger uses it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        # A Citus coordinator (docs/scale.md): write transactions run multi-shard statements
        # one connection per worker, so the reference tables a push writes after its
        # members' rows (counters, changes, flags) are not refused.
        self.citus = False

    @classmethod
    def open(cls, url: str, *, create: bool = True, pool: PoolSize | None = None) -> Database:
        """`pool` sizes a PostgreSQL engine's connection pool (SQLAlchemy's defaults if None);
        each serving process opens its own Database, so the sizes are per process."""
        url = normalize_url(url)
        backend = make_url(url).get_backend_name()
        if backend == "sqlite":
            engine = _sqlite_engine(url, create=create)
        elif backend == "postgresql":
            sizes: dict[str, Any] = (
                {}
                if pool is None
                else {
                    "pool_size": pool.size,
                    "max_overflow": pool.overflow,
                    "pool_timeout": pool.wait_s,
                }
            )
            engine = create_engine(url, pool_pre_ping=True, **sizes)
        else:
            raise LedgerError("database.unsupported", f"unsupported database {backend!r}")
        db = cls(engine)
        try:
            if backend == "postgresql":
                db.citus = db.read(_has_citus)
            db.transact(lambda conn: db._migrate(conn, create=create))
            if backend == "postgresql":
                db._keep_partitions()
            db.transact(create_heartbeat)  # outside the numbered schema: see heartbeat.py
        except BaseException:
            engine.dispose()
            raise
        return db

    def close(self) -> None:
        self.engine.dispose()

    def _keep_partitions(self) -> None:
        """The months ahead, should the hourly job be late; a refusal leaves them to it."""
        try:
            self.transact(lambda conn: keep_partitions(conn, datetime.now(UTC)))
        except DBAPIError as exc:
            log.warning("events partitions not checked at open (the hourly job will): %s", exc)

    def transact(
        self, work: Callable[[Connection], _T], *, write: bool = True, snapshot: bool = False
    ) -> _T:
        """Run `work` in one transaction, again from scratch if PostgreSQL asks for a retry.

        `snapshot` gives the whole transaction one view of the data (REPEATABLE READ) where
        answers must agree with each other, such as a changes page and its high-water mark.
        """
        for attempt in range(_ATTEMPTS):
            try:
                with self.engine.connect() as conn:
                    if self.dialect == "sqlite":
                        conn.execution_options(sqlite_begin="IMMEDIATE" if write else "DEFERRED")
                    elif snapshot:
                        conn.execution_options(isolation_level="REPEATABLE READ")
                    with conn.begin():
                        if self.citus and write:
                            conn.exec_driver_sql(_CITUS_SEQUENTIAL)
                        return work(conn)
            except DBAPIError as exc:
                state = getattr(exc.orig, "sqlstate", None)
                if attempt + 1 < _ATTEMPTS and state in _RETRY_STATES:
                    time.sleep(random.uniform(0, _RETRY_PAUSE_S * (attempt + 1)))  # noqa: S311
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def read(self, work: Callable[[Connection], _T]) -> _T:
        return self.transact(work, write=False)

    def lock_changes(self, conn: Connection) -> None:
        """Serialize appends to the changes log until commit, so ids appear in commit order.

        Without it a reader could see change 101 before change 100 commits, move its cursor
        past 100 and never see it. SQLite writers are serialized already.
        """
        if self.dialect == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_CHANGES_LOCK})")

    def insert_ignore(self, conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows whose primary key is not taken yet; leave the others as they are."""
        if not rows:
            return
        stmt = pg_insert(table) if self.dialect == "postgresql" else sqlite_insert(table)
        conn.execute(stmt.on_conflict_do_nothing(), list(rows))

    def _migrate(self, conn: Connection, *, create: bool) -> None:
        if self.dialect == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        if inspect(conn).has_table("schema_version"):
            current = conn.execute(select(schema_version.c.version)).scalar_one_or_none() or 0
        elif create:
            current = 0
        else:
            raise LedgerError("schema.missing", "the database holds no ledger; open it with create")
        if current > SCHEMA_VERSION:
            raise LedgerError(
                "schema.newer",
                f"the ledger database is at schema {current}, newer than this program "
                f"({SCHEMA_VERSION}); upgrade loyalpump",
            )
        if current == SCHEMA_VERSION:
            return
        for version in range(current + 1, SCHEMA_VERSION + 1):
            if current:  # an upgrade (a new ledger is made quietly): say what runs
                log.info("ledger: migrating to schema %d (it commits with the last)", version)
            _MIGRATIONS[version](conn)
        if current:
            log.info("ledger: schema %d to %d done", current, SCHEMA_VERSION)
        conn.execute(schema_version.delete())
        conn.execute(insert(schema_version).values(version=SCHEMA_VERSION))


def bulk_insert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many rows in one go: `COPY` on PostgreSQL, one executemany on SQLite.

    A push writes thousands of rows; SQLAlchemy's per-row parameter processing cost about as
    much as SQLite itself, and on PostgreSQL `COPY … FROM STDIN` takes a batch at about twice
    the rate of a pipelined executemany (benchmarks/cloud_ingest.py). Every row must have the
    same keys (the first row's), and the values must already be what the driver stores (text,
    integers, booleans). A failure is raised as SQLAlchemy's own exception (IntegrityError
    for a taken key), so callers and `Database.transact`'s retry see one kind of error.
    """
    if not rows:
        return
    numbers = serials(conn, table, len(rows), given=rows[0].keys())
    if numbers:  # SQLite: see serials
        rows = [{**row, **{c: n[i] for c, n in numbers.items()}} for i, row in enumerate(rows)]
    columns = list(rows[0])
    unknown = [column for column in columns if column not in table.c]
    if unknown:  # names come from code, never from a request; still, only real columns
        raise ValueError(f"{table.name} has no column {unknown[0]!r}")
    quote = conn.dialect.identifier_preparer.quote
    # Identifiers are the table's own columns, quoted; every value travels as data.
    names = ", ".join(quote(column) for column in columns)
    pick = itemgetter(*columns)  # a tuple per row; one column gives a bare value
    values = [pick(row) for row in rows] if len(columns) > 1 else [(pick(row),) for row in rows]
    if conn.dialect.name == "postgresql":
        _copy_rows(conn, f"COPY {quote(table.name)} ({names}) FROM STDIN", values)
        return
    marks = ", ".join(["?"] * len(columns))
    sql = f"INSERT INTO {quote(table.name)} ({names}) VALUES ({marks})"  # noqa: S608
    conn.exec_driver_sql(sql, values)


def _copy_rows(conn: Connection, statement: str, values: Sequence[tuple[Any, ...]]) -> None:
    """`COPY … FROM STDIN` on the connection's own psycopg connection, in its transaction."""
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)  # the only PostgreSQL driver we configure
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in values:
                copy.write_row(row)
    except psycopg.Error as exc:
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc


def serials(
    conn: Connection, table: Table, count: int, given: Collection[str] = ()
) -> dict[str, list[int]]:
    """On SQLite, the next `count` numbers of the table's serial column, if it has one in a
    composite key (schema 5: events.id, lines.line_id, ...); empty on PostgreSQL, whose
    identity column numbers rows itself.

    SQLite numbers only a single-column INTEGER PRIMARY KEY, so these count on from the
    column's largest value (it leads the key: one index lookup; not the rowid, which a
    VACUUM may renumber); SQLite's writers are serialized, so no two transactions take the
    same numbers. Nothing is read when the rows bring the column (`given`).
    """
    if conn.dialect.name != "sqlite" or count <= 0:
        return {}
    found = [c.name for c in table.primary_key.columns if c.identity is not None]
    if len(table.primary_key.columns) < 2 or not found or found[0] in given:
        return {}
    quote = conn.dialect.identifier_preparer.quote
    column, name = quote(found[0]), quote(table.name)
    top = conn.exec_driver_sql(f"SELECT COALESCE(MAX({column}), 0) FROM {name}")  # noqa: S608
    base = int(top.scalar_one())
    return {found[0]: list(range(base + 1, base + 1 + count))}
