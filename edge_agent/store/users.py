"""Cashier-page logins. Only argon2 hashes of PINs are stored."""

from __future__ import annotations

from dataclasses import dataclass

from .database import Tx

__all__ = ["UserRow", "insert_user", "set_pin_hash", "user_by_name"]


@dataclass(frozen=True)
class UserRow:
    user_id: int
    name: str
    role: str
    pin_hash: str
    created_at: str
    disabled: int


def insert_user(tx: Tx, name: str, role: str, pin_hash: str, created_at: str) -> int:
    cursor = tx.execute(
        "INSERT INTO users (name, role, pin_hash, created_at) VALUES (?, ?, ?, ?)",
        [name, role, pin_hash, created_at],
    )
    return int(cursor.lastrowid or 0)


def user_by_name(tx: Tx, name: str) -> UserRow | None:
    row = tx.execute(
        "SELECT user_id, name, role, pin_hash, created_at, disabled FROM users WHERE name = ?",
        [name],
    ).fetchone()
    return None if row is None else UserRow(*row)


def set_pin_hash(tx: Tx, user_id: int, pin_hash: str) -> None:
    """Replace a user's PIN hash (a rehash with the current argon2 setting)."""
    tx.execute("UPDATE users SET pin_hash = ? WHERE user_id = ?", [pin_hash, user_id])
