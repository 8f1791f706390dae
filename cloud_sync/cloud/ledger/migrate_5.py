"""Migration 5: the keys Citus needs (docs/scale.md), on a ledger made before them.

Every table that grows with the chain gets its distribution column into its primary key
(and lines get the member of their journal); the one-active-member-per-phone index becomes
the `member_phones` table, the chain-wide unique event id the `event_ids` table; plates and
sales lose their foreign key to members. A ledger made by migration 1 of this program has
today's keys already and is left as it is.

PostgreSQL changes keys in place; SQLite cannot, so a table is rebuilt: renamed aside,
created anew from the metadata, copied (a serial number keeps its value and becomes the
row's rowid too; `database.serials` counts on from it), and the old copy dropped, all in the
migration's one transaction.
"""

from __future__ import annotations

from sqlalchemy import Connection, Table, inspect

from .schema import (
    V5_TABLES,
    events,
    journals,
    lines,
    lots,
    members,
    plates,
    redemptions,
    sales,
)
from .schema_app import feedback, invoice_requests, member_plate_adds

__all__ = ["migrate_5", "primary_key", "rebuild_sqlite", "wanted_key"]

# Tables whose primary key schema 5 changed, each with its serial column (or None).
_REKEYED: tuple[tuple[Table, str | None], ...] = (
    (events, "id"),
    (lots, None),
    (journals, None),
    (redemptions, None),
    (invoice_requests, None),
    (feedback, "feedback_id"),
    (member_plate_adds, "id"),
)
_NEW_INDEXES = ("ix_events_event", "ix_members_phone", "ix_redemptions_station")


def primary_key(conn: Connection, name: str) -> list[str]:
    """The columns of the stored table's primary key, in order."""
    return list(inspect(conn).get_pk_constraint(name).get("constrained_columns") or [])


def wanted_key(table: Table) -> list[str]:
    """The columns of the table's primary key in this program's metadata, in order."""
    return [column.name for column in table.primary_key.columns]


def migrate_5(conn: Connection) -> None:
    """Bring a schema-4 ledger to schema 5's keys; a no-op on one that has them."""
    for table in V5_TABLES:
        table.create(conn, checkfirst=True)
    if conn.dialect.name == "postgresql":
        _postgresql(conn)
    else:
        _sqlite(conn)
    for table in (events, members, redemptions):
        for index in table.indexes:
            if index.name in _NEW_INDEXES:
                index.create(conn, checkfirst=True)
    # The active member of each phone, as the partial unique index on members kept it.
    conn.exec_driver_sql(
        "INSERT INTO member_phones (phone_index, member_id) SELECT m.phone_index, m.member_id "
        "FROM members m WHERE m.status = 'active' AND m.phone_index IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM member_phones p WHERE p.phone_index = m.phone_index)"
    )
    # The station of each event id (its first, should two stations have stored one).
    conn.exec_driver_sql(
        "INSERT INTO event_ids (event_id, station_id) SELECT e.event_id, e.station_id "
        "FROM events e WHERE e.id = (SELECT MIN(f.id) FROM events f WHERE f.event_id = "
        "e.event_id) AND NOT EXISTS (SELECT 1 FROM event_ids i WHERE i.event_id = e.event_id)"
    )


# ---------------------------------------------------------------------------- PostgreSQL


def _postgresql(conn: Connection) -> None:
    found = inspect(conn)
    conn.exec_driver_sql("DROP INDEX IF EXISTS ux_members_active_phone")
    conn.exec_driver_sql("DROP INDEX IF EXISTS ux_invoice_requests_live_sale")
    for table in (plates, sales):
        for key in found.get_foreign_keys(table.name):
            if key["referred_table"] == "members":
                conn.exec_driver_sql(f'ALTER TABLE {table.name} DROP CONSTRAINT "{key["name"]}"')
    for unique in found.get_unique_constraints("events"):
        if unique["column_names"] == ["event_id"]:
            conn.exec_driver_sql(f'ALTER TABLE events DROP CONSTRAINT "{unique["name"]}"')
    if "member_id" not in {column["name"] for column in found.get_columns("lines")}:
        _lines_member_postgresql(conn)
    conn.exec_driver_sql("UPDATE journals SET member_id = '' WHERE member_id IS NULL")
    conn.exec_driver_sql("ALTER TABLE journals ALTER COLUMN member_id SET NOT NULL")
    for table, _serial in (*_REKEYED, (lines, "line_id")):
        # Migration 6 follows and replaces events' keys (partitioned): no index built twice.
        if table is not events and primary_key(conn, table.name) != wanted_key(table):
            _rekey_postgresql(conn, table)
    if not [k for k in inspect(conn).get_foreign_keys("lines") if k["name"] == "fk_lines_journal"]:
        conn.exec_driver_sql(
            "ALTER TABLE lines ADD CONSTRAINT fk_lines_journal FOREIGN KEY (journal_id, member_id) "
            "REFERENCES journals (journal_id, member_id)"
        )
    for index in invoice_requests.indexes:
        if index.name == "ux_invoice_requests_live_sale":
            index.create(conn, checkfirst=True)


def _rekey_postgresql(conn: Connection, table: Table) -> None:
    old = inspect(conn).get_pk_constraint(table.name)["name"]
    columns = ", ".join(wanted_key(table))
    name = table.primary_key.name
    conn.exec_driver_sql(f'ALTER TABLE {table.name} DROP CONSTRAINT "{old}"')
    conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD CONSTRAINT {name} PRIMARY KEY ({columns})")


def _lines_member_postgresql(conn: Connection) -> None:
    """Lines take their journal's member (the old single-column foreign key goes first)."""
    for key in inspect(conn).get_foreign_keys("lines"):
        conn.exec_driver_sql(f'ALTER TABLE lines DROP CONSTRAINT "{key["name"]}"')
    conn.exec_driver_sql("ALTER TABLE lines ADD COLUMN member_id TEXT")
    conn.exec_driver_sql(
        "UPDATE lines SET member_id = COALESCE(j.member_id, '') FROM journals j "
        "WHERE j.journal_id = lines.journal_id"
    )
    conn.exec_driver_sql("ALTER TABLE lines ALTER COLUMN member_id SET NOT NULL")


# ---------------------------------------------------------------------------- SQLite


def _sqlite(conn: Connection) -> None:
    conn.exec_driver_sql("DROP INDEX IF EXISTS ux_members_active_phone")
    found = inspect(conn)
    lines_done = "member_id" in {column["name"] for column in found.get_columns("lines")}
    if not lines_done:  # lines refer to journals' old key: set them aside first
        conn.exec_driver_sql("CREATE TABLE lines_v4 AS SELECT * FROM lines")
        conn.exec_driver_sql("DROP TABLE lines")
    for table, serial in _REKEYED:
        if primary_key(conn, table.name) != wanted_key(table):
            rebuild_sqlite(conn, table, serial)
    for table in (plates, sales):
        keys = inspect(conn).get_foreign_keys(table.name)
        if any(key["referred_table"] == "members" for key in keys):
            rebuild_sqlite(conn, table, None)
    if not lines_done:
        lines.create(conn)
        conn.exec_driver_sql(
            "INSERT INTO lines (rowid, line_id, journal_id, member_id, account, points) "
            "SELECT l.line_id, l.line_id, l.journal_id, j.member_id, l.account, l.points "
            "FROM lines_v4 l JOIN journals j ON j.journal_id = l.journal_id ORDER BY l.line_id"
        )
        conn.exec_driver_sql("DROP TABLE lines_v4")


def rebuild_sqlite(
    conn: Connection, table: Table, serial: str | None, aside_suffix: str = "_v4"
) -> None:
    """Table aside, created anew from the metadata, copied back, the old copy dropped."""
    name = table.name
    aside = f"{name}{aside_suffix}"
    for index in inspect(conn).get_indexes(name):
        conn.exec_driver_sql(f'DROP INDEX "{index["name"]}"')
    conn.exec_driver_sql(f"ALTER TABLE {name} RENAME TO {aside}")
    table.create(conn)
    present = {column["name"] for column in inspect(conn).get_columns(aside)}
    columns = [column.name for column in table.columns if column.name in present]
    if name == "journals":
        values = ["COALESCE(member_id, '')" if c == "member_id" else c for c in columns]
    else:
        values = list(columns)
    if serial is not None:  # the number stays (as the rowid too); serials counts on from it
        columns, values = ["rowid", *columns], [serial, *values]
    conn.exec_driver_sql(
        f"INSERT INTO {name} ({', '.join(columns)}) "  # noqa: S608 - the metadata's own names
        f"SELECT {', '.join(values)} FROM {aside}"
    )
    conn.exec_driver_sql(f"DROP TABLE {aside}")
