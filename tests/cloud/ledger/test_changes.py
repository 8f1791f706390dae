"""The pull side: pages of the changes log, cursors, allowances, rule sets, HQ's switch;
and the ledger's housekeeping: stations, tokens, keys, schema versions."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text

from cloud_sync.cloud.ledger import AllowancePolicy, CloudLedger, LedgerError
from cloud_sync.core.privacy import MemberKeys

from .conftest import NOW
from .fake_station import RULES_TEXT, FakeStation


def test_pages_follow_the_cursor_and_carry_each_member_once(
    ledger: CloudLedger, station: FakeStation
) -> None:
    mids = [station.register(f"1380013800{i}", NOW) for i in range(5)]
    for _ in range(3):
        station.sale(mids[0], "10.00", NOW)  # one batch: member 0 is logged once
    ledger.push("S001", station.request(), NOW)

    seen: list[str] = []
    versions: list[int] = []
    cursor, pages = 0, 0
    while True:
        page = ledger.changes("S001", cursor, 2, NOW)
        pages += 1
        assert page.cursor == cursor
        assert len({m.member_id for m in page.members}) == len(page.members)
        assert page.allowance is not None
        assert page.offline_redemption is True
        assert page.server_time == NOW.isoformat()
        seen += [m.member_id for m in page.members]
        versions += [r.version for r in page.rulesets]
        for member in page.members:
            assert (member.as_of_epoch, member.as_of_seq) == (1, 8)
        cursor = page.next_cursor
        if not page.more:
            break
    assert versions == [3]
    assert sorted(seen) == sorted(mids)
    assert pages == 3  # 1 rule set + 5 members, 2 rows a page
    delta = next(m for m in ledger.changes("S001", 0, 100, NOW).members if m.member_id == mids[0])
    assert [lot.points for lot in delta.lots] == [10, 10, 10]

    empty = ledger.changes("S001", cursor, 2, NOW)
    assert (empty.next_cursor, empty.more, empty.members) == (cursor, False, [])
    ahead = ledger.changes("S001", cursor + 1000, 100, NOW)  # a cloud restored from backup
    assert (ahead.cursor, ahead.next_cursor, ahead.more) == (cursor + 1000, cursor + 1000, False)
    with pytest.raises(LedgerError):
        ledger.changes("S001", 0, 0, NOW)
    with pytest.raises(LedgerError) as unknown:
        ledger.changes("S404", 0, 10, NOW)
    assert unknown.value.code == "station.unknown"
    assert ledger.ledger_problems() == []


def test_a_member_changed_in_many_pushes_is_in_the_log_once_at_its_latest_state(
    ledger: CloudLedger, station: FakeStation
) -> None:
    busy = station.register("13800138000", NOW)
    quiet = station.register("13800138001", NOW)
    ledger.push("S001", station.request(), NOW)
    seen_before = ledger.changes("S001", 0, 1000, NOW)
    for push in range(30):  # a daily customer: one push after another names them
        station.sale(busy, "10.00", NOW + timedelta(minutes=push))
        ledger.push("S001", station.request(), NOW + timedelta(minutes=push))
    pulled, cursor, more = [], 0, True
    while more:  # small pages: a station catching up sees each row of the log
        page = ledger.changes("S001", cursor, 3, NOW)
        pulled += [m.member_id for m in page.members]
        cursor, more = page.next_cursor, page.more
    assert pulled.count(busy) == 1
    full = ledger.changes("S001", 0, 1000, NOW)
    assert (
        sum(lot.points for lot in next(m for m in full.members if m.member_id == busy).lots) == 300
    )
    assert {m.member_id for m in full.members} == {busy, quiet}
    # A station that had pulled before the pushes still gets the busy member, once.
    later = ledger.changes("S001", seen_before.next_cursor, 1000, NOW)
    assert [m.member_id for m in later.members] == [busy]


def test_allowance_is_renewed_when_half_used_or_half_expired(
    ledger: CloudLedger, station: FakeStation
) -> None:
    mid = station.register("13800138000", NOW)
    station.sale(mid, "300.00", NOW)
    ledger.push("S001", station.request(), NOW)

    first = ledger.changes("S001", 0, 10, NOW).allowance
    assert first is not None
    assert (first.points, first.per_member_cap) == (50_000, 5_000)
    assert first.expires_at == (NOW + timedelta(hours=72)).isoformat()
    same = ledger.changes("S001", 0, 10, NOW + timedelta(hours=1)).allowance
    assert same is not None and same.allowance_id == first.allowance_id

    later = NOW + timedelta(hours=37)  # past half its life
    renewed = ledger.changes("S001", 0, 10, later).allowance
    assert renewed is not None and renewed.allowance_id != first.allowance_id

    station.redeem(mid, 200, later, allowance_id=renewed.allowance_id)
    ledger.push("S001", station.request(), later)
    kept = ledger.changes("S001", 0, 10, later).allowance
    assert kept is not None and kept.allowance_id == renewed.allowance_id
    assert ledger.totals()["allowances_granted_points"] == 100_000
    assert ledger.ledger_problems() == []


def test_allowance_half_used_is_renewed(cloud_db_url: str, chain_keys: MemberKeys) -> None:
    ledger = CloudLedger.open(
        cloud_db_url, chain_keys=chain_keys, policy=AllowancePolicy(points=300, per_member_cap=300)
    )
    try:
        ledger.add_station("S001", None, NOW)
        station = FakeStation("S001", chain_keys)
        mid = station.register("13800138000", NOW)
        station.sale(mid, "300.00", NOW)
        grant = ledger.changes("S001", 0, 10, NOW).allowance
        assert grant is not None and grant.points == 300
        station.redeem(mid, 150, NOW, allowance_id=grant.allowance_id)
        ledger.push("S001", station.request(), NOW)
        fresh = ledger.changes("S001", 0, 10, NOW).allowance
        assert fresh is not None and fresh.allowance_id != grant.allowance_id
        assert ledger.ledger_problems() == []
    finally:
        ledger.close()


def test_publishing_a_rule_set_is_idempotent_and_versions_never_change(
    ledger: CloudLedger,
) -> None:
    assert ledger.publish_ruleset(RULES_TEXT, "sig", "key-1", NOW) == 3
    assert ledger.publish_ruleset(RULES_TEXT, "sig", "key-1", NOW) == 3
    ledger.add_station("S001", None, NOW)
    page = ledger.changes("S001", 0, 100, NOW)
    assert [(r.version, r.document, r.signature) for r in page.rulesets] == [(3, RULES_TEXT, "sig")]
    assert page.next_cursor == int(NOW.timestamp()) * 1_000_000  # ids come from the clock

    other = json.loads(RULES_TEXT)
    other["name"] = "changed"
    with pytest.raises(LedgerError) as taken:
        ledger.publish_ruleset(json.dumps(other), "sig", "key-1", NOW)
    assert taken.value.code == "rules.version_taken"
    with pytest.raises(LedgerError) as invalid:
        ledger.publish_ruleset('{"version": 4}', "sig", "key-1", NOW)
    assert invalid.value.code == "rules.invalid"
    assert "$" in str(invalid.value)
    listed = ledger.rulesets()
    assert [(r["version"], r["name"], r["signing_key_id"]) for r in listed] == [
        (3, "2026 winter", "key-1")
    ]


def test_offline_redemption_switch(ledger: CloudLedger) -> None:
    ledger.add_station("S001", None, NOW)
    assert ledger.offline_redemption() is True
    ledger.set_offline_redemption(False, NOW)
    assert ledger.offline_redemption() is False
    assert ledger.changes("S001", 0, 10, NOW).offline_redemption is False
    ledger.set_offline_redemption(True, NOW)
    assert ledger.offline_redemption() is True


def test_stations_tokens_and_keys(ledger: CloudLedger) -> None:
    token = ledger.add_station("S001", "Station one", NOW)
    assert len(token) >= 40
    assert ledger.station_for_token(token) == "S001"
    assert ledger.station_for_token("wrong") is None
    with pytest.raises(LedgerError) as exists:
        ledger.add_station("S001", None, NOW)
    assert exists.value.code == "station.exists"
    with pytest.raises(LedgerError) as bad_id:
        ledger.add_station("no spaces", None, NOW)
    assert bad_id.value.code == "station.invalid"

    rotated = ledger.rotate_token("S001")
    assert ledger.station_for_token(token) is None
    assert ledger.station_for_token(rotated) == "S001"
    with pytest.raises(LedgerError) as unknown:
        ledger.rotate_token("S404")
    assert unknown.value.code == "station.unknown"

    key = MemberKeys.generate("S001-1")
    ledger.enrol("S001", [key], NOW)
    with pytest.raises(LedgerError) as conflict:
        ledger.enrol("S001", [MemberKeys.generate("S001-1")], NOW)
    assert conflict.value.code == "keys.conflict"
    with pytest.raises(LedgerError):
        ledger.enrol("S404", [], NOW)
    (listed,) = ledger.stations()
    assert listed["id"] == "S001"
    assert listed["name"] == "Station one"
    assert listed["enrolled_at"] == NOW.isoformat()
    assert listed["station_keys"] == 1
    assert listed["backlog"] is None
    assert not any("token" in k for k in listed)


def _engine(url: str) -> Engine:
    return create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


def test_schema_is_migrated_once_and_a_newer_schema_is_refused(
    cloud_db_url: str, chain_keys: MemberKeys
) -> None:
    with pytest.raises(LedgerError) as missing:
        CloudLedger.open(cloud_db_url, chain_keys=chain_keys, create=False)
    assert missing.value.code == "schema.missing"
    CloudLedger.open(cloud_db_url, chain_keys=chain_keys).close()
    reopened = CloudLedger.open(cloud_db_url, chain_keys=chain_keys, create=False)
    assert reopened.dialect in ("sqlite", "postgresql")
    reopened.close()

    engine = _engine(cloud_db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = 99"))
    engine.dispose()
    with pytest.raises(LedgerError) as newer:
        CloudLedger.open(cloud_db_url, chain_keys=chain_keys)
    assert newer.value.code == "schema.newer"


def test_a_500_event_batch_is_one_transaction_of_few_statements(
    ledger: CloudLedger, station: FakeStation
) -> None:
    mids = [station.register(f"1390000{i:04d}", NOW) for i in range(50)]
    ledger.push("S001", station.request(), NOW)
    for i in range(500):
        station.sale(mids[i % 50], "40.00", NOW + timedelta(seconds=i))
    request = station.request()

    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(Engine, "before_cursor_execute", count)
    try:
        response = ledger.push("S001", request, NOW)
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert response.high_water == 550
    assert {r.status for r in response.results} == {"applied"}
    assert len(statements) <= 30, statements  # the batch's cost, whatever the host's speed
    assert ledger.member(mids[0], NOW)["points"] == 400  # type: ignore[index]
    assert ledger.ledger_problems() == []


def test_a_cursor_from_before_a_restore_is_answered_as_is_and_new_rows_follow_it(
    ledger: CloudLedger, station: FakeStation, cloud_db_url: str
) -> None:
    mids = [station.register(f"1380013800{i}", NOW) for i in range(3)]
    ledger.push("S001", station.request(), NOW)
    cursor = ledger.changes("S001", 0, 100, NOW).next_cursor  # the station is up to date

    # The cloud is restored from a backup taken before the newest two changes.
    engine = _engine(cloud_db_url)
    with engine.begin() as conn:
        newest = conn.execute(text("SELECT id FROM changes ORDER BY id DESC LIMIT 2")).scalars()
        conn.execute(text("DELETE FROM changes WHERE id >= :low"), {"low": min(newest)})
    engine.dispose()
    later = NOW + timedelta(minutes=5)
    page = ledger.changes("S001", cursor, 100, later)
    assert (page.cursor, page.next_cursor, page.more) == (cursor, cursor, False)
    assert (page.members, page.rulesets, page.deny) == ([], [], [])

    station.sale(mids[0], "10.00", later)
    ledger.push("S001", station.request(), later)
    page = ledger.changes("S001", cursor, 100, later)
    assert page.next_cursor > cursor
    assert [m.member_id for m in page.members] == [mids[0]]

    # A clock that steps back never reuses or reorders ids.
    station.sale(mids[1], "10.00", NOW)
    ledger.push("S001", station.request(), NOW)
    after = ledger.changes("S001", page.next_cursor, 100, NOW)
    assert after.next_cursor > page.next_cursor
    assert [m.member_id for m in after.members] == [mids[1]]
    assert ledger.ledger_problems() == []
