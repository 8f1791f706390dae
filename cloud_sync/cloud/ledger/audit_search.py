"""Reading HQ's audit log the way the audit screen asks: by actor, action, target and time.

`audit.audit_entries` answers the simple filters; the screen also needs a time range and the
list of actions seen, for its filter menu.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, select

from .schema import hq_audit

__all__ = ["audit_actions", "search_audit"]


def search_audit(
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
    """Newest first; `until_ms` is exclusive; page on with `before_id` (the last row's id)."""
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
    """Every action the log holds, for the screen's filter menu."""
    stmt = select(hq_audit.c.action).distinct().order_by(hq_audit.c.action)
    return [str(value) for value in conn.execute(stmt).scalars()]
