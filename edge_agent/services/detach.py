"""Undoing an attach at the till: the wrong member's points taken back, exactly once, and
the sale open for the right member.

An undo names the sale, the member the cashier sees on it and, from the till's view of the
sale, which attach of it this is (`attach_no`: 1, then one more after each undo). The store
keeps one row per (sale, attach_no) undone, written in the transaction that takes the
points back, so a double click, a retried request or two tills pressing at once undo it
once: the second is answered with the first's result (`created=False`). An undo never
touches another member's attach: a sale attached meanwhile to someone else is refused.

Who may undo (`undo_refusal`): the cashier who made the attach, within `[station]
undo_window_min` of it, reason optional; anyone else's attach, a later one, or one with no
recorded actor (a member given at the pump) only a manager, with a reason kept in the audit,
so a cashier cannot move a customer's points to a friend's card. Always only while the
sale's attach window is open (`attach_window_min`, counted from the sale as for attaching),
so the right member can still be attached afterwards; later, a manager reverses or adjusts.
The sync event `sale.detached` lets the cloud take the points back too (docs/sync.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cloud_sync.core.events import LedgerEntry, SaleDetached
from cloud_sync.core.lots import InsufficientPoints, allocate

from ..errors import ServiceError
from ..store import Tx
from ..store.audit import AttachRecord, last_attaches, record_audit
from ..store.ledger import Debit, book_debit, expired_from_lot, lot_of_sale, lots_of_member
from ..store.members import get_member
from ..store.outbox import append_event
from ..store.sales import SaleRow, get_sale
from ..store.sync import get_snapshot
from ..store.till import (
    Detachment,
    attaches_undone,
    clear_sale_member,
    detachment,
    insert_detachment,
    last_detachment_of,
)
from .members import survivor_of
from .sales import SaleView
from .sales import _view as view_of_row  # the one SaleRow -> SaleView mapping
from .station import Station

__all__ = ["MAX_REASON", "DetachOutcome", "detach_member", "own_undo_open", "undo_refusal"]

MAX_REASON = 200


@dataclass(frozen=True)
class DetachOutcome:
    sale: SaleView  # as it stands now (no member, unless attached again since)
    member_id: str  # the member taken off the sale
    attach_no: int
    points: int  # what the attach had earned
    taken_back: int  # points taken back (less any that had already lapsed)
    at: str
    created: bool  # False: this attach was undone before (a double click or a retry)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sale": self.sale.to_dict(),
            "member_id": self.member_id,
            "attach_no": self.attach_no,
            "points": self.points,
            "taken_back": self.taken_back,
            "at": self.at,
            "created": self.created,
        }


def own_undo_open(
    attach: AttachRecord | None, actor: str, now: datetime, cashier_window: timedelta
) -> bool:
    """`actor` made this attach and may still undo it alone (the cashier's quick undo)."""
    if attach is None or attach.actor != actor:
        return False
    return now - datetime.fromisoformat(attach.at) <= cashier_window


def undo_refusal(
    attach: AttachRecord | None,
    *,
    actor: str,
    manager: bool,
    reason: str,
    now: datetime,
    cashier_window: timedelta,
) -> tuple[str, str] | None:
    """Why `actor` may not undo this attach (code, detail), or None. The attach window is
    checked apart: it binds everyone."""
    if own_undo_open(attach, actor, now, cashier_window):
        return None
    if manager:
        if reason:
            return None
        return "reason.required", "a manager's undo of this attach needs a reason"
    minutes = int(cashier_window.total_seconds() // 60)
    if attach is not None and attach.actor == actor:
        return "detach.undo_window", f"you can undo your attach within {minutes} minutes"
    return "detach.not_yours", "only the cashier who made this attach, or a manager, can undo it"


def _same_member(tx: Tx, one: str | None, other: str) -> bool:
    """The same member, or two ids the cloud merged into one."""
    if one is None:
        return False
    if one == other:
        return True
    first, second = survivor_of(tx, get_member(tx, one)), survivor_of(tx, get_member(tx, other))
    return first is not None and second is not None and first.member_id == second.member_id


def _replayed(tx: Tx, done: Detachment) -> DetachOutcome:
    row = get_sale(tx, done.sale_id)
    assert row is not None  # detachments reference their sale
    return DetachOutcome(
        view_of_row(row),
        done.member_id,
        done.attach_no,
        done.points,
        done.taken_back,
        done.at,
        created=False,
    )


def _take_back(
    tx: Tx, row: SaleRow, member_id: str, now: datetime, actor: str, reason: str
) -> tuple[int | None, int | None, int]:
    """Book the take-back of the attach's points, its own lot first: (earn entry, debit
    entry, points taken back). Points of the lot that already lapsed are not taken twice; a
    chain member's points spent elsewhere are drawn on their chain balance."""
    own_lot = lot_of_sale(tx, row.sale_id)
    take_back = row.points - (0 if own_lot is None else expired_from_lot(tx, own_lot))
    if take_back <= 0:
        return own_lot, None, 0
    lots = lots_of_member(tx, member_id)
    chain_draw = 0
    try:
        allocations = allocate(lots, take_back, now, first=own_lot)
    except InsufficientPoints as exc:
        if get_snapshot(tx, member_id) is None:
            raise ServiceError(
                "points.insufficient",
                f"cannot undo: the member has already spent these points ({exc}); "
                "a manager can adjust instead",
            ) from exc
        allocations = allocate(lots, exc.available, now, first=own_lot) if exc.available else []
        chain_draw = take_back - exc.available
    debit_id = book_debit(
        tx,
        Debit(
            member_id=member_id,
            kind="reverse",  # the attach's earning reversed; `detachments` names it
            allocations=allocations,
            booked_at=now.isoformat(),
            sale_id=row.sale_id,
            actor=actor,
            reason=reason or None,
            chain_draw=chain_draw,
        ),
    )
    return own_lot, debit_id, take_back


def _refuse_stale(tx: Tx, row: SaleRow, member_id: str, attach_no: int | None) -> DetachOutcome:
    """The member asked about is not on the sale: the answer of an undo already done, or
    why there is nothing to undo."""
    if attach_no is None:
        done = last_detachment_of(tx, row.sale_id, member_id)
        if done is not None:
            return _replayed(tx, done)
    if row.member_id is None:
        raise ServiceError("detach.not_attached", "this member is not on the sale")
    raise ServiceError(
        "detach.member_changed", "another member is on the sale now; it cannot be undone"
    )


def detach_member(
    station: Station,
    sale_id: str,
    member_id: str,
    *,
    actor: str,
    manager: bool = False,
    attach_no: int | None = None,
    reason: str = "",
) -> DetachOutcome:
    """Undo the attach of `member_id` to the sale (its `attach_no`-th attach when given) as
    `actor`, a manager or not (`undo_refusal`)."""
    reason = reason.strip()
    if len(reason) > MAX_REASON:
        raise ServiceError("reason.too_long", f"a reason is at most {MAX_REASON} characters")
    if attach_no is not None and not 1 <= attach_no <= 1_000_000:
        raise ServiceError("detach.not_attached", "no such attach of this sale")
    now = station.now()
    with station.store.write() as tx:
        row = get_sale(tx, sale_id)
        if row is None:
            raise ServiceError("sale.not_found", f"no sale {sale_id}")
        current = attaches_undone(tx, [sale_id]).get(sale_id, 0) + 1
        if attach_no is not None and attach_no < current:
            done = detachment(tx, sale_id, attach_no)
            assert done is not None  # attach numbers below `current` were all undone
            if not _same_member(tx, done.member_id, member_id):
                raise ServiceError("detach.conflict", "that attach was of another member")
            return _replayed(tx, done)
        if attach_no is not None and attach_no > current:
            raise ServiceError("detach.not_attached", "no such attach of this sale yet")
        if not _same_member(tx, row.member_id, member_id):
            return _refuse_stale(tx, row, member_id, attach_no)
        on_sale = row.member_id
        assert on_sale is not None
        if row.status != "recorded":
            raise ServiceError("sale.reversed", "this sale was reversed")
        window = timedelta(minutes=station.settings.station.attach_window_min)
        if now - datetime.fromisoformat(row.recorded_at) > window:
            minutes = int(window.total_seconds() // 60)
            raise ServiceError(
                "detach.window",
                f"an attach can be undone within {minutes} minutes of the sale; "
                "a manager can reverse the sale or adjust points instead",
            )
        refused = undo_refusal(
            last_attaches(tx, [sale_id]).get(sale_id),
            actor=actor,
            manager=manager,
            reason=reason,
            now=now,
            cashier_window=timedelta(minutes=station.settings.station.cashier_undo_min),
        )
        if refused is not None:
            raise ServiceError(*refused)
        earn_id, debit_id, taken = _take_back(tx, row, on_sale, now, actor, reason)
        if not clear_sale_member(tx, sale_id, on_sale):
            raise AssertionError(f"sale {sale_id} changed inside its own transaction")
        at = now.isoformat()
        insert_detachment(
            tx,
            Detachment(
                sale_id, current, on_sale, row.points, taken, earn_id, debit_id, at, actor, reason
            ),
        )
        record_audit(
            tx,
            at=at,
            actor=actor,
            action="sale.member_detached",
            subject=sale_id,
            details={
                "member_id": on_sale,
                "attach_no": current,
                "points": row.points,
                "taken_back": taken,
                "reason": reason,
                "by_manager": manager,
            },
        )
        entries = (
            []
            if debit_id is None
            else [LedgerEntry(entry_id=debit_id, kind="reverse", points=-taken)]
        )
        event = SaleDetached(
            sale_id=sale_id,
            member_id=on_sale,
            attach_no=current,
            points=row.points,
            at=now,
            reason=reason or None,
            actor=actor,
            ledger=entries,
        )
        append_event(tx, event, at)
        updated = get_sale(tx, sale_id)
        assert updated is not None
        return DetachOutcome(view_of_row(updated), on_sale, current, row.points, taken, at, True)
