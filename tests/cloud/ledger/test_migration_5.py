"""Schema 4 to 5 (docs/scale.md): a ledger whose growing tables have schema 4's keys (as
loyalpump's schema 4 made them, schema_v4/*.sql) opens with schema 5's keys and every row:
balances unchanged, lines with their journal's member, member_phones and event_ids filled,
serial numbers kept and counted on (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, inspect, text

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.cloud.ledger import schema_app as _app  # noqa: F401 - registers its tables
from cloud_sync.cloud.ledger.schema import metadata
from cloud_sync.core.privacy import MemberKeys

from .conftest import NOW
from .fake_station import RULES_TEXT, FakeStation, member_id

_V4 = Path(__file__).parent / "schema_v4"
# Parents before children: the order schema_v4/*.sql creates them in.
_TABLES = (
    "events",
    "members",
    "plates",
    "sales",
    "lots",
    "journals",
    "lines",
    "redemptions",
    "invoice_requests",
    "feedback",
    "member_plate_adds",
)
_SERIALS = (("events", "id"), ("lines", "line_id"), ("feedback", "feedback_id"))


def _rows(conn: Connection, table: str) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(text(f"SELECT * FROM {table}")).mappings()]


def _app_rows(conn: Connection, member: str, sale: str) -> None:
    """A feedback, an invoice request and a plate add, as the member's app left them."""
    conn.execute(
        text(
            "INSERT INTO feedback (feedback_id, member_id, station_id, sale_id, rating, comment, "
            "at, at_ms) VALUES (7, :m, 'S001', :s, 5, 'fast', '2026-03-02T10:00:00+08:00', 1)"
        ),
        {"m": member, "s": sale},
    )
    conn.execute(
        text(
            "INSERT INTO invoice_requests (request_id, sale_id, member_id, station_id, "
            "buyer_kind, buyer_name_sealed, email_sealed, amount_fen, lines, status, "
            "requested_at, requested_ms) VALUES ('r1', :s, :m, 'S001', 'personal', 'x', 'y', "
            "100, '[]', 'requested', '2026-03-02T10:00:00+08:00', 1)"
        ),
        {"m": member, "s": sale},
    )
    conn.execute(
        text("INSERT INTO member_plate_adds (id, member_id, at_ms) VALUES (3, :m, 1)"),
        {"m": member},
    )


def _back_to_schema_4(url: str, member: str, sale: str) -> dict[str, list[dict[str, Any]]]:
    """Drop the re-keyed tables and make them again as schema 4 did, with the same rows."""
    engine = create_engine(url)
    with engine.begin() as conn:
        kept = {table: _rows(conn, table) for table in _TABLES}
        for table in ("lines", "lots", "journals", "member_phones", "event_ids", *_TABLES):
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        ddl = (_V4 / f"{conn.dialect.name}.sql").read_text(encoding="utf-8")
        for statement in ddl.split(";\n"):
            if statement.strip():
                conn.exec_driver_sql(statement)
        for table in _TABLES:
            columns = [c["name"] for c in inspect(conn).get_columns(table)]
            rows = [{c: row[c] for c in columns} for row in kept[table]]
            if rows:
                names = ", ".join(columns)
                marks = ", ".join(f":{c}" for c in columns)
                conn.execute(text(f"INSERT INTO {table} ({names}) VALUES ({marks})"), rows)
        _app_rows(conn, member, sale)
        if conn.dialect.name == "postgresql":  # a live schema-4 ledger's sequences are ahead
            for table, column in (*_SERIALS, ("member_plate_adds", "id")):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                        f"(SELECT MAX({column}) FROM {table}))"
                    )
                )
        conn.execute(text("UPDATE schema_version SET version = 4"))
    engine.dispose()
    return kept


def _ledger_with_history(ledger: CloudLedger, chain: MemberKeys) -> tuple[str, str]:
    """Two stations register one phone (a merge), a plate, sales, a redemption."""
    for station_id in ("S001", "S002"):
        ledger.add_station(station_id, station_id, NOW)
        ledger.enrol(station_id, [], NOW)
    ledger.publish_ruleset(RULES_TEXT, "c2lnbmF0dXJl", "test-key", NOW)
    allowance = ledger.changes("S001", 0, 1, NOW).allowance
    assert allowance is not None
    a, b = FakeStation("S001", chain), FakeStation("S002", chain)
    big, small = member_id(9), member_id(1)
    a.register("13800138000", NOW, mid=big)
    a.plate(big, "沪A12345", NOW)
    sale = a.sale(big, "100.00", NOW + timedelta(minutes=1))
    a.redeem(big, 150, NOW + timedelta(minutes=2), allowance_id=allowance.allowance_id)
    a.sale(None, "20.00", NOW + timedelta(minutes=2))
    b.register("13800138000", NOW + timedelta(minutes=1), mid=small)
    b.sale(small, "40.00", NOW + timedelta(minutes=3))
    for station_id, station in (("S001", a), ("S002", b)):
        response = ledger.push(station_id, station.request(), NOW)
        assert {r.status for r in response.results} == {"applied"}
    return small, sale


def _key(conn: Connection, table: str) -> list[str]:
    return list(inspect(conn).get_pk_constraint(table)["constrained_columns"])


def test_a_schema_4_ledger_opens_with_schema_5s_keys_and_every_row(
    cloud_db_url: str, chain_keys: MemberKeys
) -> None:
    ledger = CloudLedger.open(cloud_db_url, chain_keys=chain_keys)
    try:
        survivor, sale = _ledger_with_history(ledger, chain_keys)
        before = ledger.member(survivor, NOW)
    finally:
        ledger.close()
    assert before is not None and before["merged_from"] == [member_id(9)]
    kept = _back_to_schema_4(cloud_db_url, survivor, sale)
    engine = create_engine(cloud_db_url)
    with engine.connect() as conn:
        assert _key(conn, "lines") == ["line_id"]
        assert "member_phones" not in inspect(conn).get_table_names()
        assert "event_ids" not in inspect(conn).get_table_names()

    reopened = CloudLedger.open(cloud_db_url, chain_keys=chain_keys)
    try:
        assert reopened.member(survivor, NOW) == before
        assert reopened.ledger_problems() == []
        # The ledger goes on: a new sale's event and lines are numbered after the old ones.
        station = FakeStation("S002", chain_keys)
        station.seq = 2
        station.sale(survivor, "10.00", NOW + timedelta(minutes=5))
        response = reopened.push("S002", station.request(), NOW)
        assert [r.status for r in response.results] == ["applied"]
        assert reopened.ledger_problems() == []
    finally:
        reopened.close()

    with engine.connect() as conn:
        for table in _TABLES:
            wanted = [c.name for c in metadata.tables[table].primary_key.columns]
            assert _key(conn, table) == wanted, table
        assert _rows(conn, "member_phones") == [
            {"phone_index": before_phone(kept), "member_id": survivor}
        ]
        # Every event id with its station, filled from the events (and the new sale's).
        claimed = conn.execute(text("SELECT event_id, station_id FROM event_ids")).all()
        stored = conn.execute(text("SELECT event_id, station_id FROM events")).all()
        assert sorted(claimed) == sorted(stored) and len(stored) > len(kept["events"])
        joined = conn.execute(
            text(
                "SELECT COUNT(*) FROM lines l JOIN journals j ON j.journal_id = l.journal_id "
                "WHERE l.member_id = j.member_id"
            )
        ).scalar_one()
        assert joined == len(_rows(conn, "lines")) > len(kept["lines"])
        for table, column in _SERIALS:
            old = {row[column] for row in kept[table]}
            now = {row[column] for row in _rows(conn, table)}
            assert old <= now
            assert min(now - old, default=max(old, default=0) + 1) > max(old, default=0)
        assert len(_rows(conn, "events")) == len(kept["events"]) + 1
        assert {r["feedback_id"] for r in _rows(conn, "feedback")} == {7}
        assert [r["request_id"] for r in _rows(conn, "invoice_requests")] == ["r1"]
        assert [r["id"] for r in _rows(conn, "member_plate_adds")] == [3]
        assert len(_rows(conn, "plates")) == 1
        assert len(_rows(conn, "sales")) == len(kept["sales"]) + 1
    engine.dispose()


def before_phone(kept: dict[str, list[dict[str, Any]]]) -> str:
    (phone,) = {row["phone_index"] for row in kept["members"] if row["status"] == "active"}
    return str(phone)
