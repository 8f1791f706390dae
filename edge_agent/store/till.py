"""What the till asks of the store: a pump's sales still without a member, members by the
last four digits of their phone, and the attaches undone (`detachments`, schema 4)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .database import Tx
from .members import MemberRow
from .sales import SaleRow

__all__ = [
    "Detachment",
    "attaches_undone",
    "clear_sale_member",
    "detachment",
    "detachment_of_entry",
    "insert_detachment",
    "last_detachment_of",
    "members_by_last4",
    "unattached_sales",
]


@dataclass(frozen=True)
class Detachment:
    """One attach undone: the sale, which attach of it (1, 2, ...), and what it took back."""

    sale_id: str
    attach_no: int
    member_id: str
    points: int  # what the attach had earned
    taken_back: int  # what the undo took back (less points that had already lapsed)
    earn_entry_id: int | None
    debit_entry_id: int | None
    at: str
    actor: str
    reason: str


_DETACH_COLUMNS = ", ".join(Detachment.__dataclass_fields__)
_SALE_COLUMNS = ", ".join(SaleRow.__dataclass_fields__)
_MEMBER_COLUMNS = ", ".join(MemberRow.__dataclass_fields__)


def _detachment(row: Any) -> Detachment | None:
    return None if row is None else Detachment(*row)


def unattached_sales(tx: Tx, pump: int | None, ended_since_ms: int) -> Iterator[SaleRow]:
    """Standing sales without a member that ended since `ended_since_ms`, newest first, on
    one fuelling point (or all); a lazy cursor, so the caller stops when it has enough."""
    sql = (
        f"SELECT {_SALE_COLUMNS} FROM sales "  # noqa: S608
        "WHERE ended_at_ms >= ? AND member_id IS NULL AND status = 'recorded'"
    )
    params: list[Any] = [ended_since_ms]
    if pump is not None:
        sql += " AND pump = ?"
        params.append(pump)
    sql += " ORDER BY ended_at_ms DESC, rowid DESC"
    for row in tx.execute(sql, params):
        yield SaleRow(*row)


def members_by_last4(
    tx: Tx, last4: str, limit: int, *, bought_since_ms: int | None = None
) -> list[MemberRow]:
    """Active members whose phone ends in `last4`, at most `limit` (an index look-up);
    with `bought_since_ms`, only those with a sale here since then (the station's regulars)."""
    sql = (
        f"SELECT {_MEMBER_COLUMNS} FROM members m "  # noqa: S608
        "WHERE substr(phone_masked, -4) = ? AND status = 'active' "
    )
    params: list[Any] = [last4]
    if bought_since_ms is not None:
        sql += (
            "AND EXISTS (SELECT 1 FROM sales s WHERE s.member_id = m.member_id "
            "AND s.ended_at_ms >= ?) "
        )
        params.append(bought_since_ms)
    sql += "ORDER BY registered_at_ms, member_id LIMIT ?"
    return [MemberRow(*row) for row in tx.execute(sql, [*params, limit]).fetchall()]


def attaches_undone(tx: Tx, sale_ids: Sequence[str]) -> dict[str, int]:
    """How many attaches of each sale were undone (absent: none)."""
    found: dict[str, int] = {}
    for start in range(0, len(sale_ids), 500):
        chunk = list(sale_ids[start : start + 500])
        marks = ", ".join("?" * len(chunk))
        sql = (
            f"SELECT sale_id, count(*) FROM detachments WHERE sale_id IN ({marks}) "  # noqa: S608
            "GROUP BY sale_id"
        )
        found.update({str(s): int(n) for s, n in tx.execute(sql, chunk).fetchall()})
    return found


def detachment(tx: Tx, sale_id: str, attach_no: int) -> Detachment | None:
    sql = f"SELECT {_DETACH_COLUMNS} FROM detachments WHERE sale_id = ? AND attach_no = ?"  # noqa: S608
    return _detachment(tx.execute(sql, [sale_id, attach_no]).fetchone())


def last_detachment_of(tx: Tx, sale_id: str, member_id: str) -> Detachment | None:
    """The latest undone attach of this sale to this member."""
    sql = (
        f"SELECT {_DETACH_COLUMNS} FROM detachments "  # noqa: S608
        "WHERE sale_id = ? AND member_id = ? ORDER BY attach_no DESC LIMIT 1"
    )
    return _detachment(tx.execute(sql, [sale_id, member_id]).fetchone())


def detachment_of_entry(tx: Tx, earn_entry_id: int) -> Detachment | None:
    sql = f"SELECT {_DETACH_COLUMNS} FROM detachments WHERE earn_entry_id = ?"  # noqa: S608
    return _detachment(tx.execute(sql, [earn_entry_id]).fetchone())


def insert_detachment(tx: Tx, row: Detachment) -> None:
    tx.execute(
        f"INSERT INTO detachments ({_DETACH_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
        list(vars(row).values()),
    )


def clear_sale_member(tx: Tx, sale_id: str, member_id: str) -> bool:
    """Take the member (and the pricing) off a sale; False if that member was not on it."""
    cursor = tx.execute(
        "UPDATE sales SET member_id = NULL, points = 0, tier = NULL, ruleset_version = NULL, "
        "receipt = NULL WHERE sale_id = ? AND member_id = ? AND status = 'recorded'",
        [sale_id, member_id],
    )
    return cursor.rowcount == 1
