"""Read-only facts the till screen shows beside a sale or a member, in one read each.

The sales list names the member on each attached row (a masked phone, never the number),
and the customer panel says when points expire, date by date, so the cashier can tell the
member "120 points expire on 1 March" without opening anything else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from cloud_sync.core.lots import spend_order

from ..store import Tx
from ..store.ledger import lots_of_member
from ..store.members import get_member, members_merged_into
from ..store.outbox import member_events_after
from ..store.sync import get_snapshot
from .members import event_points
from .station import Station

__all__ = ["Expiring", "expiring_points", "member_labels"]

_MAX_LABELS = 200


@dataclass(frozen=True)
class Expiring:
    """Points that expire on one local date."""

    on: date
    points: int


def member_labels(station: Station, member_ids: Iterable[str]) -> dict[str, str]:
    """Masked phone per member id (unknown ids are left out); at most 200 ids at once."""
    wanted = list(dict.fromkeys(member_ids))[:_MAX_LABELS]
    labels: dict[str, str] = {}
    with station.store.read() as tx:
        for member_id in wanted:
            row = get_member(tx, member_id)
            if row is not None:
                labels[member_id] = row.phone_masked
    return labels


def _chain_lots(tx: Tx, member_id: str, now: datetime) -> list[tuple[datetime | None, int]]:
    """The member's live points by expiry: the chain's lots when a snapshot is held (own
    spends since the snapshot taken from the soonest first, as debits do), else the local
    lots."""
    snapshot = get_snapshot(tx, member_id)
    if snapshot is None:
        return [
            (lot.expires_at, lot.remaining)
            for lot in spend_order(lots_of_member(tx, member_id), now)
        ]
    lots = sorted(
        (
            (None if lot.expires_at is None else datetime.fromisoformat(lot.expires_at), lot.points)
            for lot in snapshot.lots
        ),
        key=lambda pair: (pair[0] is None, pair[0] or now),
    )
    live = [(at, points) for at, points in lots if at is None or at > now]
    own = member_events_after(
        tx,
        [member_id, *members_merged_into(tx, member_id)],
        snapshot.as_of_epoch,
        snapshot.as_of_seq,
    )
    spent = snapshot.overdraft - sum(event_points(e.kind, e.payload) for e in own)
    kept: list[tuple[datetime | None, int]] = []
    for at, points in live:
        used = min(points, max(0, spent))
        spent -= used
        if points - used > 0:
            kept.append((at, points - used))
    return kept


def expiring_points(
    station: Station, member_id: str, *, days: int = 90, dates: int = 3
) -> list[Expiring]:
    """The first `dates` local dates within `days` on which some of the points expire."""
    now = station.now()
    horizon = now + timedelta(days=days)
    totals: dict[date, int] = {}
    with station.store.read() as tx:
        lots = _chain_lots(tx, member_id, now)
    for at, points in lots:
        if at is None or at > horizon:
            continue
        day = at.astimezone(station.zone).date()
        if day not in totals and len(totals) >= dates:
            break
        totals[day] = totals.get(day, 0) + points
    return [Expiring(day, points) for day, points in sorted(totals.items())]
