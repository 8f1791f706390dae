"""The append-only points ledger, its lots and the cached balances.

A credit (earn, positive adjustment) is a lot with an expiry; a debit (redeem, reverse,
expire, negative adjustment) names the lots it consumed in `lot_debits`, and, at a station
in the chain, the part it drew on the member's points held elsewhere (`chain_draws`, known
from the cloud's snapshot). `lots.remaining` and `balances.points` are projections kept in
the same transaction and recomputable from the ledger alone (`ledger_discrepancies`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cloud_sync.core.lots import Lot

from .database import Tx

__all__ = [
    "Credit",
    "Debit",
    "LedgerEntry",
    "book_credit",
    "book_debit",
    "booked_balance",
    "chain_drawn",
    "entries_of_member",
    "entry_by_op_id",
    "expired_from_lot",
    "expired_lots",
    "ledger_discrepancies",
    "lot_of_sale",
    "lots_of_member",
]


@dataclass(frozen=True)
class Credit:
    member_id: str
    kind: str  # earn | adjust
    points: int
    booked_at: str
    expires_at: datetime | None
    sale_id: str | None = None
    op_id: str | None = None
    actor: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Debit:
    member_id: str
    kind: str  # redeem | reverse | expire | adjust (an undone attach books a reverse)
    allocations: Sequence[tuple[int, int]]  # (lot entry id, points)
    booked_at: str
    sale_id: str | None = None
    op_id: str | None = None
    value_fen: int | None = None
    actor: str | None = None
    reason: str | None = None
    chain_draw: int = 0  # points beyond local lots, drawn on the member's chain balance

    @property
    def points(self) -> int:
        return sum(points for _, points in self.allocations) + self.chain_draw


@dataclass(frozen=True)
class LedgerEntry:
    entry_id: int
    member_id: str
    kind: str
    points: int
    sale_id: str | None
    op_id: str | None
    expires_at: str | None
    value_fen: int | None
    booked_at: str
    actor: str | None
    reason: str | None


_ENTRY_COLUMNS = (
    "entry_id, member_id, kind, points, sale_id, op_id, expires_at, value_fen, booked_at, "
    "actor, reason"
)


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def _add_to_balance(tx: Tx, member_id: str, delta: int) -> None:
    tx.execute(
        "INSERT INTO balances (member_id, points) VALUES (?, ?) "
        "ON CONFLICT (member_id) DO UPDATE SET points = points + excluded.points",
        [member_id, delta],
    )


def book_credit(tx: Tx, credit: Credit) -> int:
    if credit.points <= 0:
        raise ValueError("a credit books a positive number of points")
    cursor = tx.execute(
        "INSERT INTO ledger (member_id, kind, points, sale_id, op_id, expires_at, "
        "expires_at_ms, booked_at, actor, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            credit.member_id,
            credit.kind,
            credit.points,
            credit.sale_id,
            credit.op_id,
            None if credit.expires_at is None else credit.expires_at.isoformat(),
            _ms(credit.expires_at),
            credit.booked_at,
            credit.actor,
            credit.reason,
        ],
    )
    entry_id = int(cursor.lastrowid or 0)
    tx.execute(
        "INSERT INTO lots (lot_entry_id, member_id, remaining, expires_at_ms) VALUES (?, ?, ?, ?)",
        [entry_id, credit.member_id, credit.points, _ms(credit.expires_at)],
    )
    _add_to_balance(tx, credit.member_id, credit.points)
    return entry_id


def book_debit(tx: Tx, debit: Debit) -> int:
    if debit.points <= 0:
        raise ValueError("a debit books a positive number of points")
    if debit.chain_draw < 0:
        raise ValueError("a chain draw is a positive number of points")
    cursor = tx.execute(
        "INSERT INTO ledger (member_id, kind, points, sale_id, op_id, value_fen, booked_at, "
        "actor, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            debit.member_id,
            debit.kind,
            -debit.points,
            debit.sale_id,
            debit.op_id,
            debit.value_fen,
            debit.booked_at,
            debit.actor,
            debit.reason,
        ],
    )
    entry_id = int(cursor.lastrowid or 0)
    for lot_entry_id, points in debit.allocations:
        tx.execute(
            "INSERT INTO lot_debits (debit_entry_id, lot_entry_id, points) VALUES (?, ?, ?)",
            [entry_id, lot_entry_id, points],
        )
        updated = tx.execute(
            "UPDATE lots SET remaining = remaining - ? "
            "WHERE lot_entry_id = ? AND member_id = ? AND remaining >= ?",
            [points, lot_entry_id, debit.member_id, points],
        )
        if updated.rowcount != 1:
            raise ValueError(f"lot {lot_entry_id} cannot give {points} points")
    if debit.chain_draw:
        tx.execute(
            "INSERT INTO chain_draws (debit_entry_id, member_id, points) VALUES (?, ?, ?)",
            [entry_id, debit.member_id, debit.chain_draw],
        )
    _add_to_balance(tx, debit.member_id, -debit.points)
    return entry_id


def lots_of_member(tx: Tx, member_id: str) -> list[Lot]:
    """Lots with points left, expired or not (the caller decides what is spendable)."""
    rows = tx.execute(
        "SELECT lot_entry_id, remaining, expires_at_ms FROM lots "
        "WHERE member_id = ? AND remaining > 0",
        [member_id],
    ).fetchall()
    return [
        Lot(
            lot_id=int(lot_id),
            remaining=int(remaining),
            expires_at=None if ms is None else datetime.fromtimestamp(ms / 1000, UTC),
            earned_seq=int(lot_id),
        )
        for lot_id, remaining, ms in rows
    ]


# An earning entry still standing: not one an undone attach took back (`detachments`; the
# undo's own debit is a 'reverse' entry that `detachments.debit_entry_id` names).
_LIVE_EARN = "NOT EXISTS (SELECT 1 FROM detachments d WHERE d.earn_entry_id = {}.entry_id)"


def lot_of_sale(tx: Tx, sale_id: str) -> int | None:
    """The earning entry (lot) of the sale's current member; None when it earned nothing."""
    sql = (
        "SELECT entry_id FROM ledger e WHERE sale_id = ? AND kind = 'earn' "  # noqa: S608
        f"AND {_LIVE_EARN.format('e')} ORDER BY entry_id DESC LIMIT 1"
    )
    row = tx.execute(sql, [sale_id]).fetchone()
    return None if row is None else int(row[0])


def expired_from_lot(tx: Tx, lot_entry_id: int) -> int:
    """Points of a lot that expiry entries have already written off."""
    row = tx.execute(
        "SELECT coalesce(sum(d.points), 0) FROM lot_debits d "
        "JOIN ledger e ON e.entry_id = d.debit_entry_id "
        "WHERE d.lot_entry_id = ? AND e.kind = 'expire'",
        [lot_entry_id],
    ).fetchone()
    return int(row[0])


def chain_drawn(tx: Tx, member_id: str) -> int:
    """Points this station's debits drew on the member's chain balance (beyond its lots)."""
    row = tx.execute(
        "SELECT coalesce(sum(points), 0) FROM chain_draws WHERE member_id = ?", [member_id]
    ).fetchone()
    return int(row[0])


def booked_balance(tx: Tx, member_id: str) -> int:
    row = tx.execute("SELECT points FROM balances WHERE member_id = ?", [member_id]).fetchone()
    return 0 if row is None else int(row[0])


def entry_by_op_id(tx: Tx, op_id: str) -> LedgerEntry | None:
    sql = f"SELECT {_ENTRY_COLUMNS} FROM ledger WHERE op_id = ?"  # noqa: S608
    row = tx.execute(sql, [op_id]).fetchone()
    return None if row is None else LedgerEntry(*row)


def entries_of_member(tx: Tx, member_id: str) -> list[LedgerEntry]:
    sql = f"SELECT {_ENTRY_COLUMNS} FROM ledger WHERE member_id = ? ORDER BY entry_id"  # noqa: S608
    return [LedgerEntry(*row) for row in tx.execute(sql, [member_id]).fetchall()]


def expired_lots(tx: Tx, at: datetime) -> list[tuple[str, int, int]]:
    """(member_id, lot entry id, remaining) of lots past expiry that still hold points."""
    rows = tx.execute(
        "SELECT member_id, lot_entry_id, remaining FROM lots "
        "WHERE remaining > 0 AND expires_at_ms IS NOT NULL AND expires_at_ms <= ? "
        "ORDER BY member_id, expires_at_ms, lot_entry_id",
        [_ms(at)],
    ).fetchall()
    return [(str(m), int(lot), int(remaining)) for m, lot, remaining in rows]


_CHECKS: tuple[tuple[str, str], ...] = (
    (
        "balance cache differs from the ledger",
        """SELECT m.member_id, coalesce(b.points, 0), coalesce(l.total, 0)
           FROM members m
           LEFT JOIN balances b USING (member_id)
           LEFT JOIN (SELECT member_id, sum(points) AS total FROM ledger GROUP BY member_id) l
                USING (member_id)
           WHERE coalesce(b.points, 0) <> coalesce(l.total, 0)""",
    ),
    (
        "lot remaining differs from credit minus debits",
        """SELECT c.entry_id, coalesce(lots.remaining, -1), c.points - coalesce(d.used, 0)
           FROM ledger c
           LEFT JOIN lots ON lots.lot_entry_id = c.entry_id
           LEFT JOIN (SELECT lot_entry_id, sum(points) AS used FROM lot_debits
                      GROUP BY lot_entry_id) d ON d.lot_entry_id = c.entry_id
           WHERE c.points > 0
             AND coalesce(lots.remaining, -1) <> c.points - coalesce(d.used, 0)""",
    ),
    (
        "debit entry differs from the lots and chain draw it consumed",
        """SELECT e.entry_id, -e.points, coalesce(d.used, 0) + coalesce(c.points, 0)
           FROM ledger e
           LEFT JOIN (SELECT debit_entry_id, sum(points) AS used FROM lot_debits
                      GROUP BY debit_entry_id) d ON d.debit_entry_id = e.entry_id
           LEFT JOIN chain_draws c ON c.debit_entry_id = e.entry_id
           WHERE e.points < 0 AND -e.points <> coalesce(d.used, 0) + coalesce(c.points, 0)""",
    ),
    (
        "chain draw on a credit entry or another member",
        """SELECT c.debit_entry_id, c.points, e.points
           FROM chain_draws c JOIN ledger e ON e.entry_id = c.debit_entry_id
           WHERE e.points >= 0 OR e.member_id <> c.member_id""",
    ),
    (
        "a lot was debited below zero",
        """SELECT lot_entry_id, c.points, sum(d.points)
           FROM lot_debits d JOIN ledger c ON c.entry_id = d.lot_entry_id
           GROUP BY lot_entry_id HAVING sum(d.points) > c.points""",
    ),
    (
        "member balance is negative beyond its chain draws",
        """SELECT b.member_id, b.points, -coalesce(c.drawn, 0)
           FROM balances b
           LEFT JOIN (SELECT member_id, sum(points) AS drawn FROM chain_draws
                      GROUP BY member_id) c USING (member_id)
           WHERE b.points + coalesce(c.drawn, 0) < 0""",
    ),
    (
        "sale points differ from its earning entry",
        f"""SELECT s.sale_id, s.points, coalesce(e.points, 0)
           FROM sales s LEFT JOIN ledger e ON e.sale_id = s.sale_id AND e.kind = 'earn'
                AND {_LIVE_EARN.format("e")}
           WHERE s.points <> coalesce(e.points, 0)""",  # noqa: S608
    ),
    (
        "undone attach: its earning entry differs from the points it took back",
        """SELECT d.sale_id || ' attach ' || d.attach_no, d.points, coalesce(e.points, 0)
           FROM detachments d LEFT JOIN ledger e ON e.entry_id = d.earn_entry_id
                AND e.kind = 'earn' AND e.sale_id = d.sale_id AND e.member_id = d.member_id
           WHERE coalesce(e.points, 0) <> d.points""",
    ),
    (
        "undone attach: take-back plus lapsed points differ from its points",
        """SELECT d.sale_id || ' attach ' || d.attach_no, d.points,
                  coalesce(-r.points, 0) + coalesce(x.lapsed, 0)
           FROM detachments d
           LEFT JOIN ledger r ON r.entry_id = d.debit_entry_id AND r.kind = 'reverse'
           LEFT JOIN (SELECT l.lot_entry_id, sum(l.points) AS lapsed FROM lot_debits l
                      JOIN ledger e ON e.entry_id = l.debit_entry_id AND e.kind = 'expire'
                      GROUP BY l.lot_entry_id) x ON x.lot_entry_id = d.earn_entry_id
           WHERE coalesce(-r.points, 0) + coalesce(x.lapsed, 0) <> d.points""",
    ),
    (
        "reversed sale: reversal plus lapsed points differ from its points",
        f"""SELECT s.sale_id, s.points, coalesce(-r.points, 0) + coalesce(x.lapsed, 0)
           FROM sales s
           LEFT JOIN ledger r ON r.sale_id = s.sale_id AND r.kind = 'reverse'
                AND NOT EXISTS (SELECT 1 FROM detachments d WHERE d.debit_entry_id = r.entry_id)
           LEFT JOIN ledger c ON c.sale_id = s.sale_id AND c.kind = 'earn'
                AND {_LIVE_EARN.format("c")}
           LEFT JOIN (SELECT d.lot_entry_id, sum(d.points) AS lapsed FROM lot_debits d
                      JOIN ledger e ON e.entry_id = d.debit_entry_id AND e.kind = 'expire'
                      GROUP BY d.lot_entry_id) x ON x.lot_entry_id = c.entry_id
           WHERE s.status = 'reversed' AND s.points > 0
             AND coalesce(-r.points, 0) + coalesce(x.lapsed, 0) <> s.points""",  # noqa: S608
    ),
)


def ledger_discrepancies(tx: Tx) -> list[str]:
    """Recompute every projection from the ledger; one line per difference found."""
    found: list[str] = []
    for label, sql in _CHECKS:
        for subject, cached, derived in tx.execute(sql).fetchall():
            found.append(f"{label}: {subject} has {cached}, expected {derived}")
    return found
