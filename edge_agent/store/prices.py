"""What a grade has sold for at this station lately, and what a bill has already had off."""

from __future__ import annotations

from .database import Tx

__all__ = ["recent_unit_prices", "redeemed_against_sale"]


def recent_unit_prices(tx: Tx, grade: str, since_ms: int, limit: int) -> list[int]:
    """Unit prices (milli-yuan) of the newest dispenser sales of `grade` ended since `since_ms`.

    Manual sales never count: a price a person typed must not move the band the next typed
    price is judged by. The scan walks `sales_by_time` back from now and stops at `since_ms`,
    so a grade that has not sold lately costs at most that window's rows.
    """
    rows = tx.execute(
        "SELECT coalesce(unit_price_milli, (amount_fen * 10000 + litres_ml / 2) / litres_ml) "
        "FROM sales WHERE ended_at_ms >= ? AND grade = ? AND source <> 'manual' "
        "AND status = 'recorded' AND litres_ml > 0 "
        "ORDER BY ended_at_ms DESC LIMIT ?",
        [since_ms, grade, limit],
    ).fetchall()
    return [int(row[0]) for row in rows]


def redeemed_against_sale(tx: Tx, sale_id: str) -> int:
    """Fen already taken off a sale's bill by redemptions booked against it."""
    row = tx.execute(
        "SELECT coalesce(sum(value_fen), 0) FROM ledger WHERE sale_id = ? AND kind = 'redeem'",
        [sale_id],
    ).fetchone()
    return int(row[0])
