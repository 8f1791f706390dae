"""Double-entry postings over points lots: earn, spend, take back, expire, merge.

Every movement is one journal whose lines sum to zero. A member's account always equals
its lots' remaining points (expired but not yet booked included) minus its overdraft; the
functions here keep that true by changing lots, overdraft and lines together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cloud_sync.core.lots import Lot as CoreLot
from cloud_sync.core.lots import spend_order

from .accounts import ADJUSTMENTS, EXPIRED, ISSUED, REDEEMED, VARIANCE, WRITTEN_OFF
from .book import Book, Lot, Member, new_id

__all__ = [
    "ADJUSTMENTS",
    "EXPIRED",
    "ISSUED",
    "REDEEMED",
    "VARIANCE",
    "WRITTEN_OFF",
    "Booking",
    "Credit",
    "account",
    "credit",
    "debit",
    "expire",
    "millis",
    "redeem",
    "reverse_earn",
    "transfer",
]


def account(member_id: str) -> str:
    return f"member:{member_id}"


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class Credit:
    """One lot to book: its points and when they expire (None: never)."""

    points: int
    expires_at: datetime | None


@dataclass(frozen=True)
class Booking:
    """Where a journal comes from: the event (if any), the station, the fact's own time."""

    at: datetime
    event_id: str | None = None
    station_id: str | None = None


def _repay(book: Book, member: Member, points: int) -> int:
    """Later earnings repay the overdraft first; returns the points that repaid it."""
    repaid = min(member.overdraft, points)
    if repaid:
        member.overdraft -= repaid
        member.dirty = True
        if member.overdraft == 0 and member.denied:
            member.denied = False
            book.touch_deny(member)
    return repaid


def _owe(book: Book, member: Member, points: int) -> None:
    """Points become the member's overdraft again, and the member is denied."""
    if points <= 0:
        return
    member.overdraft += points
    member.dirty = True
    if not member.denied:
        member.denied = True
        book.touch_deny(member)


def credit(
    book: Book,
    member: Member,
    credits: Sequence[Credit],
    *,
    kind: str,
    counter: str,
    booking: Booking,
    recomputed: int | None = None,
    sale_id: str | None = None,
) -> None:
    """Book earned (or granted) points as lots; the counter account issues them.

    With `recomputed` (the cloud's own pricing of a sale) the counter account issues what
    the rules say and `variance` takes the difference from what the station claimed.
    """
    claimed = sum(c.points for c in credits)
    journal_id = new_id()
    issued = claimed if recomputed is None else recomputed
    postings = [(account(member.member_id), claimed), (counter, -issued)]
    if recomputed is not None:
        postings.append((VARIANCE, recomputed - claimed))
    if (
        book.journal(
            kind,
            postings,
            at=booking.at.isoformat(),
            event_id=booking.event_id,
            station_id=booking.station_id,
            member_id=member.member_id,
            journal_id=journal_id,
        )
        is None
    ):
        return
    earned_ms = millis(booking.at)
    for item in credits:
        if item.points <= 0:
            continue
        repaid = _repay(book, member, item.points)
        book.add_lot(
            Lot(
                lot_id=new_id(),
                member_id=member.member_id,
                points=item.points,
                remaining=item.points - repaid,
                expired=0,
                repaid=repaid,
                expires_at=None if item.expires_at is None else item.expires_at.isoformat(),
                expires_ms=None if item.expires_at is None else millis(item.expires_at),
                earned_ms=earned_ms,
                source=kind,
                sale_id=sale_id,
                journal_id=journal_id,
            )
        )
    book.touch(member)


def _spend_order(lots: Sequence[Lot], at: datetime, first: Sequence[Lot]) -> list[Lot]:
    """`first` (a sale's own lots) before anything else, then the core's usual order."""
    own = [lot for lot in first if lot.remaining > 0]
    others = [lot for lot in lots if all(lot is not o for o in own)]
    core = [
        CoreLot(
            lot_id=i,
            remaining=lot.remaining,
            expires_at=None
            if lot.expires_ms is None
            else datetime.fromtimestamp(lot.expires_ms / 1000, UTC),
            earned_seq=lot.earned_ms,
        )
        for i, lot in enumerate(others)
    ]
    return own + [others[c.lot_id] for c in spend_order(core, at)]


def _take(book: Book, member: Member, points: int, at: datetime, first: Sequence[Lot] = ()) -> int:
    """Consume up to `points` from the member's lots; returns the shortfall."""
    left = points
    for lot in _spend_order(book.lots_of(member.member_id), at, first):
        take = min(lot.remaining, left)
        lot.remaining -= take
        lot.dirty = True
        left -= take
        if left == 0:
            break
    return left


def redeem(book: Book, member: Member, points: int, booking: Booking) -> int:
    """Spend soonest-expiring first; a shortfall is an overdraft (the customer has the goods)
    and puts the member on the deny list. Returns the shortfall."""
    shortfall = _take(book, member, points, booking.at)
    _owe(book, member, shortfall)
    book.journal(
        "redeem",
        [(account(member.member_id), -points), (REDEEMED, points)],
        at=booking.at.isoformat(),
        event_id=booking.event_id,
        station_id=booking.station_id,
        member_id=member.member_id,
    )
    book.touch(member)
    return shortfall


def debit(
    book: Book,
    member: Member,
    points: int,
    *,
    kind: str,
    counter: str,
    booking: Booking,
) -> int:
    """Take points back (a negative adjustment); what the member already spent is written
    off, never turned into an overdraft no allowance covered. Returns that."""
    written_off = _take(book, member, points, booking.at)
    book.journal(
        kind,
        [
            (account(member.member_id), -(points - written_off)),
            (counter, points),
            (WRITTEN_OFF, -written_off),
        ],
        at=booking.at.isoformat(),
        event_id=booking.event_id,
        station_id=booking.station_id,
        member_id=member.member_id,
    )
    book.touch(member)
    return written_off


def reverse_earn(
    book: Book,
    member: Member,
    own: Sequence[Lot],
    *,
    claimed: int,
    recomputed: int | None,
    booking: Booking,
    kind: str = "reverse",
) -> int:
    """Undo a sale's earn journal as booked: issued and variance (the cloud's pricing against
    the station's claim) go back to zero for a sale that no longer exists.

    On the member's side: what the sale's lots still hold is taken back first, then other
    lots; what the member already spent elsewhere is written off; what went to repay the
    overdraft is owed again (the overdraft came from a redemption, within an allowance);
    what already expired leaves `points_expired`, as those points never existed. Returns
    the points written off. `kind` names the journal: `reverse` (the sale is gone) or
    `detach` (the sale stays, its member is taken off).
    """
    expired = sum(lot.expired for lot in own)
    repaid = sum(lot.repaid for lot in own)
    take_back = max(0, claimed - expired - repaid)
    written_off = _take(book, member, take_back, booking.at, own) if take_back else 0
    _owe(book, member, repaid)
    issued = claimed if recomputed is None else recomputed
    booked = book.journal(
        kind,
        [
            (account(member.member_id), -(claimed - expired - written_off)),
            (ISSUED, issued),
            (VARIANCE, claimed - issued),
            (EXPIRED, -expired),
            (WRITTEN_OFF, -written_off),
        ],
        at=booking.at.isoformat(),
        event_id=booking.event_id,
        station_id=booking.station_id,
        member_id=member.member_id,
    )
    if booked is not None:
        book.touch(member)
    return written_off


def expire(book: Book, member: Member, expiring: Sequence[Lot], booking: Booking) -> int:
    """Book the expiry of these lots' remaining points; returns the points expired."""
    total = 0
    for lot in expiring:
        total += lot.remaining
        lot.expired += lot.remaining
        lot.remaining = 0
        lot.dirty = True
    book.journal(
        "expire",
        [(account(member.member_id), -total), (EXPIRED, total)],
        at=booking.at.isoformat(),
        member_id=member.member_id,
    )
    if total:
        book.touch(member)
    return total


def transfer(book: Book, loser: Member, survivor: Member, booking: Booking) -> None:
    """Merge: the loser's lots, overdraft, plates and balance move to the survivor."""
    balance = sum(lot.remaining for lot in book.lots_of(loser.member_id)) - loser.overdraft
    book.merge_rows(loser.member_id, survivor.member_id)
    survivor.overdraft += loser.overdraft
    survivor.tier = survivor.tier or loser.tier
    loser.overdraft = 0
    loser.status = "merged"
    loser.merged_into = survivor.member_id
    loser.dirty = survivor.dirty = True
    if loser.denied:
        loser.denied = False
        book.touch_deny(loser)
    if survivor.overdraft > 0 and not survivor.denied:
        survivor.denied = True
        book.touch_deny(survivor)
    book.journal(
        "merge",
        [(account(loser.member_id), -balance), (account(survivor.member_id), balance)],
        at=booking.at.isoformat(),
        event_id=booking.event_id,
        station_id=booking.station_id,
        member_id=survivor.member_id,
    )
    book.touch(loser)
    book.touch(survivor)
