"""Migration 6: events partitioned by month on PostgreSQL (partitions.py, docs/scale.md §6).

No row is copied. The events table is set aside as `events_v5`, the partitioned `events`
is created in its place (with its default partition), and the old table is attached to it
as one partition from the beginning of time up to the month after its newest row (or after
today's month, if later). Event numbers count on from the old table's largest. The old
table's unique keys go; its two plain indexes are renamed aside and adopted by the
parent's. Attaching reads the old table to check its rows fit and builds three indexes on
it (the new key and the station's event and sequence indexes), besides one read for its
newest arrival: on a large ledger this is a maintenance window's work, under the events
table's lock until the migration commits.

SQLite keeps one events table: it is rebuilt with the new key, its constraints kept.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import Connection, inspect

from .migrate_5 import primary_key, rebuild_sqlite, wanted_key
from .partitions import add_months, month_of, partitioned
from .schema import V6_TABLES, events

__all__ = ["migrate_6"]

_ASIDE = "events_v5"


def migrate_6(conn: Connection) -> None:
    """Bring a schema-5 ledger's events to schema 6; a no-op where they are already."""
    for table in V6_TABLES:
        table.create(conn, checkfirst=True)
    if conn.dialect.name == "postgresql":
        if not partitioned(conn):
            _partition_postgresql(conn, datetime.now(UTC))
        return
    if primary_key(conn, "events") != wanted_key(events):
        rebuild_sqlite(conn, events, "id", aside_suffix="_v5")


def _partition_postgresql(conn: Connection, now: datetime) -> None:
    top = conn.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM events").scalar_one()  # by key
    newest = conn.exec_driver_sql("SELECT MAX(received_at) FROM events").scalar_one_or_none()
    found = inspect(conn)
    for unique in found.get_unique_constraints("events"):
        conn.exec_driver_sql(f'ALTER TABLE events DROP CONSTRAINT "{unique["name"]}"')
    key = found.get_pk_constraint("events").get("name")
    if key:
        conn.exec_driver_sql(f'ALTER TABLE events DROP CONSTRAINT "{key}"')
    for index in found.get_indexes("events"):  # the parent adopts them as it attaches
        name = index["name"]
        conn.exec_driver_sql(f'ALTER INDEX "{name}" RENAME TO "{name}_v5"')
    last = max(month_of(now), month_of(date.fromisoformat(newest[:10])) if newest else date.min)
    conn.exec_driver_sql(f"ALTER TABLE events RENAME TO {_ASIDE}")
    conn.exec_driver_sql(f"ALTER TABLE {_ASIDE} ALTER COLUMN id DROP IDENTITY IF EXISTS")
    events.create(conn)  # the partitioned parent, its indexes and its default partition
    conn.exec_driver_sql(
        f"ALTER TABLE events ATTACH PARTITION {_ASIDE} "
        f"FOR VALUES FROM (MINVALUE) TO ('{add_months(last, 1).isoformat()}')"
    )
    conn.exec_driver_sql(
        "SELECT setval(pg_get_serial_sequence('events', 'id'), %s, false)", (int(top) + 1,)
    )
