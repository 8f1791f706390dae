"""Fuel sales as recorded at the station. Quantities are integers: ml, fen, milli-yuan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .database import Tx

__all__ = [
    "ActivityTotals",
    "SaleRow",
    "activity_between",
    "attach_sale_member",
    "count_sales",
    "get_sale",
    "insert_sale",
    "last_sale_on_pump",
    "mark_sale_reversed",
    "recent_sales",
    "sale_by_source_key",
    "sale_position",
    "sales_before",
    "sales_of_member",
]


@dataclass(frozen=True)
class SaleRow:
    sale_id: str
    source: str
    source_key: str
    pump: int
    nozzle: int | None
    grade: str
    litres_ml: int
    amount_fen: int
    unit_price_milli: int | None
    started_at: str | None
    ended_at: str
    ended_at_ms: int
    member_id: str | None
    points: int
    tier: str | None
    ruleset_version: int | None
    receipt: str | None
    status: str
    recorded_at: str
    recorded_by: str | None


@dataclass(frozen=True)
class ActivityTotals:
    litres_ml: int
    amount_fen: int
    visits: int


_COLUMNS = ", ".join(SaleRow.__dataclass_fields__)


def _sale(row: Any) -> SaleRow | None:
    return None if row is None else SaleRow(*row)


def insert_sale(tx: Tx, sale: SaleRow) -> None:
    tx.execute(
        f"INSERT INTO sales ({_COLUMNS}) VALUES ({', '.join('?' * len(SaleRow.__dataclass_fields__))})",  # noqa: S608, E501
        list(vars(sale).values()),
    )


def get_sale(tx: Tx, sale_id: str) -> SaleRow | None:
    sql = f"SELECT {_COLUMNS} FROM sales WHERE sale_id = ?"  # noqa: S608
    return _sale(tx.execute(sql, [sale_id]).fetchone())


def sale_by_source_key(tx: Tx, source_key: str) -> SaleRow | None:
    sql = f"SELECT {_COLUMNS} FROM sales WHERE source_key = ?"  # noqa: S608
    return _sale(tx.execute(sql, [source_key]).fetchone())


def recent_sales(tx: Tx, limit: int) -> list[SaleRow]:
    sql = f"SELECT {_COLUMNS} FROM sales ORDER BY ended_at_ms DESC, rowid DESC LIMIT ?"  # noqa: S608
    return [SaleRow(*row) for row in tx.execute(sql, [limit]).fetchall()]


def sale_position(tx: Tx, sale_id: str) -> tuple[int, int] | None:
    """Where a sale stands in the newest-first order: (ended_at_ms, rowid); None if unknown."""
    row = tx.execute("SELECT ended_at_ms, rowid FROM sales WHERE sale_id = ?", [sale_id]).fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


def sales_before(tx: Tx, position: tuple[int, int] | None, limit: int) -> list[SaleRow]:
    """Up to `limit` sales after `position` in the newest-first order (ended time, then the
    order they were stored): a keyset page, so sales stored meanwhile never shift it.
    `(ms, 0)` as the position means "every sale that ended before ms"."""
    if position is None:
        return recent_sales(tx, limit)
    ended_ms, rowid = position
    sql = (
        f"SELECT {_COLUMNS} FROM sales "  # noqa: S608
        "WHERE ended_at_ms < ? OR (ended_at_ms = ? AND rowid < ?) "
        "ORDER BY ended_at_ms DESC, rowid DESC LIMIT ?"
    )
    return [SaleRow(*row) for row in tx.execute(sql, [ended_ms, ended_ms, rowid, limit])]


def sales_of_member(tx: Tx, member_id: str, limit: int) -> list[SaleRow]:
    sql = (
        f"SELECT {_COLUMNS} FROM sales WHERE member_id = ? "  # noqa: S608
        "ORDER BY ended_at_ms DESC LIMIT ?"
    )
    return [SaleRow(*row) for row in tx.execute(sql, [member_id, limit]).fetchall()]


def activity_between(
    tx: Tx, member_id: str, from_ms: int, to_ms: int, *, include_end: bool
) -> ActivityTotals:
    """Totals of the member's standing sales ending in [from, to) (or [from, to])."""
    row = tx.execute(
        "SELECT coalesce(sum(litres_ml), 0), coalesce(sum(amount_fen), 0), count(*) "
        "FROM sales WHERE member_id = ? AND status = 'recorded' "
        "AND ended_at_ms >= ? AND ended_at_ms < ?",
        [member_id, from_ms, to_ms + 1 if include_end else to_ms],
    ).fetchone()
    return ActivityTotals(int(row[0]), int(row[1]), int(row[2]))


def mark_sale_reversed(tx: Tx, sale_id: str) -> None:
    tx.execute("UPDATE sales SET status = 'reversed' WHERE sale_id = ?", [sale_id])


def count_sales(tx: Tx) -> int:
    return int(tx.execute("SELECT count(*) FROM sales").fetchone()[0])


def attach_sale_member(
    tx: Tx,
    sale_id: str,
    member_id: str,
    *,
    points: int,
    tier: str | None,
    ruleset_version: int | None,
    receipt: str | None,
) -> bool:
    """Set the member and pricing of a sale that has none; False if one was already set."""
    cursor = tx.execute(
        "UPDATE sales SET member_id = ?, points = ?, tier = ?, ruleset_version = ?, receipt = ? "
        "WHERE sale_id = ? AND member_id IS NULL",
        [member_id, points, tier, ruleset_version, receipt, sale_id],
    )
    return cursor.rowcount == 1


def last_sale_on_pump(tx: Tx, source: str, pump: int) -> SaleRow | None:
    """The most recently recorded sale of a fuelling point from one kind of source."""
    sql = (
        f"SELECT {_COLUMNS} FROM sales WHERE source = ? AND pump = ? "  # noqa: S608
        "ORDER BY rowid DESC LIMIT 1"
    )
    return _sale(tx.execute(sql, [source, pump]).fetchone())
