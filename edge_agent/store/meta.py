"""Small key/value facts about the store: station id, epoch, rules generation."""

from __future__ import annotations

from .database import Tx

__all__ = ["get_meta", "set_meta"]


def get_meta(tx: Tx, key: str) -> str | None:
    row = tx.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return None if row is None else str(row[0])


def set_meta(tx: Tx, key: str, value: str) -> None:
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )
