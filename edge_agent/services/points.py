"""Spending, correcting and expiring points; and recomputing every balance from the ledger."""

from __future__ import annotations

from dataclasses import dataclass

from cloud_sync.loyalty.lots import InsufficientPoints, allocate, spendable
from cloud_sync.loyalty.ruleset import (
    RedemptionRefused,
    points_expire_at,
    redemption_value_fen,
    ruleset_in_force,
)

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
from .station import Station

__all__ = ["Redemption", "adjust_points", "expire_points", "redeem_points", "verify_ledger"]

_MAX_ADJUSTMENT = 10_000_000


@dataclass(frozen=True)
class Redemption:
    redemption_id: str
    member_id: str
    points: int
    value_fen: int
    balance_after: int
    created: bool  # False: this redemption id was already booked (a retry)

    def to_dict(self) -> dict[str, object]:
        return {
            "redemption_id": self.redemption_id,
            "member_id": self.member_id,
            "points": self.points,
            "value_fen": self.value_fen,
            "value": f"{self.value_fen // 100}.{self.value_fen % 100:02d}",
            "balance_after": self.balance_after,
        }


def redeem_points(
    station: Station,
    member_id: str,
    points: int,
    *,
    actor: str,
    redemption_id: str | None = None,
) -> Redemption:
    """Spend points for yuan off, soonest-expiring first; a retried id is booked once."""
    if points <= 0:
        raise ServiceError("redeem.not_positive", "points to redeem must be a positive number")
    now = station.now()
    op_id = redemption_id or uuid7()
    with station.store.write() as tx:
        earlier = entry_by_op_id(tx, op_id)
        if earlier is not None:
            if earlier.member_id != member_id or -earlier.points != points:
                raise ServiceError("redeem.conflict", f"redemption {op_id} was booked differently")
            return Redemption(
                op_id,
                member_id,
                points,
                earlier.value_fen or 0,
                spendable(lots_of_member(tx, member_id), now),
                created=False,
            )
        member = get_member(tx, member_id)
        if member is None or member.status != "active":
            raise ServiceError("member.not_found", f"no member {member_id}")
        ruleset = ruleset_in_force(station.rulesets(tx), now)
        if ruleset is None:
            raise ServiceError("rules.none", "no rule set is in force; load one first")
        try:
            value_fen = redemption_value_fen(ruleset, points)
        except RedemptionRefused as exc:
            raise ServiceError(exc.code, str(exc)) from exc
        lots = lots_of_member(tx, member_id)
        try:
            allocations = allocate(lots, points, now)
        except InsufficientPoints as exc:
            raise ServiceError(
                "points.insufficient",
                f"not enough points: {exc.available} spendable, {points} asked",
            ) from exc
        entry_id = book_debit(
            tx,
            Debit(
                member_id=member_id,
                kind="redeem",
                allocations=allocations,
                booked_at=now.isoformat(),
                op_id=op_id,
                value_fen=value_fen,
                actor=actor,
            ),
        )
        append_event(
            tx,
            "points.redeemed",
            {
                "redemption_id": op_id,
                "member_id": member_id,
                "points": points,
                "value_fen": value_fen,
                "entry_id": entry_id,
                "actor": actor,
                "ruleset_version": ruleset.version,
                "at": now.isoformat(),
            },
            now.isoformat(),
        )
        balance = spendable(lots_of_member(tx, member_id), now)
        return Redemption(op_id, member_id, points, value_fen, balance, created=True)


def adjust_points(station: Station, member_id: str, points: int, *, actor: str, reason: str) -> int:
    """A manager's manual correction with a reason; returns the spendable balance after."""
    if not reason.strip():
        raise ServiceError("reason.required", "an adjustment needs a reason")
    if points == 0 or abs(points) > _MAX_ADJUSTMENT:
        raise ServiceError("adjust.points", f"points must be non-zero, at most {_MAX_ADJUSTMENT}")
    now = station.now()
    at = now.isoformat()
    with station.store.write() as tx:
        if get_member(tx, member_id) is None:
            raise ServiceError("member.not_found", f"no member {member_id}")
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
                    actor=actor,
                    reason=reason,
                ),
            )
        else:
            try:
                allocations = allocate(lots_of_member(tx, member_id), -points, now)
            except InsufficientPoints as exc:
                raise ServiceError("points.insufficient", f"cannot deduct: {exc}") from exc
            entry_id = book_debit(
                tx,
                Debit(
                    member_id=member_id,
                    kind="adjust",
                    allocations=allocations,
                    booked_at=at,
                    actor=actor,
                    reason=reason,
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
        append_event(
            tx,
            "points.adjusted",
            {
                "member_id": member_id,
                "points": points,
                "reason": reason,
                "actor": actor,
                "entry_id": entry_id,
                "at": at,
            },
            at,
        )
        return spendable(lots_of_member(tx, member_id), now)


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
            append_event(
                tx,
                "points.expired",
                {
                    "member_id": member_id,
                    "points": points,
                    "entry_id": entry_id,
                    "lots": [lot for lot, _ in allocations],
                    "at": at,
                },
                at,
            )
    return total


def verify_ledger(station: Station) -> list[str]:
    """Recompute balances, lots and sequence numbers from the ledger; list any difference."""
    with station.store.read() as tx:
        return ledger_discrepancies(tx) + outbox_gaps(tx)
