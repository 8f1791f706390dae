"""Tier decisions from a member's rolling activity, and the nightly recalculation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from cloud_sync.core.events import MemberTierChanged
from cloud_sync.core.ruleset import RuleSet, ruleset_in_force
from cloud_sync.core.tiers import Activity, TierDecision, qualification_windows, tier_at

from ..store import Tx
from ..store.audit import record_audit
from ..store.members import MemberRow, get_member, member_ids, set_member_tier
from ..store.outbox import append_event
from ..store.sales import activity_between
from .station import Station

__all__ = ["TierChange", "current_tier", "recalculate_tiers", "tier_for_sale"]

_ML_PER_LITRE = Decimal(1000)
_FEN_PER_YUAN = Decimal(100)
_RECALC_BATCH = 500  # members per transaction: one fsync per batch, short write locks


@dataclass(frozen=True)
class TierChange:
    member_id: str
    old: str
    new: str


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _activity(
    tx: Tx, member_id: str, ruleset: RuleSet, at: datetime, *, include_end: bool
) -> dict[int, Activity]:
    windows: dict[int, Activity] = {}
    for days in qualification_windows(ruleset):
        totals = activity_between(
            tx, member_id, _ms(at - timedelta(days=days)), _ms(at), include_end=include_end
        )
        windows[days] = Activity(
            litres=Decimal(totals.litres_ml) / _ML_PER_LITRE,
            amount=Decimal(totals.amount_fen) / _FEN_PER_YUAN,
            visits=totals.visits,
        )
    return windows


def _decide(
    tx: Tx, member: MemberRow, ruleset: RuleSet, at: datetime, *, include_end: bool
) -> TierDecision:
    return tier_at(
        ruleset,
        activity_by_window=_activity(tx, member.member_id, ruleset, at, include_end=include_end),
        registered_at=datetime.fromisoformat(member.registered_at),
        at=at,
    )


def tier_for_sale(tx: Tx, member: MemberRow, ruleset: RuleSet, ended_at: datetime) -> TierDecision:
    """The tier that prices a sale: activity strictly before it, so the sale that crosses
    a threshold is priced at the old tier and the member holds the new one from the next."""
    return _decide(tx, member, ruleset, ended_at, include_end=False)


def current_tier(station: Station, tx: Tx, member: MemberRow, now: datetime) -> str | None:
    """The tier the member holds now (every sale so far counts); None without rules."""
    ruleset = ruleset_in_force(station.rulesets(tx), now)
    if ruleset is None:
        return None
    return _decide(tx, member, ruleset, now, include_end=True).code


def _recalculate_one(station: Station, tx: Tx, member_id: str, now: datetime) -> TierChange | None:
    member = get_member(tx, member_id)
    if member is None:
        return None
    tier = current_tier(station, tx, member, now)
    if tier is None or tier == member.tier:
        return None
    at = now.isoformat()
    set_member_tier(tx, member_id, tier, at)
    record_audit(
        tx,
        at=at,
        actor="system:tiers",
        action="member.tier_changed",
        subject=member_id,
        details={"from": member.tier, "to": tier},
    )
    append_event(
        tx,
        MemberTierChanged(member_id=member_id, tier=tier, previous_tier=member.tier, at=now),
        at,
    )
    return TierChange(member_id, member.tier, tier)


def recalculate_tiers(station: Station) -> list[TierChange]:
    """Nightly job: upgrade and downgrade cached tiers as windows roll and trials end."""
    now = station.now()
    changes: list[TierChange] = []
    with station.store.read() as tx:
        ids = member_ids(tx)
    for start in range(0, len(ids), _RECALC_BATCH):
        with station.store.write() as tx:
            for member_id in ids[start : start + _RECALC_BATCH]:
                change = _recalculate_one(station, tx, member_id, now)
                if change is not None:
                    changes.append(change)
    return changes
