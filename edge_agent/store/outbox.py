"""The outbox: events for the cloud, written in the same transaction as their change.

`seq` is dense per station (1, 2, 3, … with no gaps) because the writer takes max+1 inside
its `BEGIN IMMEDIATE` transaction; the cloud uses it to detect gaps and replays. Rows are
never deleted: acknowledging sets `acked_at`, and a cloud restored from an older backup
can ask for any of them again (`rewind`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cloud_sync.core.events import Event

from .database import Tx
from .ids import uuid7
from .meta import get_meta

__all__ = [
    "OutboxEvent",
    "acknowledge",
    "append_event",
    "batch_after",
    "epoch_first_seq",
    "event_for",
    "member_events_after",
    "outbox_backlog",
    "outbox_gaps",
    "pending_batch",
    "pending_events",
    "redeemed_under_allowance",
    "rewind",
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


def append_event(tx: Tx, event: Event, created_at: str) -> OutboxEvent:
    """Store `event`'s canonical JSON (`cloud_sync.core.events`) as the next event of this epoch."""
    kind, payload = event.kind, event.payload()
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


_COLUMNS = "seq, event_id, epoch, kind, payload, created_at, acked_at"


def batch_after(tx: Tx, epoch: int, after_seq: int, limit: int) -> list[OutboxEvent]:
    """Unacknowledged events of `epoch` from `after_seq + 1` on, contiguous, at most `limit`;
    empty when `after_seq + 1` itself is not pending."""
    if limit <= 0:
        raise ValueError("a batch holds at least one event")
    rows = tx.execute(
        f"SELECT {_COLUMNS} FROM outbox WHERE acked_at IS NULL AND epoch = ? "  # noqa: S608
        "AND seq > ? ORDER BY seq LIMIT ?",
        [epoch, after_seq, limit],
    ).fetchall()
    batch: list[OutboxEvent] = []
    for row in rows:
        event = _event(row)
        if event.seq != (batch[-1].seq if batch else after_seq) + 1:
            break
        batch.append(event)
    return batch


def pending_batch(tx: Tx, limit: int) -> list[OutboxEvent]:
    """The oldest unacknowledged events of ONE epoch, contiguous by seq, at most `limit`.

    The cloud keeps a high-water mark per (station, epoch) and answers a hole with 409, so a
    batch never mixes epochs and stops before the first sequence number it does not hold.
    """
    if limit <= 0:
        raise ValueError("a batch holds at least one event")
    first = tx.execute(
        "SELECT epoch FROM outbox WHERE acked_at IS NULL ORDER BY seq LIMIT 1"
    ).fetchone()
    if first is None:
        return []
    rows = tx.execute(
        f"SELECT {_COLUMNS} FROM outbox WHERE acked_at IS NULL AND epoch = ? "  # noqa: S608
        "ORDER BY seq LIMIT ?",
        [int(first[0]), limit],
    ).fetchall()
    batch: list[OutboxEvent] = []
    for row in rows:
        event = _event(row)
        if batch and event.seq != batch[-1].seq + 1:
            break
        batch.append(event)
    return batch


def epoch_first_seq(tx: Tx, epoch: int) -> int:
    """The first sequence number used in `epoch` (1 for an epoch with no events yet)."""
    row = tx.execute("SELECT min(seq) FROM outbox WHERE epoch = ?", [epoch]).fetchone()
    return 1 if row[0] is None else int(row[0])


def acknowledge(tx: Tx, epoch: int, seqs: Iterable[int], at: str) -> int:
    """Mark events of `epoch` as stored by the cloud; returns how many changed state."""
    changed = 0
    for seq in seqs:
        cursor = tx.execute(
            "UPDATE outbox SET acked_at = ? WHERE epoch = ? AND seq = ? AND acked_at IS NULL",
            [at, epoch, seq],
        )
        changed += cursor.rowcount
    return changed


def rewind(tx: Tx, epoch: int, from_seq: int) -> int:
    """The cloud lost events: mark `epoch`'s events from `from_seq` on as pending again."""
    cursor = tx.execute(
        "UPDATE outbox SET acked_at = NULL WHERE epoch = ? AND seq >= ? AND acked_at IS NOT NULL",
        [epoch, from_seq],
    )
    return int(cursor.rowcount)


def member_events_after(
    tx: Tx, member_ids: Sequence[str], epoch: int, seq: int
) -> list[OutboxEvent]:
    """Events naming one of `member_ids` after `seq` of `epoch` (or in a later epoch)."""
    if not member_ids:
        return []
    marks = ", ".join("?" for _ in member_ids)
    rows = tx.execute(
        f"SELECT {_COLUMNS} FROM outbox "  # noqa: S608
        f"WHERE json_extract(payload, '$.member_id') IN ({marks}) "
        "AND ((epoch = ? AND seq > ?) OR epoch > ?) ORDER BY seq",
        [*member_ids, epoch, seq, epoch],
    ).fetchall()
    return [_event(row) for row in rows]


def redeemed_under_allowance(tx: Tx, allowance_id: str, member_id: str | None = None) -> int:
    """Points this station redeemed under an allowance (one member's, or everyone's)."""
    sql = (
        "SELECT coalesce(sum(json_extract(payload, '$.points')), 0) FROM outbox "
        "WHERE kind = 'points.redeemed' AND json_extract(payload, '$.allowance_id') = ?"
    )
    params = [allowance_id]
    if member_id is not None:
        sql += " AND json_extract(payload, '$.member_id') = ?"
        params.append(member_id)
    return int(tx.execute(sql, params).fetchone()[0])


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
