"""Store backups as files: `VACUUM INTO` copies, integrity checks, rotation, new epochs.

A backup is taken on its own read-only connection: in WAL mode it reads one consistent
snapshot while the store's connection keeps recording sales, so a backup never holds the
writer lock. Every file is written under a temporary name, fsynced and renamed into place,
so a crash leaves either the previous state or a complete file, never half a backup. A kill
can still leave the temporary file behind; `remove_stale_temporaries` deletes those.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .database import Store, StoreError, Tx
from .files import fsync_path
from .meta import get_meta, set_meta
from .migrations import SCHEMA_VERSION

__all__ = [
    "BACKUP_PREFIX",
    "NewEpoch",
    "StoreFacts",
    "copy_durably",
    "ensure_private_dir",
    "integrity_problems",
    "list_backups",
    "move_store_aside",
    "prune_backups",
    "remove_stale_temporaries",
    "remove_store_file",
    "rename_durably",
    "start_new_epoch",
    "store_facts",
    "unacknowledged_events",
    "unique_path",
    "vacuum_into",
]

BACKUP_PREFIX = "station"
_SUFFIX = ".sqlite3"
_STAMP = "%Y%m%dT%H%M%SZ"
_NAME = re.compile(r"^(?P<prefix>[a-z]+)-(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<n>\d+))?\.sqlite3$")
_COMPANIONS = ("-wal", "-shm", "-journal")  # files SQLite keeps next to a database
_TIMEOUT_S = 5.0
_STALE_AFTER_S = 3600.0  # a temp file untouched this long belongs to no running backup
_CORRUPTION = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
_HINTS = {
    sqlite3.SQLITE_CANTOPEN: "check its owner and mode",
    sqlite3.SQLITE_PERM: "check its owner and mode",
    sqlite3.SQLITE_READONLY: "check its owner and mode",
    sqlite3.SQLITE_BUSY: "another process holds it locked; stop that process and retry",
    sqlite3.SQLITE_LOCKED: "another process holds it locked; stop that process and retry",
    sqlite3.SQLITE_IOERR: "the disk failed to read it; check the disk",
}


@dataclass(frozen=True)
class StoreFacts:
    station_id: str | None
    epoch: int  # the highest epoch in meta and the outbox (0 for none)
    max_seq: int  # the highest outbox sequence number (0 for none)


@dataclass(frozen=True)
class NewEpoch:
    epoch: int
    first_seq: int


def ensure_private_dir(directory: Path) -> Path:
    """Create `directory` (mode 0700): backups hold member data sealed only by the keys."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    return directory


def _create_private(path: Path) -> None:
    """An empty file only the owner can read, created before any data goes into it."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def _temporary(target: Path) -> Path:
    return target.with_name(f".{target.name}.tmp")


@contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection; a WAL file beside `path` is read too (committed data)."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=_TIMEOUT_S, check_same_thread=False)
    try:
        yield conn
    finally:
        conn.close()


def vacuum_into(store: Store, target: Path) -> Path:
    """Write a complete, consistent copy of `store` to `target` (0600, fsynced, renamed).

    The copy is in rollback-journal mode, compact, and self-contained (no -wal beside it).
    """
    ensure_private_dir(target.parent)
    temporary = _temporary(target)
    _remove(temporary)
    _create_private(temporary)  # VACUUM INTO accepts an empty file and keeps its mode
    try:
        with _read_only(store.path) as conn:
            conn.execute("VACUUM INTO ?", [str(temporary)])
        fsync_path(temporary)
        os.replace(temporary, target)
    except sqlite3.Error as exc:
        _remove(temporary)
        raise StoreError(f"cannot back up {store.path} to {target}: {exc}") from exc
    except BaseException:
        _remove(temporary)
        raise
    fsync_path(target.parent)
    return target


def integrity_problems(path: Path, *, max_version: int | None = SCHEMA_VERSION) -> list[str]:
    """What is wrong with the SQLite file at `path` (empty when it is a sound station store).

    Opened read-only. `PRAGMA integrity_check` reads every page; the schema version must be
    one this program wrote (1 .. `max_version`; None accepts newer ones, which `Store.open`
    refuses with its own message). A file that is not SQLite at all is a problem, not a crash.

    Only corruption is a problem: any other error (permissions, a lock, an I/O error) is
    raised as `StoreError`, since calling a healthy store corrupt leads to it being replaced.
    """
    if not path.exists():
        return [f"{path}: no such file"]
    if not path.is_file():
        raise StoreError(f"cannot open {path}: it is not a regular file")
    try:
        with _read_only(path) as conn:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
            problems = [str(row[0]) for row in rows if row[0] != "ok"]
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        primary = None if code is None else code & 0xFF  # extended codes keep it in the low byte
        if primary in _CORRUPTION:
            return [f"not a readable SQLite database: {exc}"]
        hint = _HINTS.get(primary) if primary is not None else None
        raise StoreError(f"cannot open {path}: {exc}" + (f" ({hint})" if hint else "")) from exc
    if version < 1:
        problems.append(f"schema version {version}: not a loyalpump station store")
    elif max_version is not None and version > max_version:
        problems.append(
            f"schema version {version} is newer than this program knows ({max_version})"
        )
    return problems


def store_facts(path: Path) -> StoreFacts:
    """The station id, highest epoch and highest sequence number recorded in a store file."""
    try:
        with _read_only(path) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'station_id'").fetchone()
            meta_epoch = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
            top_epoch, top_seq = conn.execute(
                "SELECT coalesce(max(epoch), 0), coalesce(max(seq), 0) FROM outbox"
            ).fetchone()
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot read the store's epoch: {exc}") from exc
    epoch = max(int(top_epoch), int(meta_epoch[0]) if meta_epoch else 0)
    return StoreFacts(None if row is None else str(row[0]), epoch, int(top_seq))


def unacknowledged_events(path: Path) -> int:
    """How many outbox events in the store at `path` the cloud has not acknowledged."""
    try:
        with _read_only(path) as conn:
            (count,) = conn.execute("SELECT count(*) FROM outbox WHERE acked_at IS NULL").fetchone()
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot count its unacknowledged events: {exc}") from exc
    return int(count)


def start_new_epoch(tx: Tx, *, above: int = 0) -> NewEpoch:
    """Make the store write its next events under an epoch no earlier store has used.

    The epoch is one more than the highest in this store (meta and outbox) and `above`;
    sequence numbers go on densely, so the first new event is max(seq) + 1, and that is what
    `epoch_first_seq` reports for the new epoch once it holds events.
    """
    meta_epoch = int(get_meta(tx, "epoch") or 0)
    top_epoch, top_seq = tx.execute(
        "SELECT coalesce(max(epoch), 0), coalesce(max(seq), 0) FROM outbox"
    ).fetchone()
    epoch = max(meta_epoch, int(top_epoch), above) + 1
    set_meta(tx, "epoch", str(epoch))
    return NewEpoch(epoch, int(top_seq) + 1)


def copy_durably(source: Path, target: Path) -> Path:
    """Copy `source` to `target` (0600) through a temporary file, fsynced, then renamed."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = _temporary(target)
    _remove(temporary)
    _create_private(temporary)
    try:
        with source.open("rb") as reader, temporary.open("r+b") as writer:
            shutil.copyfileobj(reader, writer, 1 << 20)
            writer.flush()
            os.fsync(writer.fileno())
        os.replace(temporary, target)
    except BaseException:
        _remove(temporary)
        raise
    fsync_path(target.parent)
    return target


def rename_durably(source: Path, target: Path) -> Path:
    """Rename a closed store file into place (fsynced first); it must have no WAL beside it."""
    if source.with_name(source.name + "-wal").exists():
        raise StoreError(f"{source} still has a WAL file: it is open elsewhere")
    fsync_path(source)
    os.replace(source, target)
    fsync_path(target.parent)
    return target


def unique_path(folder: Path, prefix: str, moment: datetime) -> Path:
    """`<prefix>-<UTC yyyymmddThhmmssZ>.sqlite3`, with `-1`, `-2`… if that second is taken."""
    stamp = moment.astimezone(UTC).strftime(_STAMP)
    path = folder / f"{prefix}-{stamp}{_SUFFIX}"
    n = 0
    while path.exists() or _temporary(path).exists():
        n += 1
        path = folder / f"{prefix}-{stamp}-{n}{_SUFFIX}"
    return path


def list_backups(folder: Path, prefix: str = BACKUP_PREFIX) -> list[Path]:
    """The backups named `<prefix>-<stamp>[-n].sqlite3` in `folder`, oldest first."""
    if not folder.is_dir():
        return []
    found: list[tuple[str, int, Path]] = []
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match and match["prefix"] == prefix and path.is_file():
            found.append((match["stamp"], int(match["n"] or 0), path))
    return [path for _, _, path in sorted(found)]


def prune_backups(folder: Path, keep: int, prefix: str = BACKUP_PREFIX) -> list[Path]:
    """Delete the oldest backups beyond the newest `keep`; returns what was deleted."""
    if keep < 1:
        raise ValueError("keep at least one backup")
    doomed = list_backups(folder, prefix)[:-keep]
    for path in doomed:
        _remove(path)
    if doomed:
        fsync_path(folder)
    return doomed


def remove_stale_temporaries(
    folder: Path, prefix: str = BACKUP_PREFIX, *, older_than_s: float = _STALE_AFTER_S
) -> list[Path]:
    """Delete `.<prefix>-*.sqlite3.tmp` files a killed backup left behind; returns them.

    Only files untouched for `older_than_s`: a backup running beside this one (`edge backup`
    while the daily job runs) keeps writing its temporary file and must not lose it.
    """
    if not folder.is_dir():
        return []
    cutoff = time.time() - older_than_s
    removed = []
    for path in folder.glob(f".{prefix}-*{_SUFFIX}.tmp"):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:
            continue  # finished or removed by another process meanwhile
    if removed:
        fsync_path(folder)
    return removed


def remove_store_file(path: Path) -> None:
    """Delete a (temporary) store file and its companions."""
    for companion in _COMPANIONS:
        _remove(path.with_name(path.name + companion))
    _remove(path)


def move_store_aside(store_path: Path, target: Path) -> Path:
    """Rename a store and its -wal/-shm/-journal companions to `target` (kept, never deleted).

    The companions move with it, so `target` opens with every transaction it had committed,
    and no stale WAL is left beside `store_path` to be replayed into another file.
    """
    ensure_private_dir(target.parent)
    for companion in _COMPANIONS:
        beside = store_path.with_name(store_path.name + companion)
        if beside.exists():
            os.replace(beside, target.with_name(target.name + companion))
    os.replace(store_path, target)
    fsync_path(target.parent)
    fsync_path(store_path.parent)
    return target
