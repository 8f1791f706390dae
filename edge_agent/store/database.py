"""The station's SQLite store: one file, one writer, durable commits.

WAL mode with `synchronous=FULL` means a commit that returned survives a power cut; every
write runs in a `BEGIN IMMEDIATE` transaction, so the write lock is taken up front and a
transaction never fails half-way for lack of it. Nothing upstream acknowledges a sale, a
redemption or a member before `write()` has returned.

The store is private to the agent's user: `edge init` creates the data folder 0700 and the
file 0600 (SQLite gives its -wal and -shm the file's mode), and every open tightens files an
older version left readable; see `store.files`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from .files import PRIVATE_FILE, loose_bits, make_private_dir, tighten
from .migrations import MIGRATIONS, SCHEMA_VERSION

__all__ = [
    "SchemaTooNewError",
    "Store",
    "StoreError",
    "StoreMissingError",
    "Tx",
    "ensure_private_dir",
    "store_files",
]

Tx = sqlite_utils.Database
"""A database handle inside an open transaction; only store functions take one."""

_BUSY_TIMEOUT_MS = 5000


class StoreError(RuntimeError):
    """The store cannot be used; the message says what to do."""


class StoreMissingError(StoreError):
    pass


class SchemaTooNewError(StoreError):
    pass


def _statements(script: str) -> Iterator[str]:
    """Split a migration script into statements (triggers contain ';' of their own)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            buffer = ""
            if statement:
                yield statement
    if buffer.strip():
        raise ValueError(f"incomplete SQL statement in migration: {buffer.strip()[:60]}")


def store_files(path: Path) -> tuple[Path, ...]:
    """The store file and the companions SQLite keeps beside it."""
    return (path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")))


def ensure_private_dir(data_dir: Path) -> None:
    """Refuse a data folder other users can read, write or enter (it holds PIN hashes, keys).

    A missing folder passes (whoever creates it makes it 0700); `edge init` tightens an
    existing one, the daemon refuses to start on it.
    """
    try:
        loose = loose_bits(data_dir)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"data folder {data_dir}: {exc.strerror or exc}") from exc
    if loose:
        mode = loose | (data_dir.stat().st_mode & 0o700)
        raise StoreError(
            f"data folder {data_dir} is open to other users (mode {mode:04o}); "
            f"run: chmod 700 {data_dir}"
        )


class Store:
    """An open station store. Thread-safe: one lock serialises every transaction."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._conn = connection
        self._db = sqlite_utils.Database(connection)
        self._lock = threading.RLock()

    @classmethod
    def open(cls, path: Path, *, create: bool = False) -> Store:
        """Open (and with `create`, create) the store and bring its schema up to date."""
        if not path.exists() and not create:
            raise StoreMissingError(f"no station store at {path}; run `loyalpump edge init`")
        if create:
            make_private_dir(path.parent)
            # SQLite gives the -wal and -shm files the database file's mode: create it 0600.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))
        try:
            conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path} is not a usable SQLite store: {exc}") from exc
        tighten(*store_files(path))  # a store an older version created 0644
        if mode.lower() != "wal":
            conn.close()
            raise StoreError(f"{path}: cannot switch to WAL journal mode (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        store = cls(path, conn)
        try:
            store._migrate()
        except BaseException:
            conn.close()
            raise
        return store

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.schema_version
        if current > SCHEMA_VERSION:
            raise SchemaTooNewError(
                f"{self.path} has schema version {current}, this program knows up to "
                f"{SCHEMA_VERSION}: upgrade loyalpump, do not downgrade a station"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            with self.write() as tx:
                for statement in _statements(MIGRATIONS[version - 1]):
                    tx.execute(statement)
                tx.execute(f"PRAGMA user_version = {version}")

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """A `BEGIN IMMEDIATE` transaction; it is durable on disk when the block exits."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._rollback()
                raise
            try:
                self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()  # never leave the connection inside a dead transaction
                raise

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """A read transaction: a consistent snapshot across several queries."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._db
            finally:
                self._conn.execute("COMMIT")

    def integrity_problems(self) -> list[str]:
        """`PRAGMA integrity_check` and `foreign_key_check`; empty when the file is sound."""
        with self._lock:
            rows = self._conn.execute("PRAGMA integrity_check").fetchall()
            problems = [str(row[0]) for row in rows if row[0] != "ok"]
            problems += [
                f"foreign key: {row[0]} row {row[1]} -> {row[2]}"
                for row in self._conn.execute("PRAGMA foreign_key_check").fetchall()
            ]
            return problems
