"""Correcting and expiring points, and recomputing every balance from the ledger.

Redemption lives in `redemption.py` (re-exported here, where callers have always found it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cloud_sync.core.events import PointsAdjusted, PointsExpired
from cloud_sync.core.lots import InsufficientPoints
from cloud_sync.core.ruleset import points_expire_at, ruleset_in_force

from ..errors import ServiceError
from ..store.audit import record_audit
from ..store.ids import uuid7
from ..store.ledger import (
    Credit,
    Debit,
    book_credit,
    book_debit,
    entry_by_op_id,
    expired_lots,
    ledger_discrepancies,
    lots_of_member,
)
from ..store.members import get_member
from ..store.outbox import append_event, outbox_gaps
from .members import member_balance
from .redemption import (
    Bill,
    Redemption,
    contact_window_s,
    draw_points,
    quote_redemption,
    redeem_points,
)
from .station import Station

__all__ = [
    "MAX_REASON",
    "Adjustment",
    "Bill",
    "Redemption",
    "adjust_member_points",
    "adjust_points",
    "check_reason",
    "contact_window_s",
    "expire_points",
    "quote_redemption",
    "redeem_points",
    "verify_ledger",
]

_MAX_ADJUSTMENT = 10_000_000
MAX_REASON = 200  # characters of a correction's reason


def check_reason(reason: str, what: str) -> None:
    """A manager's correction names why, in a line a person reads (audited, sent to HQ)."""
    if not reason.strip():
        raise ServiceError("reason.required", f"{what} needs a reason")
    if len(reason) > MAX_REASON:
        raise ServiceError("reason.too_long", max=MAX_REASON)


@dataclass(frozen=True)
class Adjustment:
    adjustment_id: str
    member_id: str
    points: int
    balance_after: int
    created: bool  # False: this adjustment id was already booked (a retry)

    def to_dict(self) -> dict[str, object]:
        return {
            "adjustment_id": self.adjustment_id,
            "member_id": self.member_id,
            "points": self.points,
            "balance_after": self.balance_after,
        }


def adjust_points(station: Station, member_id: str, points: int, *, actor: str, reason: str) -> int:
    """A manager's manual correction with a reason; returns the spendable balance after."""
    return adjust_member_points(
        station, member_id, points, actor=actor, reason=reason
    ).balance_after


def adjust_member_points(
    station: Station,
    member_id: str,
    points: int,
    *,
    actor: str,
    reason: str,
    adjustment_id: str | None = None,
) -> Adjustment:
    """A manager's manual correction with a reason, audited; a retried id is booked once."""
    check_reason(reason, "an adjustment")
    if points == 0 or abs(points) > _MAX_ADJUSTMENT:
        raise ServiceError("adjust.points", f"points must be non-zero, at most {_MAX_ADJUSTMENT}")
    now = station.now()
    at = now.isoformat()
    op_id = adjustment_id or uuid7()
    with station.store.write() as tx:
        earlier = entry_by_op_id(tx, op_id)
        if earlier is not None:
            if (
                earlier.kind != "adjust"
                or earlier.member_id != member_id
                or earlier.points != points
            ):
                raise ServiceError("adjust.conflict")
            after = member_balance(tx, member_id, now).points
            return Adjustment(op_id, member_id, points, after, created=False)
        if get_member(tx, member_id) is None:
            raise ServiceError("member.not_found", f"no member {member_id}")
        expires_at: datetime | None = None
        if points > 0:
            ruleset = ruleset_in_force(station.rulesets(tx), now)
            expires_at = None if ruleset is None else points_expire_at(ruleset, now)
            entry_id = book_credit(
                tx,
                Credit(
                    member_id=member_id,
                    kind="adjust",
                    points=points,
                    booked_at=at,
                    expires_at=expires_at,
                    op_id=op_id,
                    actor=actor,
                    reason=reason,
                ),
            )
        else:
            balance = member_balance(tx, member_id, now)
            try:
                allocations, chain_draw = draw_points(
                    lots_of_member(tx, member_id), -points, now, balance
                )
            except InsufficientPoints as exc:
                raise ServiceError("points.insufficient", f"cannot deduct: {exc}") from exc
            entry_id = book_debit(
                tx,
                Debit(
                    member_id=member_id,
                    kind="adjust",
                    allocations=allocations,
                    booked_at=at,
                    op_id=op_id,
                    actor=actor,
                    reason=reason,
                    chain_draw=chain_draw,
                ),
            )
        record_audit(
            tx,
            at=at,
            actor=actor,
            action="points.adjusted",
            subject=member_id,
            details={"points": points, "reason": reason, "entry_id": entry_id},
        )
        # A grant names its expiry (null: never); a deduction names none.
        expiry = {"expires_at": expires_at} if points > 0 else {}
        adjusted = PointsAdjusted(
            member_id=member_id,
            points=points,
            reason=reason,
            actor=actor,
            entry_id=entry_id,
            at=now,
            **expiry,
        )
        append_event(tx, adjusted, at)
        after = member_balance(tx, member_id, now).points
        return Adjustment(op_id, member_id, points, after, created=True)


def expire_points(station: Station) -> int:
    """Nightly job: book expiry entries for lots past their date; returns points expired.

    Balances never include expired points anyway; this makes the ledger say so, and it is
    idempotent because an expired lot has nothing left to expire the second time.
    """
    now = station.now()
    at = now.isoformat()
    total = 0
    with station.store.write() as tx:
        by_member: dict[str, list[tuple[int, int]]] = {}
        for member_id, lot_id, remaining in expired_lots(tx, now):
            by_member.setdefault(member_id, []).append((lot_id, remaining))
        for member_id, allocations in by_member.items():
            entry_id = book_debit(
                tx,
                Debit(
                    member_id=member_id,
                    kind="expire",
                    allocations=allocations,
                    booked_at=at,
                    actor="system:expiry",
                ),
            )
            points = sum(p for _, p in allocations)
            total += points
            expired = PointsExpired(
                member_id=member_id,
                points=points,
                entry_id=entry_id,
                lots=[lot for lot, _ in allocations],
                at=at,
            )
            append_event(tx, expired, at)
    return total


def verify_ledger(station: Station) -> list[str]:
    """Recompute balances, lots and sequence numbers from the ledger; list any difference."""
    with station.store.read() as tx:
        return ledger_discrepancies(tx) + outbox_gaps(tx)
