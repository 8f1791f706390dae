"""The append-only audit log: who changed what, when and why."""

from __future__ import annotations

import json
from typing import Any

from .database import Tx

__all__ = ["audit_entries", "record_audit"]


def record_audit(
    tx: Tx, *, at: str, actor: str, action: str, subject: str, details: dict[str, Any]
) -> None:
    tx.execute(
        "INSERT INTO audit (at, actor, action, subject, details) VALUES (?, ?, ?, ?, ?)",
        [at, actor, action, subject, json.dumps(details, ensure_ascii=False, sort_keys=True)],
    )


def audit_entries(tx: Tx, subject: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT audit_id, at, actor, action, subject, details FROM audit"
    params: list[str] = []
    if subject is not None:
        sql += " WHERE subject = ?"
        params.append(subject)
    rows = tx.execute(sql + " ORDER BY audit_id", params).fetchall()
    return [
        {
            "audit_id": row[0],
            "at": row[1],
            "actor": row[2],
            "action": row[3],
            "subject": row[4],
            "details": json.loads(row[5]),
        }
        for row in rows
    ]
