"""Spending, correcting and expiring points; and recomputing every balance from the ledger.

At a station enrolled in the chain every redemption draws on the offline allowance the
cloud granted (docs/sync.md): refused when the allowance is missing, expired or spent, past
the member's cap, on a stale snapshot, for a member on the deny list, or while HQ's switch
is off and the cloud has not been reached lately. A member's points held elsewhere in the
chain (known from the snapshot) are spent through a chain draw once local lots run out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cloud_sync.core.events import PointsAdjusted, PointsExpired, PointsRedeemed
from cloud_sync.core.lots import InsufficientPoints, Lot, allocate, spendable
from cloud_sync.core.ruleset import (
    RedemptionRefused,
    points_expire_at,
    redemption_value_fen,
    ruleset_in_force,
)

from ..errors import ServiceError
from ..store import Tx
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
from ..store.outbox import append_event, outbox_gaps, redeemed_under_allowance
from ..store.sync import SyncState, denied_overdraft, get_allowance, get_sync_state
from .members import Balance, member_balance
from .station import Station

__all__ = [
    "Redemption",
    "adjust_points",
    "contact_window_s",
    "expire_points",
    "redeem_points",
    "verify_ledger",
]

_MAX_ADJUSTMENT = 10_000_000


def contact_window_s(station: Station) -> int:
    """How recent the last cloud contact must be to count as online."""
    return max(60, 3 * station.settings.cloud.sync_interval_s)


def _older_than(moment: str | None, now: datetime, seconds: int) -> bool:
    return moment is None or now - datetime.fromisoformat(moment) > timedelta(seconds=seconds)


def _allowance_for(
    station: Station, tx: Tx, state: SyncState, member_id: str, points: int, balance: Balance
) -> str:
    """The allowance id a redemption at an enrolled station draws on, or a refusal."""
    now = station.now()
    overdraft = denied_overdraft(tx, member_id)
    if overdraft is not None:
        raise ServiceError(
            "redeem.denied",
            f"redemption is blocked for this member until the chain settles "
            f"(overdraft {overdraft} points)",
        )
    window = contact_window_s(station)
    if not state.offline_redemption and _older_than(state.last_contact, now, window):
        raise ServiceError(
            "redeem.offline_off",
            f"HQ allows redemption only while the cloud answers; no contact in {window} s",
        )
    allowance = get_allowance(tx)
    if allowance is None or datetime.fromisoformat(allowance.expires_at) <= now:
        raise ServiceError(
            "redeem.no_allowance",
            "no offline redemption allowance in force; the station must reach the cloud",
        )
    snapshot = balance.snapshot
    if snapshot is not None:
        # The snapshot is as fresh as the last complete pull: a member who changed in the
        # chain since would have come with that pull.
        seen = max(
            datetime.fromisoformat(snapshot.received_at),
            datetime.fromisoformat(state.last_contact or snapshot.received_at),
        )
        if now - seen > timedelta(seconds=allowance.max_snapshot_age_s):
            raise ServiceError(
                "redeem.snapshot_stale",
                "this member's chain balance is too old to redeem on; the station must "
                "reach the cloud",
            )
    used = redeemed_under_allowance(tx, allowance.allowance_id)
    if used + points > allowance.points:
        raise ServiceError(
            "redeem.allowance_spent",
            f"the station's offline allowance is spent: {allowance.points - used} of "
            f"{allowance.points} points left, {points} asked",
        )
    by_member = redeemed_under_allowance(tx, allowance.allowance_id, member_id)
    if by_member + points > allowance.per_member_cap:
        raise ServiceError(
            "redeem.member_cap",
            f"this member may redeem {allowance.per_member_cap - by_member} more points "
            "until the station reaches the cloud",
        )
    return allowance.allowance_id


def _draw(
    lots: list[Lot], points: int, now: datetime, balance: Balance
) -> tuple[list[tuple[int, int]], int]:
    """Allocate local lots (soonest expiry first); with a snapshot, the rest is a chain draw."""
    if balance.points < points:
        raise InsufficientPoints(points, balance.points)
    if balance.snapshot is None:
        return allocate(lots, points, now), 0
    local = min(points, spendable(lots, now))
    allocations = allocate(lots, local, now) if local > 0 else []
    return allocations, points - local


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
                member_balance(tx, member_id, now).points,
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
        balance = member_balance(tx, member_id, now)
        state = get_sync_state(tx)
        allowance_id = (
            _allowance_for(station, tx, state, member_id, points, balance)
            if state.enrolled
            else None
        )
        try:
            allocations, chain_draw = _draw(lots_of_member(tx, member_id), points, now, balance)
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
                chain_draw=chain_draw,
            ),
        )
        redeemed = PointsRedeemed(
            redemption_id=op_id,
            member_id=member_id,
            points=points,
            value_fen=value_fen,
            entry_id=entry_id,
            actor=actor,
            ruleset_version=ruleset.version,
            at=now,
            allowance_id=allowance_id,
        )
        append_event(tx, redeemed, now.isoformat())
        after = member_balance(tx, member_id, now).points
        return Redemption(op_id, member_id, points, value_fen, after, created=True)


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
                    actor=actor,
                    reason=reason,
                ),
            )
        else:
            balance = member_balance(tx, member_id, now)
            try:
                allocations, chain_draw = _draw(
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
        return member_balance(tx, member_id, now).points


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
