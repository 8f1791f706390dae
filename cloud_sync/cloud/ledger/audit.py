"""HQ's audit log: every change a person (or the admin token) makes through the console.

Written in the same transaction as the change itself, so the log never claims a change that
was rolled back and never misses one that was committed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select

from .schema import hq_audit

__all__ = ["audit_entries", "record_audit"]


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS).decode("utf-8")


def record_audit(
    conn: Connection,
    *,
    actor: str,
    action: str,
    target: str | None,
    at: datetime,
    before: Any = None,
    after: Any = None,
) -> None:
    """One audit row: who did `action` to `target`, with the state before and after."""
    conn.execute(
        insert(hq_audit).values(
            at=at.isoformat(),
            at_ms=int(at.timestamp() * 1000),
            actor=actor,
            action=action,
            target=target,
            before=_json(before),
            after=_json(after),
        )
    )


def audit_entries(
    conn: Connection,
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The newest entries first, filtered; page with `before_id` (the last row's id)."""
    stmt = select(hq_audit).order_by(hq_audit.c.audit_id.desc()).limit(limit)
    if actor:
        stmt = stmt.where(hq_audit.c.actor == actor)
    if action:
        stmt = stmt.where(hq_audit.c.action == action)
    if target:
        stmt = stmt.where(hq_audit.c.target == target)
    if before_id is not None:
        stmt = stmt.where(hq_audit.c.audit_id < before_id)
    rows = []
    for row in conn.execute(stmt).mappings():
        entry = dict(row)
        for key in ("before", "after"):
            entry[key] = orjson.loads(entry[key]) if entry[key] is not None else None
        rows.append(entry)
    return rows
