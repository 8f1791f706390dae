"""Redeeming points for yuan off, against a bill or not: quoted, then booked exactly once.

At a station enrolled in the chain every redemption draws on the offline allowance the
cloud granted (docs/sync.md): refused when the allowance is missing, expired or spent, past
the member's cap, on a stale snapshot, for a member on the deny list, or while HQ's switch
is off and the cloud has not been reached lately. A member's points held elsewhere in the
chain (known from the snapshot) are spent through a chain draw once local lots run out.

Against a bill (`Bill`: a sale, or an amount typed at the till) the points never take off
more than is due after the tier discount and the bill's earlier redemptions; the quote the
till previews and the booking share one computation (`bill.quote`), so what the cashier
was shown is what is booked, or the booking says why not.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from cloud_sync.core.events import PointsRedeemed
from cloud_sync.core.lots import InsufficientPoints, Lot, allocate, spendable
from cloud_sync.core.ruleset import (
    RedemptionRefused,
    RuleSet,
    redemption_value_fen,
    ruleset_in_force,
)

from ..errors import ServiceError
from ..store import Tx
from ..store.ids import uuid7
from ..store.ledger import Debit, book_debit, entry_by_op_id, lots_of_member
from ..store.members import get_member
from ..store.outbox import append_event, redeemed_under_allowance
from ..store.sync import SyncState, denied_overdraft, get_allowance, get_sync_state
from .bill import BillFacts, BillQuote, Refused, fen_text, quote, step_of
from .bill_facts import Bill, BillAmount, bill_amount
from .members import Balance, member_balance
from .station import Station

__all__ = [
    "Bill",
    "Redemption",
    "contact_window_s",
    "draw_points",
    "quote_redemption",
    "redeem_points",
]


def contact_window_s(station: Station) -> int:
    """How recent the last cloud contact must be to count as online."""
    return max(60, 3 * station.settings.cloud.sync_interval_s)


def _older_than(moment: str | None, now: datetime, seconds: int) -> bool:
    return moment is None or now - datetime.fromisoformat(moment) > timedelta(seconds=seconds)


@dataclass(frozen=True)
class _Room:
    """The allowance a redemption at an enrolled station draws on, and what is left of it."""

    allowance_id: str
    points: int
    per_member_cap: int
    used: int  # by everyone under this allowance
    by_member: int  # by this member under it

    @property
    def headroom(self) -> int:
        return max(0, min(self.points - self.used, self.per_member_cap - self.by_member))


def _allowance_room(
    station: Station, tx: Tx, state: SyncState, member_id: str, balance: Balance
) -> _Room:
    """The allowance in force for this member, or the refusal that blocks any redemption."""
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
    return _Room(
        allowance.allowance_id,
        allowance.points,
        allowance.per_member_cap,
        redeemed_under_allowance(tx, allowance.allowance_id),
        redeemed_under_allowance(tx, allowance.allowance_id, member_id),
    )


def _within(room: _Room, points: int) -> str:
    """The allowance id when `points` fit in what is left of it, else the refusal."""
    if room.used + points > room.points:
        raise ServiceError(
            "redeem.allowance_spent",
            f"the station's offline allowance is spent: {room.points - room.used} of "
            f"{room.points} points left, {points} asked",
        )
    if room.by_member + points > room.per_member_cap:
        raise ServiceError(
            "redeem.member_cap",
            f"this member may redeem {room.per_member_cap - room.by_member} more points "
            "until the station reaches the cloud",
        )
    return room.allowance_id


def draw_points(
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
    bill: BillQuote | None = None  # against a bill: the figures the till shows

    def to_dict(self) -> dict[str, object]:
        answer: dict[str, object] = {
            "redemption_id": self.redemption_id,
            "member_id": self.member_id,
            "points": self.points,
            "value_fen": self.value_fen,
            "value": fen_text(self.value_fen),
            "balance_after": self.balance_after,
        }
        if self.bill is not None:
            figures = self.bill.to_dict()
            answer["bill"] = {key: figures[key] for key in _BILL_KEYS}
        return answer


# What a booked redemption says about its bill (the quote's figures before it was booked).
_BILL_KEYS = (
    "bill_fen",
    "bill",
    "discount_fen",
    "discount",
    "due_fen",
    "due",
    "collect_fen",
    "collect",
)


def _policy(ruleset: RuleSet) -> dict[str, int]:
    return {
        "min_points": ruleset.redeem.min_points,
        "points_per_yuan": ruleset.redeem.points_per_yuan,
        "step": step_of(ruleset.redeem.points_per_yuan),
    }


def _value(ruleset: RuleSet, points: int) -> int:
    """Fen off for `points`; a refusal names the minimum and the rate."""
    try:
        return redemption_value_fen(ruleset, points)
    except RedemptionRefused as exc:
        raise ServiceError(exc.code, **_policy(ruleset)) from exc


def _facts(
    ruleset: RuleSet, balance: int, amount: BillAmount | None, headroom: int | None
) -> BillFacts:
    return BillFacts(
        points_per_yuan=ruleset.redeem.points_per_yuan,
        min_points=ruleset.redeem.min_points,
        balance=balance,
        bill_fen=None if amount is None else amount.bill_fen,
        discount_fen=0 if amount is None else amount.discount_fen,
        redeemed_fen=0 if amount is None else amount.redeemed_fen,
        headroom=headroom,
    )


# Refusals about the points asked, which come before the allowance's (as in redeem_points).
_OWN_FIRST = frozenset({"redeem.not_positive", "redeem.min_points", "redeem.not_whole_fen"})


def quote_redemption(
    station: Station, member_id: str, bill: Bill | None = None, points: int | None = None
) -> BillQuote:
    """What the till shows before a redemption: the rate and minimum, the tier discount,
    "max off", "use all", and for `points` what they take off and what is left to collect.

    Read-only. `refused` says why `points` would be refused, or why nothing can be
    redeemed here now (offline allowance, deny list); `redeem_points` refuses the same.
    """
    now = station.now()
    with station.store.read() as tx:
        member = get_member(tx, member_id)
        if member is None or member.status != "active":
            raise ServiceError("member.not_found", f"no member {member_id}")
        ruleset = ruleset_in_force(station.rulesets(tx), now)
        if ruleset is None:
            raise ServiceError("rules.none", "no rule set is in force; load one first")
        amount = bill_amount(station, tx, member, bill or Bill(), now)
        balance = member_balance(tx, member_id, now)
        state = get_sync_state(tx)
        blocked: ServiceError | None = None
        room: _Room | None = None
        if state.enrolled:
            try:
                room = _allowance_room(station, tx, state, member_id, balance)
            except ServiceError as exc:
                blocked = exc
    headroom = None if not state.enrolled else (0 if room is None else room.headroom)
    figures = quote(_facts(ruleset, balance.points, amount, headroom), points)
    if figures.refused is not None and figures.refused.code in _OWN_FIRST:
        return figures  # the points themselves are wrong, whatever the allowance
    if blocked is None and room is not None and points is not None:
        try:
            _within(room, points)
        except ServiceError as exc:
            blocked = exc
    if blocked is None:
        return figures
    refused = Refused(blocked.code, dict(blocked.params), str(blocked))
    return replace(figures, value_fen=0, collect_fen=figures.due_fen, refused=refused)


def _booked_bill(
    station: Station,
    tx: Tx,
    member_id: str,
    bill: Bill,
    points: int,
    value_fen: int,
    balance_after: int,
    now: datetime,
) -> BillQuote | None:
    """A retried redemption's bill figures, as they were before it was booked."""
    member = get_member(tx, member_id)
    ruleset = ruleset_in_force(station.rulesets(tx), now)
    if member is None or ruleset is None or bill.empty:
        return None
    try:
        amount = bill_amount(station, tx, member, bill, now)
    except ServiceError:  # the sale was reversed since: the redemption stands, figures gone
        return None
    if amount is None:
        return None
    own = value_fen if bill.sale_id is not None else 0
    before = replace(amount, redeemed_fen=amount.redeemed_fen - own)
    return quote(_facts(ruleset, balance_after + points, before, None), points)


def redeem_points(
    station: Station,
    member_id: str,
    points: int,
    *,
    actor: str,
    redemption_id: str | None = None,
    bill: Bill | None = None,
) -> Redemption:
    """Spend points for yuan off, soonest-expiring first; a retried id is booked once.

    With a `bill`, the points never take off more than is due on it; a redemption against
    a sale is booked against that sale, so two cashiers cannot both take its bill off.
    """
    if points <= 0:
        raise ServiceError("redeem.not_positive", "points to redeem must be a positive number")
    now = station.now()
    op_id = redemption_id or uuid7()
    against = bill or Bill()
    with station.store.write() as tx:
        earlier = entry_by_op_id(tx, op_id)
        if earlier is not None:
            if (
                earlier.member_id != member_id
                or -earlier.points != points
                or earlier.sale_id != against.sale_id
            ):
                raise ServiceError("redeem.conflict", f"redemption {op_id} was booked differently")
            after = member_balance(tx, member_id, now).points
            value = earlier.value_fen or 0
            figures = _booked_bill(station, tx, member_id, against, points, value, after, now)
            return Redemption(op_id, member_id, points, value, after, False, figures)
        member = get_member(tx, member_id)
        if member is None or member.status != "active":
            raise ServiceError("member.not_found", f"no member {member_id}")
        ruleset = ruleset_in_force(station.rulesets(tx), now)
        if ruleset is None:
            raise ServiceError("rules.none", "no rule set is in force; load one first")
        value_fen = _value(ruleset, points)
        amount = bill_amount(station, tx, member, against, now)
        balance = member_balance(tx, member_id, now)
        state = get_sync_state(tx)
        allowance_id = (
            _within(_allowance_room(station, tx, state, member_id, balance), points)
            if state.enrolled
            else None
        )
        try:
            allocations, chain_draw = draw_points(
                lots_of_member(tx, member_id), points, now, balance
            )
        except InsufficientPoints as exc:
            raise ServiceError(
                "points.insufficient",
                f"not enough points: {exc.available} spendable, {points} asked",
            ) from exc
        figures = None
        if amount is not None:
            figures = quote(_facts(ruleset, balance.points, amount, None), points)
            if figures.refused is not None:
                raise ServiceError(figures.refused.code, **figures.refused.params)
        entry_id = book_debit(
            tx,
            Debit(
                member_id=member_id,
                kind="redeem",
                allocations=allocations,
                booked_at=now.isoformat(),
                sale_id=against.sale_id,
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
        return Redemption(op_id, member_id, points, value_fen, after, True, figures)
