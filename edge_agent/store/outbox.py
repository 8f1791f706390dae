"""The outbox: events for the cloud, written in the same transaction as their change.

`seq` is dense per station (1, 2, 3, … with no gaps) because the writer takes max+1 inside
its `BEGIN IMMEDIATE` transaction; the cloud uses it to detect gaps and replays.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .database import Tx
from .ids import uuid7
from .meta import get_meta

__all__ = [
    "OutboxEvent",
    "append_event",
    "event_for",
    "outbox_backlog",
    "outbox_gaps",
    "pending_events",
]


@dataclass(frozen=True)
class OutboxEvent:
    seq: int
    event_id: str
    epoch: int
    kind: str
    payload: dict[str, Any]
    created_at: str
    acked_at: str | None


def append_event(tx: Tx, kind: str, payload: dict[str, Any], created_at: str) -> OutboxEvent:
    epoch = int(get_meta(tx, "epoch") or 1)
    seq = int(tx.execute("SELECT coalesce(max(seq), 0) + 1 FROM outbox").fetchone()[0])
    event_id = uuid7()
    body = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    tx.execute(
        "INSERT INTO outbox (seq, event_id, epoch, kind, payload, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [seq, event_id, epoch, kind, body, created_at],
    )
    return OutboxEvent(seq, event_id, epoch, kind, payload, created_at, None)


def _event(row: Any) -> OutboxEvent:
    seq, event_id, epoch, kind, payload, created_at, acked_at = row
    return OutboxEvent(
        int(seq), event_id, int(epoch), kind, json.loads(payload), created_at, acked_at
    )


def pending_events(tx: Tx, limit: int) -> list[OutboxEvent]:
    rows = tx.execute(
        "SELECT seq, event_id, epoch, kind, payload, created_at, acked_at FROM outbox "
        "WHERE acked_at IS NULL ORDER BY seq LIMIT ?",
        [limit],
    ).fetchall()
    return [_event(row) for row in rows]


def event_for(tx: Tx, kind: str, key: str, value: str) -> list[OutboxEvent]:
    """Events of `kind` whose payload has `key` = `value` (for audits and tests)."""
    rows = tx.execute(
        "SELECT seq, event_id, epoch, kind, payload, created_at, acked_at FROM outbox "
        "WHERE kind = ? AND json_extract(payload, '$.' || ?) = ? ORDER BY seq",
        [kind, key, value],
    ).fetchall()
    return [_event(row) for row in rows]


def outbox_backlog(tx: Tx) -> tuple[int, str | None]:
    """(events not yet acknowledged by the cloud, creation time of the oldest one)."""
    row = tx.execute(
        "SELECT count(*), min(created_at) FROM outbox WHERE acked_at IS NULL"
    ).fetchone()
    return int(row[0]), row[1]


def outbox_gaps(tx: Tx) -> list[str]:
    """Sequence numbers must run 1..N without a hole."""
    count, top = tx.execute("SELECT count(*), coalesce(max(seq), 0) FROM outbox").fetchone()
    if int(count) != int(top):
        return [f"outbox sequence has gaps: {count} events numbered up to {top}"]
    return []
