"""The append-only audit log: who changed what, when and why."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .database import Tx

__all__ = ["AttachRecord", "audit_entries", "last_attaches", "record_audit"]


@dataclass(frozen=True)
class AttachRecord:
    """Who attached the member now on a sale, and when (its latest `sale.member_attached`)."""

    actor: str
    at: str


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


def last_attaches(tx: Tx, sale_ids: Sequence[str]) -> dict[str, AttachRecord]:
    """Each sale's latest attach from the log (none: the member came with the sale)."""
    found: dict[str, AttachRecord] = {}
    for start in range(0, len(sale_ids), 500):
        chunk = list(sale_ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        rows = tx.execute(
            f"SELECT subject, actor, at FROM audit WHERE subject IN ({marks}) "  # noqa: S608
            "AND action = 'sale.member_attached' ORDER BY audit_id",
            chunk,
        ).fetchall()
        for subject, actor, at in rows:
            found[subject] = AttachRecord(actor, at)  # later rows win: the latest attach
    return found
