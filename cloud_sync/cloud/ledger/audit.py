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

__all__ = ["audit_actions", "audit_entries", "record_audit"]


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
    since_ms: int | None = None,
    until_ms: int | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first, filtered; `until_ms` is exclusive; page on with `before_id` (the last
    row's id). The audit screen and the CLI read through this one query."""
    stmt = select(hq_audit).order_by(hq_audit.c.audit_id.desc()).limit(limit)
    if actor:
        stmt = stmt.where(hq_audit.c.actor == actor)
    if action:
        stmt = stmt.where(hq_audit.c.action == action)
    if target:
        stmt = stmt.where(hq_audit.c.target == target)
    if since_ms is not None:
        stmt = stmt.where(hq_audit.c.at_ms >= since_ms)
    if until_ms is not None:
        stmt = stmt.where(hq_audit.c.at_ms < until_ms)
    if before_id is not None:
        stmt = stmt.where(hq_audit.c.audit_id < before_id)
    rows = []
    for row in conn.execute(stmt).mappings():
        entry = dict(row)
        for key in ("before", "after"):
            entry[key] = orjson.loads(entry[key]) if entry[key] is not None else None
        rows.append(entry)
    return rows


def audit_actions(conn: Connection) -> list[str]:
    """Every action the log holds, for the audit screen's filter menu."""
    stmt = select(hq_audit.c.action).distinct().order_by(hq_audit.c.action)
    return [str(value) for value in conn.execute(stmt).scalars()]
