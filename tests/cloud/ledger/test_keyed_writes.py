"""Schema 5's keys followed: member_phones written by its key (the phone), the checks of
ledger_problems that stand in for keys Citus cannot keep, and SQLite's serial numbers
counted from the column itself."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, text

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.cloud.ledger.member_privacy import erase_member
from cloud_sync.core.privacy import MemberKeys

from .conftest import NOW
from .fake_station import FakeStation, member_id


@contextmanager
def _statements(ledger: CloudLedger) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    engine = ledger.db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _phone_rows(ledger: CloudLedger) -> list[tuple[str, str]]:
    with ledger.db.engine.connect() as conn:
        rows = conn.execute(text("SELECT phone_index, member_id FROM member_phones"))
        return [(r.phone_index, r.member_id) for r in rows]


def test_a_merge_and_an_erasure_delete_member_phones_by_the_phone(
    ledger: CloudLedger, station: FakeStation, chain_keys: MemberKeys
) -> None:
    ledger.add_station("S002", None, NOW)
    other = FakeStation("S002", chain_keys)
    big, small = member_id(9), member_id(1)
    station.register("13800138000", NOW, mid=big)
    ledger.push("S001", station.request(), NOW)
    other.register("13800138000", NOW + timedelta(minutes=1), mid=small)
    with _statements(ledger) as seen:
        ledger.push("S002", other.request(), NOW)  # big merges into small (the older id)
        [(_phone, holder)] = _phone_rows(ledger)
        assert holder == small
        ledger.db.transact(lambda c: erase_member(ledger.db, c, small, actor="hq", now=NOW))
    deletes = [s for s in seen if s.lstrip().upper().startswith("DELETE FROM MEMBER_PHONES")]
    assert len(deletes) == 2, seen
    assert all("member_phones.phone_index =" in s for s in deletes), deletes
    assert _phone_rows(ledger) == []
    assert ledger.ledger_problems() == []


def test_two_active_members_of_one_phone_are_reported(
    ledger: CloudLedger, station: FakeStation
) -> None:
    first, second = member_id(1), member_id(2)
    station.register("13800138000", NOW, mid=first)
    station.register("13800138001", NOW, mid=second)
    ledger.push("S001", station.request(), NOW)
    assert ledger.ledger_problems() == []
    with ledger.db.engine.begin() as conn:  # what a lost key would let in
        phone = conn.execute(
            text("SELECT phone_index FROM members WHERE member_id = :m"), {"m": first}
        ).scalar_one()
        conn.execute(text("DELETE FROM member_phones"))
        conn.execute(
            text("UPDATE members SET phone_index = :p WHERE member_id = :m"),
            {"p": phone, "m": second},
        )
        conn.execute(
            text("INSERT INTO member_phones (phone_index, member_id) VALUES (:p, :m)"),
            {"p": phone, "m": second},
        )
    found = ledger.ledger_problems()
    assert any("more than one active member" in p for p in found), found


def test_an_event_without_its_event_ids_row_and_the_reverse_are_reported(
    ledger: CloudLedger, station: FakeStation
) -> None:
    station.register("13800138000", NOW)
    ledger.push("S001", station.request(), NOW)
    with ledger.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM event_ids"))
        conn.execute(text("INSERT INTO event_ids (event_id, station_id) VALUES ('x', 'S001')"))
    found = ledger.ledger_problems()
    assert any("1 events have no event_ids row" in p for p in found), found
    assert any("1 event_ids rows have no event" in p for p in found), found


def test_sqlite_serials_count_on_from_the_column_not_the_rowid(
    ledger: CloudLedger, station: FakeStation
) -> None:
    if ledger.dialect != "sqlite":
        pytest.skip("PostgreSQL numbers its identity columns itself")
    mid = station.register("13800138000", NOW)
    station.sale(mid, "10.00", NOW)
    ledger.push("S001", station.request(), NOW)
    with ledger.db.engine.begin() as conn:
        # A VACUUM may renumber the rowids of a table without an INTEGER PRIMARY KEY.
        conn.execute(text("UPDATE events SET rowid = rowid - 1000"))
        before = conn.execute(text("SELECT MAX(id) FROM events")).scalar_one()
    station.sale(mid, "20.00", NOW + timedelta(minutes=1))
    ledger.push("S001", station.request(), NOW)
    with ledger.db.engine.connect() as conn:
        ids = list(conn.execute(text("SELECT id FROM events ORDER BY id")).scalars())
    assert len(set(ids)) == len(ids) == 3
    assert ids[-1] == before + 1
