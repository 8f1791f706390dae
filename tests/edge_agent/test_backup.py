"""Backups on real SQLite files: VACUUM INTO rotation, the integrity check at start, and a
restore that starts a new epoch so the cloud never sees one (epoch, seq) twice."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from cloud_sync.cloud.ledger import AllowancePolicy, CloudLedger
from cloud_sync.cloud.server.app import build_cloud_app
from cloud_sync.cloud.server.rules import publish_ruleset
from cloud_sync.cloud.server.settings import CloudSettings
from cloud_sync.core.privacy import MemberKeys
from cloud_sync.core.signing import generate_signing_key
from edge_agent.errors import ServiceError
from edge_agent.services.backup import (
    backup_store,
    backups_dir,
    check_store_on_start,
    newest_good_backup,
    restore_store,
)
from edge_agent.services.members import find_member, register_member
from edge_agent.services.points import redeem_points, verify_ledger
from edge_agent.services.sales import list_sales
from edge_agent.services.station import Station, open_station
from edge_agent.services.sync import build_engine
from edge_agent.settings import StationSettings
from edge_agent.store import StoreError
from edge_agent.store import backup as store_backup
from edge_agent.store.backup import integrity_problems, list_backups, store_facts
from edge_agent.store.lock import AgentLock
from edge_agent.store.outbox import (
    acknowledge,
    epoch_first_seq,
    pending_batch,
    pending_events,
)
from tests.cloud.chain import ADMIN_TOKEN, open_chain_station
from tests.support import RULESETS, SHANGHAI, FakeClock, make_settings, manual_sale

LOYALPUMP = str(Path(sys.executable).with_name("loyalpump"))
PAGE = 4096


def _sale(station: Station, litres: str, member_id: str | None) -> int:
    return manual_sale(station, litres, member_id, nozzle=1).points


def _member(station: Station, phone: str = "13800138000") -> str:
    return register_member(
        station, phone=phone, plates=("粤B12345",), consent_channel="test", actor="cashier1"
    ).member_id


def _reopen(settings: StationSettings, clock: FakeClock) -> Station:
    return open_station(settings, clock=clock)


def _corrupt(path: Path) -> None:
    """Overwrite a whole page in the middle of the file, as a failing disk would."""
    pages = path.stat().st_size // PAGE
    with path.open("r+b") as file:
        file.seek((pages // 2) * PAGE)
        file.write(bytes(range(256)) * (PAGE // 256))


def _all_events(station: Station) -> list[Any]:
    with station.store.read() as tx:
        return pending_events(tx, 10_000)


# --- backup --------------------------------------------------------------------------------


def test_backup_is_private_complete_and_carries_the_member_keys(station: Station) -> None:
    member = _member(station)
    _sale(station, "40.00", member)
    path = backup_store(station)
    folder = backups_dir(station.settings)
    assert path.parent == folder
    assert path.name.startswith("station-20261123T010000Z")  # 09:00 Shanghai in UTC
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert integrity_problems(path) == []
    assert not path.with_name(path.name + "-wal").exists()
    facts = store_facts(path)
    assert (facts.station_id, facts.epoch, facts.max_seq) == ("S001", 1, len(_all_events(station)))
    keys = folder / "keys" / "member-keys.json"
    original = station.settings.station.data_dir / "keys" / "member-keys.json"
    assert keys.read_bytes() == original.read_bytes()
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_backup_deletes_stale_temporaries_of_killed_backups(station: Station) -> None:
    folder = backups_dir(station.settings)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    stale = folder / ".station-20261120T010000Z.sqlite3.tmp"  # a kill mid-VACUUM left it
    stale.write_bytes(b"half a backup")
    an_hour_ago = time.time() - 2 * 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    running = folder / ".station-20261123T005959Z.sqlite3.tmp"  # another backup is writing it
    running.write_bytes(b"in progress")
    other = folder / ".last-epoch.new"
    other.write_text("1\n", encoding="ascii")
    os.utime(other, (an_hour_ago, an_hour_ago))
    backup_store(station)
    assert not stale.exists()
    assert running.exists() and other.exists()


def test_rotation_keeps_the_newest_seven(station: Station, clock: FakeClock) -> None:
    made = []
    for day in range(9):
        made.append(backup_store(station))
        if day < 8:
            clock.advance(days=1)
    same_second = backup_store(station)  # that second is taken: a suffix, sorted after it
    assert same_second.name == made[-1].name.replace(".sqlite3", "-1.sqlite3")
    kept = list_backups(backups_dir(station.settings))
    assert kept == [*made[3:], same_second]
    assert newest_good_backup(station.settings) == same_second
    assert backup_store(station, keep=2) and len(list_backups(backups_dir(station.settings))) == 2
    with pytest.raises(ServiceError):
        backup_store(station, keep=0)


# --- integrity at start --------------------------------------------------------------------


def test_integrity_problems_for_files_that_are_not_stores(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database at all " * 200)
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    assert integrity_problems(junk)[0].startswith("not a readable SQLite database")
    assert "not a loyalpump station store" in integrity_problems(empty)[0]
    assert "no such file" in integrity_problems(tmp_path / "missing.sqlite3")[0]
    truncated = tmp_path / "truncated.sqlite3"
    truncated.write_bytes(b"SQLite format 3\x00" + bytes(40))
    assert integrity_problems(truncated)[0].startswith("not a readable SQLite database")
    with pytest.raises(StoreError, match="not a regular file"):
        integrity_problems(tmp_path)


def test_a_locked_store_is_reported_as_locked_not_corrupt(
    station: Station, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = station.settings
    backup_store(station)
    station.close()
    monkeypatch.setattr(store_backup, "_TIMEOUT_S", 0.05)
    holder = sqlite3.connect(settings.store_path, isolation_level=None)
    try:
        holder.execute("PRAGMA journal_mode=DELETE")  # WAL would let readers through
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreError) as locked:
            integrity_problems(settings.store_path)
        assert "database is locked" in str(locked.value)
        assert "not a readable" not in str(locked.value)
        with pytest.raises(StoreError, match="database is locked") as at_start:
            check_store_on_start(settings)
        assert not isinstance(at_start.value, ServiceError)
        with pytest.raises(StoreError, match="database is locked"):
            restore_store(settings)  # neither healthy nor corrupt as far as anyone can tell
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    check_store_on_start(settings)
    assert not list(backups_dir(settings).glob("replaced-*"))


def test_a_corrupted_store_is_refused_naming_the_newest_good_backup(
    station: Station, clock: FakeClock
) -> None:
    settings = station.settings
    member = _member(station)
    for n in range(30):  # enough rows that page 2 holds real data
        _sale(station, f"{10 + n}.00", member)
    older = backup_store(station)
    clock.advance(hours=1)
    newest = backup_store(station)
    clock.advance(hours=1)
    damaged_backup = backup_store(station)
    station.close()
    check_store_on_start(settings)  # sound: nothing to say

    _corrupt(damaged_backup)
    _corrupt(settings.store_path)
    assert integrity_problems(settings.store_path)
    with pytest.raises(ServiceError) as refused:
        check_store_on_start(settings)
    message = str(refused.value)
    assert refused.value.code == "store.corrupt"
    assert f"{settings.store_path} failed its integrity check (" in message
    assert f"the newest good backup is {newest}" in message
    assert f"`loyalpump edge restore {newest}`" in message
    assert "\n" not in message
    assert older != newest

    for path in list_backups(backups_dir(settings)):
        path.unlink()
    with pytest.raises(ServiceError, match="there is no good backup in"):
        check_store_on_start(settings)


# --- restore -------------------------------------------------------------------------------


def test_round_trip_members_sales_and_points_survive(station: Station, clock: FakeClock) -> None:
    settings = station.settings
    member = _member(station)
    earned = _sale(station, "80.00", member) + _sale(station, "70.00", member)
    redeem_points(station, member, 100, actor="cashier1")
    before = find_member(station, phone="13800138000").to_dict()
    sales_before = [view.to_dict() for view in list_sales(station, 100)]
    backup = backup_store(station)
    clock.advance(minutes=5)
    _sale(station, "50.00", member)  # lost by the restore; kept in the replaced store
    station.close()

    result = restore_store(settings, force=True)
    assert result.backup == backup
    assert result.replaced is not None and result.replaced.exists()
    assert result.replaced.name.startswith("replaced-")
    assert store_facts(result.replaced).max_seq == store_facts(backup).max_seq + 1
    assert result.unacknowledged == store_facts(result.replaced).max_seq  # nothing synced

    with _reopen(settings, clock) as restored:
        assert find_member(restored, phone="13800138000").to_dict() == before
        assert find_member(restored, plate="粤B12345").member_id == member
        assert before["points"] == earned - 100 > 0
        assert [view.to_dict() for view in list_sales(restored, 100)] == sales_before
        assert verify_ledger(restored) == []
        assert restored.store.integrity_problems() == []


def test_restored_store_writes_a_new_epoch_after_the_restored_seqs(
    station: Station, clock: FakeClock
) -> None:
    settings = station.settings
    member = _member(station)
    _sale(station, "40.00", member)
    with station.store.write() as tx:  # the cloud stored everything so far
        acknowledge(tx, 1, [e.seq for e in pending_events(tx, 100)], clock.now.isoformat())
    _sale(station, "20.00", member)  # pending at backup time
    backed_up = _all_events(station)
    top = max(event.seq for event in backed_up)
    backup_store(station)
    _sale(station, "10.00", member)  # seq top+1 of epoch 1: the cloud may already have it
    station.close()

    result = restore_store(settings, force=True)
    assert (result.epoch, result.first_seq) == (2, top + 1)
    assert result.unacknowledged == 2  # the pending sale and the one after the backup
    with _reopen(settings, clock) as restored:
        _sale(restored, "33.00", member)
        events = _all_events(restored)
        assert [(e.epoch, e.seq) for e in events] == [(1, e.seq) for e in backed_up] + [
            (2, top + 1)
        ]
        assert verify_ledger(restored) == []
        with restored.store.read() as tx:
            first = pending_batch(tx, 1000)  # the old epoch's pending events go first
            assert [(e.epoch, e.seq) for e in first] == [(1, e.seq) for e in backed_up]
        with restored.store.write() as tx:
            acknowledge(tx, 1, [e.seq for e in first], clock.now.isoformat())
        with restored.store.read() as tx:
            batch = pending_batch(tx, 1000)
            assert [(e.epoch, e.seq) for e in batch] == [(2, top + 1)]
            assert epoch_first_seq(tx, 2) == top + 1  # the cloud starts its mark at top
            assert epoch_first_seq(tx, 1) == 1

    # Restoring the same backup again must not hand out epoch 2 a second time, even with
    # the stores it replaced deleted.
    for path in backups_dir(settings).glob("replaced-*"):
        path.unlink()
    again = restore_store(settings, force=True)
    assert (again.epoch, again.first_seq) == (3, top + 1)


def test_restore_refuses_while_the_agent_runs(station: Station) -> None:
    settings = station.settings
    backup_store(station)
    station.close()
    before = settings.store_path.read_bytes()
    with AgentLock(settings.station.data_dir), pytest.raises(ServiceError) as refused:
        restore_store(settings)
    assert refused.value.code == "restore.agent_running"
    assert f"(pid {os.getpid()})" in str(refused.value)
    assert settings.store_path.read_bytes() == before
    assert not list(backups_dir(settings).glob("replaced-*"))


def test_restore_refuses_a_healthy_store_unless_forced(station: Station) -> None:
    settings = station.settings
    member = _member(station)
    for n in range(30):  # enough rows that page 2 holds real data
        _sale(station, f"{10 + n}.00", member)
    backup_store(station)
    pending = len(_all_events(station))
    station.close()
    before = settings.store_path.read_bytes()
    with pytest.raises(ServiceError) as refused:
        restore_store(settings)
    assert refused.value.code == "restore.store_healthy"
    assert str(refused.value) == (
        f"{settings.store_path} passed its integrity check; it holds {pending} events the "
        "cloud has not acknowledged; restore anyway with --force"
    )
    assert settings.store_path.read_bytes() == before
    assert not list(backups_dir(settings).glob("replaced-*"))
    assert not (backups_dir(settings) / "last-epoch").exists()

    _corrupt(settings.store_path)  # a damaged store needs no --force
    result = restore_store(settings)
    assert result.replaced is not None and result.replaced.exists()
    assert result.epoch == 2


def test_restore_refuses_bad_backups(station: Station, tmp_path: Path) -> None:
    settings = station.settings
    good = backup_store(station)
    station.close()
    bad = good.with_name("copy.sqlite3")
    bad.write_bytes(good.read_bytes())
    _corrupt(bad)
    cases = {
        "restore.backup_corrupt": bad,
        "restore.backup_missing": tmp_path / "nothing.sqlite3",
        "restore.same_file": settings.store_path,
    }
    other = open_station(make_settings(tmp_path / "other", "S002"), create=True)
    cases["restore.other_station"] = backup_store(other)
    other.close()
    for code, path in cases.items():
        with pytest.raises(ServiceError) as refused:
            restore_store(settings, path)
        assert refused.value.code == code, path
    empty = make_settings(tmp_path / "empty")
    with pytest.raises(ServiceError, match="no good backup in"):
        restore_store(empty)


def test_restore_puts_back_missing_member_keys_only(station: Station, clock: FakeClock) -> None:
    settings = station.settings
    member = _member(station)
    backup_store(station)
    station.close()
    keys = settings.station.data_dir / "keys" / "member-keys.json"
    original = keys.read_bytes()
    keys.unlink()
    restore_store(settings, force=True)
    assert keys.read_bytes() == original
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    with _reopen(settings, clock) as restored:
        assert find_member(restored, phone="13800138000").member_id == member


# --- the CLI as a user runs it -------------------------------------------------------------


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOYALPUMP, *args], capture_output=True, text=True, timeout=60, check=False
    )


def _refused(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]


def test_cli_backup_and_restore(tmp_path: Path) -> None:
    config = tmp_path / "station.toml"
    config.write_text('[station]\nid = "S001"\ndata_dir = "data"\n', encoding="utf-8")
    assert _run("edge", "init", "-c", str(config)).returncode == 0
    rules = RULESETS / "field-examples.json"
    assert _run("edge", "rules", "load", "-c", str(config), str(rules)).returncode == 0
    member = _run("edge", "member", "add", "-c", str(config), "--phone", "13800138000")
    assert member.returncode == 0, member.stderr

    made = _run("edge", "backup", "-c", str(config), "--json")
    assert made.returncode == 0, made.stderr
    path = Path(json.loads(made.stdout)["backup"])
    assert path.is_file() and path.parent == tmp_path / "data" / "backups"
    assert _run("edge", "backup", "-c", str(config)).stdout.strip().endswith(".sqlite3")

    with AgentLock(tmp_path / "data"):
        _refused(_run("edge", "restore", "-c", str(config)), "stop it")
    _refused(_run("edge", "restore", "-c", str(config), str(tmp_path / "no.sqlite3")), "no such")
    _refused(_run("edge", "restore", "-c", str(config), str(path)), "restore anyway with --force")

    restored = _run("edge", "restore", "-c", str(config), str(path), "--force", "--json")
    assert restored.returncode == 0, restored.stderr
    report = json.loads(restored.stdout)
    assert report["backup"] == str(path) and report["epoch"] == 2
    assert Path(report["replaced"]).is_file()
    assert report["unacknowledged"] == store_facts(Path(report["replaced"])).max_seq
    text = _run("edge", "restore", "-c", str(config), "--force")
    assert text.returncode == 0 and "new epoch 3" in text.stdout
    assert "events the cloud had not acknowledged" in text.stdout
    shown = _run("edge", "member", "show", "-c", str(config), "--phone", "13800138000")
    assert shown.returncode == 0, shown.stderr
    assert _run("edge", "verify", "-c", str(config)).returncode == 0


# --- end to end with the real cloud ledger -------------------------------------------------


def test_a_restored_station_syncs_with_the_real_cloud_without_conflicts(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI))
    chain_keys = MemberKeys.generate("chain-1")
    ledger = CloudLedger.open(
        f"sqlite:///{tmp_path / 'cloud.sqlite3'}",
        chain_keys=chain_keys,
        policy=AllowancePolicy(points=3_000, per_member_cap=800),
    )
    signing_key = generate_signing_key()
    publish_ruleset(ledger, signing_key, (RULESETS / "field-examples.json").read_bytes(), clock.now)
    app = build_cloud_app(
        CloudSettings.model_validate(
            {"cloud": {"data_dir": str(tmp_path / "cloud"), "admin_token": ADMIN_TOKEN}}
        ),
        ledger=ledger,
        signing_key=signing_key,
        clock=lambda: clock.now.astimezone(UTC),
        chain_keys=chain_keys,
    )
    token = ledger.add_station("S1", None, clock.now)
    with TestClient(app) as client:
        transport = client._transport
        station = open_chain_station(tmp_path / "S1", "S1", "https://cloud.test", token, clock)
        settings = station.settings
        member = _member(station)
        _sale(station, "40.00", member)
        assert build_engine(station, transport=transport).run_cycle().ok
        backup_store(station)
        _sale(station, "20.00", member)  # the cloud gets it; the restore loses it
        assert build_engine(station, transport=transport).run_cycle().ok
        (cloud,) = ledger.stations()
        assert cloud["epochs"] == [{"epoch": 1, "high_water": 4}]
        station.close()

        result = restore_store(settings, force=True)
        assert (result.epoch, result.first_seq) == (2, 4)  # seq 4 of epoch 1: another event
        with open_station(settings, clock=clock) as restored:
            clock.advance(minutes=10)
            _sale(restored, "30.00", member)
            cycle = build_engine(restored, transport=transport).run_cycle()
            assert cycle.ok, cycle
            assert cycle.backlog_after.pending == 0
            assert verify_ledger(restored) == []
        assert ledger.ledger_problems() == []
        totals = ledger.totals()
        assert totals["events_rejected"] == 0
        found = ledger.find_member(phone="13800138000", now=clock.now)
        assert found is not None
        assert found["points"] == 40 + 20 + 30  # every sale once, the lost one included
    ledger.close()
