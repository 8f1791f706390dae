"""Backups of the station store, the integrity check at start, and restore into a new epoch.

`backup_store` (the daily job and `edge backup`) writes `data_dir/backups/station-<UTC
stamp>.sqlite3` with `VACUUM INTO`, checks it, and keeps the newest `keep`; it first deletes
temporary files that a killed backup left in that folder. The member keys
live outside the store (`data_dir/keys/`) and a backup is unreadable without them, so each
backup also refreshes a copy of every key file in `backups/keys/`: copying the `backups/`
folder off the machine takes everything a restore needs. Key files are only ever added
(enrolment archives the old ones), so restore never replaces one; it only puts back key
files that are missing from `keys/`.

A restored store is behind the cloud: the events it wrote after the backup were numbered
again by the lost store, and the cloud may hold some of them. `restore_store` therefore
starts a new epoch (higher than any this data directory has used) before the store is put
in place; the cloud keeps a high-water mark per (station, epoch), so new events never reuse
an (epoch, seq) it has seen. Events the backup held as pending stay pending in their old
epoch; the cloud answers `duplicate` for those it already has.

A restore refuses to replace a store that passes its integrity check unless forced: the
events that store holds and the cloud has not acknowledged are lost to sync (they stay only
in `backups/replaced-*`), and the result reports how many there were.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..errors import ServiceError
from ..settings import StationSettings
from ..store import Store, StoreError
from ..store.backup import (
    BACKUP_PREFIX,
    copy_durably,
    ensure_private_dir,
    integrity_problems,
    list_backups,
    move_store_aside,
    prune_backups,
    remove_stale_temporaries,
    remove_store_file,
    rename_durably,
    start_new_epoch,
    store_facts,
    unacknowledged_events,
    unique_path,
    vacuum_into,
)
from ..store.lock import LOCK_FILE, AgentLock
from ..store.meta import set_meta
from .station import Station

__all__ = [
    "RestoreResult",
    "backup_store",
    "backups_dir",
    "check_store_on_start",
    "newest_good_backup",
    "restore_store",
]

log = logging.getLogger(__name__)

BACKUPS = "backups"
KEYS = "keys"
EPOCH_MARK = "last-epoch"  # the highest epoch a restore started, should its store be lost
REPLACED_PREFIX = "replaced"


@dataclass(frozen=True)
class RestoreResult:
    backup: Path
    epoch: int  # the new epoch the restored store writes its events under
    first_seq: int  # the sequence number its first new event gets
    replaced: Path | None = None  # where the store it replaced was moved (kept)
    unacknowledged: int = 0  # events the replaced store held unacked (0: none or unreadable)


def backups_dir(settings: StationSettings) -> Path:
    return settings.station.data_dir / BACKUPS


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _copy_keys(source: Path, target: Path, *, overwrite: bool) -> int:
    """Copy key files that are missing in `target` (or differ, with `overwrite`)."""
    if not source.is_dir():
        return 0
    copied = 0
    for path in sorted(source.glob("*.json")):
        mirror = target / path.name
        if mirror.exists() and (not overwrite or mirror.read_bytes() == path.read_bytes()):
            continue
        ensure_private_dir(target)
        copy_durably(path, mirror)
        copied += 1
    return copied


def backup_store(station: Station, *, keep: int = 7) -> Path:
    """Write a checked backup of the store now and keep the newest `keep`; returns its path."""
    if keep < 1:
        raise ServiceError("backup.keep", "keep at least one backup")
    folder = ensure_private_dir(backups_dir(station.settings))
    for stale in remove_stale_temporaries(folder):
        log.warning("deleted %s, left by an interrupted backup", stale)
    target = unique_path(folder, BACKUP_PREFIX, station.clock())
    vacuum_into(station.store, target)
    problems = integrity_problems(target)
    if problems:
        target.unlink(missing_ok=True)  # never rotate a good backup out for a bad one
        raise ServiceError(
            "backup.corrupt",
            f"the backup of {station.store.path} failed its integrity check "
            f"({_one_line(problems[0])}); the store itself may be damaged: run "
            "`loyalpump edge verify`",
        )
    data_dir = station.settings.station.data_dir
    _copy_keys(data_dir / KEYS, folder / KEYS, overwrite=True)
    for path in prune_backups(folder, keep):
        log.info("deleted old backup %s", path)
    log.info("backed up the store to %s", target)
    return target


def newest_good_backup(settings: StationSettings) -> Path | None:
    """The newest `backups/station-*.sqlite3` that passes its integrity check."""
    for path in reversed(list_backups(backups_dir(settings))):
        if not integrity_problems(path):
            return path
    return None


def check_store_on_start(settings: StationSettings) -> None:
    """Refuse a store that fails its integrity check, naming the backup to restore.

    A store that cannot be read for another reason (permissions, a lock) raises the
    `StoreError` saying so: it is not corrupt, and restoring would replace good data.
    """
    path = settings.store_path
    if not path.exists():
        return  # `edge init` creates it; opening the store says so
    problems = integrity_problems(path, max_version=None)  # too new: Store.open explains
    if not problems:
        return
    head = f"{path} failed its integrity check ({_one_line(problems[0])})"
    good = newest_good_backup(settings)
    if good is None:
        raise ServiceError(
            "store.corrupt",
            f"{head}; there is no good backup in {backups_dir(settings)}: keep the file for "
            "a recovery attempt and do not run the agent on it",
        )
    raise ServiceError(
        "store.corrupt",
        f"{head}; the newest good backup is {good}: stop the agent and run "
        f"`loyalpump edge restore {good}`",
    )


def _highest_epoch_seen(settings: StationSettings) -> int:
    """The highest epoch any store of this data directory has used, as far as files say.

    The store being replaced may be too damaged to read; the epoch mark written by every
    restore and the stores kept in `backups/` cover it.
    """
    folder = backups_dir(settings)
    highest = 0
    mark = folder / EPOCH_MARK
    try:
        highest = int(mark.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        highest = 0
    candidates = [settings.store_path, *sorted(folder.glob("*.sqlite3"))]
    for path in candidates:
        if not path.is_file():
            continue
        try:
            highest = max(highest, store_facts(path).epoch)
        except StoreError:
            log.warning("%s: epoch unreadable, not counted", path)
    return highest


def _write_mark(folder: Path, epoch: int) -> None:
    source = folder / f".{EPOCH_MARK}.new"
    source.write_text(f"{epoch}\n", encoding="ascii")
    copy_durably(source, folder / EPOCH_MARK)
    source.unlink()


def _chosen_backup(settings: StationSettings, backup: Path | None) -> Path:
    if backup is None:
        found = newest_good_backup(settings)
        if found is None:
            raise ServiceError(
                "restore.no_backup", f"no good backup in {backups_dir(settings)} to restore"
            )
        return found
    if not backup.is_file():
        raise ServiceError("restore.backup_missing", f"{backup}: no such file")
    if backup.resolve() == settings.store_path.resolve():
        raise ServiceError("restore.same_file", f"{backup} is the store itself, not a backup")
    problems = integrity_problems(backup)
    if problems:
        raise ServiceError(
            "restore.backup_corrupt",
            f"{backup} failed its integrity check ({_one_line(problems[0])}); "
            "choose another backup",
        )
    return backup


def _refuse_running_agent(data_dir: Path) -> AgentLock:
    lock = AgentLock(data_dir)
    try:
        lock.acquire()
    except StoreError:
        try:
            holder = (data_dir / LOCK_FILE).read_text(encoding="ascii").strip()
        except OSError:
            holder = ""
        pid = f" (pid {holder})" if holder else ""
        raise ServiceError(
            "restore.agent_running",
            f"the agent is running on {data_dir}{pid}: stop it (systemctl stop "
            "loyalpump-edge) before restoring",
        ) from None
    return lock


def _current_store(settings: StationSettings, *, force: bool) -> int:
    """Unacked events in the store about to be replaced; refuse a healthy one unless forced."""
    path = settings.store_path
    if not path.exists():
        return 0
    try:
        healthy = not integrity_problems(path, max_version=None)
    except StoreError:
        if not force:
            raise  # unreadable but not corrupt: the operator must look before replacing it
        healthy = False
    try:
        pending = unacknowledged_events(path)
    except StoreError:
        pending = 0
    if healthy and not force:
        raise ServiceError(
            "restore.store_healthy",
            f"{path} passed its integrity check; it holds {pending} events the cloud has not "
            "acknowledged; restore anyway with --force",
        )
    return pending


def restore_store(
    settings: StationSettings, backup: Path | None = None, *, force: bool = False
) -> RestoreResult:
    """Put a backup (default: the newest good one) in place of the store, in a new epoch.

    The current store and its WAL are moved to `backups/replaced-<stamp>.sqlite3`, never
    deleted. The new epoch is committed in the copy before it is renamed into place, so no
    crash can leave the backup in place writing under its old epoch. A store that passes its
    integrity check is only replaced with `force`: its unacknowledged events leave sync.
    """
    data_dir = settings.station.data_dir
    lock = _refuse_running_agent(data_dir)
    try:
        chosen = _chosen_backup(settings, backup)
        facts = store_facts(chosen)
        if facts.station_id != settings.station.id:
            raise ServiceError(
                "restore.other_station",
                f"{chosen} is a store of station {facts.station_id}, this is {settings.station.id}",
            )
        unacknowledged = _current_store(settings, force=force)
        folder = ensure_private_dir(backups_dir(settings))
        above = _highest_epoch_seen(settings)
        store_path = settings.store_path
        staging = store_path.with_name(store_path.name + ".restoring")
        remove_store_file(staging)
        copy_durably(chosen, staging)
        moment = datetime.now(UTC)
        try:
            with Store.open(staging) as store, store.write() as tx:
                new = start_new_epoch(tx, above=above)
                set_meta(tx, "restored_from", chosen.name)
                set_meta(tx, "restored_at", moment.isoformat())
        except BaseException:
            remove_store_file(staging)
            raise
        _write_mark(folder, new.epoch)
        replaced = None
        if store_path.exists():
            replaced = move_store_aside(store_path, unique_path(folder, REPLACED_PREFIX, moment))
        rename_durably(staging, store_path)
        restored_keys = _copy_keys(folder / KEYS, data_dir / KEYS, overwrite=False)
        if restored_keys:
            log.warning("put back %d member key files from %s", restored_keys, folder / KEYS)
    finally:
        lock.release()
    log.info("restored %s as epoch %d from seq %d", chosen, new.epoch, new.first_seq)
    if unacknowledged:
        log.warning(
            "the replaced store %s held %d events the cloud had not acknowledged",
            replaced,
            unacknowledged,
        )
    return RestoreResult(chosen, new.epoch, new.first_seq, replaced, unacknowledged)
