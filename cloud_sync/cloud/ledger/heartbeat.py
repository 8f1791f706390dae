"""The replica heartbeat: one row the primary's service rewrites every second.

A read replica carries the row along with everything else, so on the replica `now - beat_ms`
bounds how old its data may be (replication applies transactions in commit order: every
commit before the beat is there too). Portable on purpose: no `pg_last_xact_replay_timestamp`
(streaming only) nor `pg_stat_subscription` (logical only, and needs the subscriber's admin).

The table lives in its own metadata and is created idempotently at every open, outside the
numbered migrations: it holds no ledger data and needs no upgrade path. It has a primary key
so logical replication can carry its UPDATEs.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    Table,
    insert,
    select,
    update,
)

__all__ = ["HEARTBEAT_ID", "beat", "create_heartbeat", "last_beat_ms", "replica_heartbeat"]

HEARTBEAT_ID = 1

_metadata = MetaData()

replica_heartbeat = Table(
    "replica_heartbeat",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("beat_ms", BigInteger, nullable=False),  # the primary service's wall clock, ms
)


def create_heartbeat(conn: Connection) -> None:
    """CREATE TABLE IF NOT EXISTS: safe on every open, on either backend."""
    replica_heartbeat.create(conn, checkfirst=True)


def beat(conn: Connection, now_ms: int) -> None:
    """Set the one row to `now_ms`, inserting it the first time (two workers racing that
    insert: the loser's unique violation is one `Database.transact` runs again)."""
    done = conn.execute(
        update(replica_heartbeat)
        .where(replica_heartbeat.c.id == HEARTBEAT_ID)
        .values(beat_ms=now_ms)
    )
    if done.rowcount == 0:
        conn.execute(insert(replica_heartbeat).values(id=HEARTBEAT_ID, beat_ms=now_ms))


def last_beat_ms(conn: Connection) -> int | None:
    """The last beat this database has seen; None before the first."""
    found = conn.execute(
        select(replica_heartbeat.c.beat_ms).where(replica_heartbeat.c.id == HEARTBEAT_ID)
    ).scalar_one_or_none()
    return None if found is None else int(found)
