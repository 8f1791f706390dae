"""One function per event kind: check the validated event, then change the working set.

The event arrives as its model (`cloud_sync.core.events`): every field is already typed and
bounded. Every check here comes before the first change, so an event that is rejected
leaves nothing behind; the whole batch then goes on with the next event. Adding an event
kind is one model there and one handler here, bound in `HANDLERS`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from cloud_sync.core.events import (
    EarnReceipt,
    Event,
    MemberRegistered,
    MemberTierChanged,
    PlateAttached,
    PointsAdjusted,
    PointsExpired,
    PointsRedeemed,
    SaleDetached,
    SaleMemberAttached,
    SaleRecorded,
    SaleReversed,
)
from cloud_sync.core.pricing import SaleFacts, price_sale
from cloud_sync.core.ruleset import points_expire_at

from .aggregates import chain_zone, tier_moved, tier_moves
from .book import Sale
from .context import Context
from .detach import sale_detached
from .invoice_sales import SALE_REVERSED
from .members import attach_plate, register_member
from .payload import MAX_INTEGER, Rejected, parse_moment
from .postings import ADJUSTMENTS, ISSUED, Credit, credit, debit, millis, redeem, reverse_earn
from .trust import AllowanceFacts, Flag, adjustment_excess, redemption_flags

__all__ = ["HANDLERS", "Handler", "book_adjustment"]

# Flags HQ sees that never count towards a suspension on their own: a suspended station's
# redemptions, and times a station PC's drifting clock can explain.
_NOTED_ONLY = frozenset(
    {"redemption.while_suspended", "redemption.future", "redemption.before_allowance"}
)
E = TypeVar("E", bound=Event)
Handler = Callable[[Context, Any], None]


def _earn_credits(e: SaleRecorded | SaleMemberAttached) -> list[Credit]:
    """The station's earn entries: one lot each, at the expiry the station declared."""
    credits: list[Credit] = []
    for number, entry in enumerate(e.ledger):
        if entry.kind != "earn":
            continue
        if entry.points < 1:
            raise Rejected(
                "payload.invalid", f"{e.kind} field 'ledger.{number}.points' must be at least 1"
            )
        credits.append(Credit(entry.points, entry.expires_at))
    if sum(c.points for c in credits) != e.points:
        raise Rejected(
            "sale.ledger_mismatch",
            f"{e.kind} claims {e.points} points but its earn entries hold "
            f"{sum(c.points for c in credits)}",
        )
    return credits


def _recompute(
    ctx: Context,
    version: int | None,
    receipt: EarnReceipt | None,
    facts: SaleFacts,
) -> int | None:
    """The cloud's own pricing under the declared version and the receipt's tier.

    None (unverified) when the version was never published here or the receipt names no
    tier the rules know: the station's points are honoured either way.
    """
    if version is None or receipt is None:
        return None
    ruleset = ctx.rules.version(version)
    if ruleset is None:
        return None
    try:
        points = price_sale(ruleset, facts, receipt.tier).points
    except (KeyError, ValueError, TypeError, ArithmeticError):
        return None
    return points if abs(points) < MAX_INTEGER else None


def _within(credits: list[Credit], total: int) -> list[Credit]:
    """The station's earn lots cut down to `total` points, soonest first as it listed them."""
    kept: list[Credit] = []
    left = total
    for item in credits:
        take = min(item.points, left)
        if take > 0:
            kept.append(Credit(take, item.expires_at))
        left -= take
    return kept


def _book_earn(
    ctx: Context,
    sale: Sale,
    credits: list[Credit],
    recomputed: int | None,
    at: datetime,
) -> None:
    """Book a sale's points: what the rules give (or, unverifiable, up to a plausible
    amount); a claim beyond that is held for HQ and flagged, never booked silently."""
    if sale.member_id is None or (sale.points == 0 and not recomputed):
        return
    member = ctx.member(sale.member_id)
    ceiling = (
        recomputed if recomputed is not None else min(sale.points, ctx.trust.unverified_sale_points)
    )
    if sale.points > ceiling:
        excess = sale.points - ceiling
        code, why = (
            ("sale.points_over_rules", f"the rules give {recomputed}")
            if recomputed is not None
            else (
                "sale.points_unverified",
                "the cloud cannot price it (no receipt, an unpublished rule set or an unknown "
                f"tier); {ceiling} booked",
            )
        )
        hold(
            ctx,
            member.member_id,
            excess,
            credits[0].expires_at if credits else None,
            at,
            Flag(
                code,
                f"sale {sale.sale_id} claims {sale.points} points, {why}; {excess} held for HQ",
                points=excess,
                member_id=member.member_id,
            ),
            reason=f"points of sale {sale.sale_id} beyond the rules",
        )
        credits = _within(credits, ceiling)  # the sale keeps its claim, for the variance report
        if ceiling == 0 and not recomputed:
            return
    credit(
        ctx.book,
        member,
        credits,
        kind="earn",
        counter=ISSUED,
        booking=ctx.booking(at),
        recomputed=recomputed,
        sale_id=sale.sale_id,
    )


def hold(
    ctx: Context,
    member_id: str,
    points: int,
    expires: datetime | None,
    at: datetime,
    flag: Flag,
    *,
    reason: str | None,
    actor: str | None = None,
    status: str = "pending",
) -> None:
    """Keep points a station asked for beyond its authority as an adjustment waiting for
    HQ (`review.decide_adjustment` books it, once, or never), and flag it."""
    ctx.book.add_adjustment(
        {
            "event_id": ctx.event_id,  # one event holds at most one item
            "station_id": ctx.station_id,
            "member_id": member_id,
            "points": points,
            "expires_at": None if expires is None else expires.isoformat(),
            "at": at.isoformat(),
            "reason": reason,
            "actor": actor,
            "status": status,
            "received_at": ctx.book.booked_at,
            "received_ms": millis(ctx.book.now),
            "decided_at": None,
            "decided_by": None,
            "note": None,
        }
    )
    if status != "applied":
        ctx.flag(flag)


def sale_recorded(ctx: Context, e: SaleRecorded) -> None:
    sale_id = e.sale_id
    if ctx.book.sale(sale_id) is not None:
        raise Rejected("sale.exists", f"sale {sale_id} was recorded by an earlier event")
    ended_at = e.ended_at
    points = e.points
    member = None if e.member_id is None else ctx.member(e.member_id)
    if member is None and points:
        raise Rejected("sale.no_member", "a sale without a member earns no points")
    credits = _earn_credits(e)
    version = e.ruleset_version
    facts = SaleFacts(grade=e.grade, litres=e.litres, amount=e.amount, ended_at=ended_at)
    recomputed = None if member is None else _recompute(ctx, version, e.receipt, facts)
    sale = Sale(
        sale_id=sale_id,
        station_id=ctx.station_id,
        event_id=ctx.event_id,
        member_id=None if member is None else member.member_id,
        grade=e.grade,
        litres=str(e.litres),
        amount=str(e.amount),
        ended_at=ended_at.isoformat(),
        points=points,
        tier=e.tier,
        ruleset_version=version,
        recomputed=recomputed,
        status="recorded",
        source=e.source,
        source_key=e.source_key,
        fuelling_point=e.fuelling_point,
        nozzle=e.nozzle,
    )
    ctx.book.add_sale(sale)
    _book_earn(ctx, sale, credits, recomputed, ended_at)


def sale_member_attached(ctx: Context, e: SaleMemberAttached) -> None:
    sale_id = e.sale_id
    sale = ctx.book.sale(sale_id)
    if sale is None:
        raise Rejected("sale.unknown", f"no sale {sale_id}")
    ctx.own_sale(sale.station_id, sale_id)
    if sale.status != "recorded":
        raise Rejected("sale.reversed", f"sale {sale_id} was reversed")
    if sale.member_id is not None:
        raise Rejected("sale.already_attached", f"sale {sale_id} already has a member")
    member = ctx.member(e.member_id)
    points = e.points
    credits = _earn_credits(e)
    version = e.ruleset_version
    at = e.at
    ended_at = parse_moment(sale.ended_at)
    facts = SaleFacts(sale.grade, Decimal(sale.litres), Decimal(sale.amount), ended_at)
    recomputed = _recompute(ctx, version, e.receipt, facts)
    sale.member_id = member.member_id
    sale.points = points
    sale.tier = e.tier
    sale.ruleset_version = version
    sale.recomputed = recomputed
    sale.dirty = True
    _book_earn(ctx, sale, credits, recomputed, at or ended_at)


def sale_reversed(ctx: Context, e: SaleReversed) -> None:
    """Undo the sale's earn as booked (postings.reverse_earn): its own lot first, what was
    spent elsewhere written off, what repaid an overdraft owed again."""
    sale_id = e.sale_id
    sale = ctx.book.sale(sale_id)
    if sale is None:
        raise Rejected("sale.unknown", f"no sale {sale_id}")
    ctx.own_sale(sale.station_id, sale_id)
    if sale.status == "reversed":
        raise Rejected("sale.reversed", f"sale {sale_id} was already reversed")
    at = e.at
    member = None if sale.member_id is None else ctx.member(sale.member_id)
    sale.status = "reversed"
    sale.dirty = True
    ctx.sale_changed(sale_id, SALE_REVERSED)  # nothing left to invoice
    if member is None:
        return
    own = ctx.book.lots_of_sale(sale_id)
    reverse_earn(
        ctx.book,
        member,
        own,
        claimed=sum(lot.points for lot in own),  # what was booked (a held excess never was)
        recomputed=sale.recomputed,
        booking=ctx.booking(at),
    )


def _allowance_facts(
    ctx: Context, allowance_id: str | None, member_sent: str
) -> AllowanceFacts | None:
    row = None if allowance_id is None else ctx.book.allowance(allowance_id)
    if row is None or allowance_id is None:
        return None
    return AllowanceFacts(
        allowance_id=allowance_id,
        station_id=row.station_id,
        points=int(row.points),
        per_member_cap=int(row.per_member_cap),
        expires_at=parse_moment(row.expires_at),
        used=ctx.book.redeemed_under(allowance_id, row.station_id),
        used_by_member=ctx.book.redeemed_under(allowance_id, row.station_id, member_sent),
        granted_at=parse_moment(row.granted_at),
    )


def points_redeemed(ctx: Context, e: PointsRedeemed) -> None:
    """Always booked (the customer has the goods); beyond the station's allowance it is
    flagged, and its overdraft is on HQ's review list instead of within an allowance."""
    redemption_id = e.redemption_id
    if ctx.book.redemption_exists(ctx.station_id, redemption_id):
        raise Rejected("redemption.exists", f"redemption {redemption_id} was booked before")
    member_sent = e.member_id
    member = ctx.member(member_sent)
    points = e.points
    value_fen = e.value_fen
    at = e.at
    allowance_id = e.allowance_id
    faults = redemption_flags(
        ctx.station_id,
        allowance_id,
        _allowance_facts(ctx, allowance_id, member_sent),
        points=points,
        at=at,
        now=ctx.book.now,
        clock_skew=timedelta(seconds=ctx.trust.clock_skew_s),
    )
    if ctx.suspended:
        faults.append(
            ("redemption.while_suspended", "the station's offline redemption is suspended")
        )
    shortfall = redeem(ctx.book, member, points, ctx.booking(at))
    for number, (code, detail) in enumerate(faults):
        ctx.flag(
            Flag(
                code,
                f"redemption {redemption_id}: {detail}",
                points=points,
                shortfall=shortfall if number == 0 else 0,  # counted once per redemption
                member_id=member.member_id,
                suspends=code not in _NOTED_ONLY,
            )
        )
    ctx.book.add_redemption(
        {
            "station_id": ctx.station_id,
            "redemption_id": redemption_id,
            "member_id": member.member_id,
            "points": points,
            "value_fen": value_fen,
            "allowance_id": allowance_id,
            "shortfall": shortfall,
            "at": at.isoformat(),
            "event_id": ctx.event_id,
            "member_sent": member_sent,
            "flag": faults[0][0] if faults else None,
        }
    )


def adjustment_expiry(ctx: Context, e: PointsAdjusted) -> datetime | None:
    """When granted points expire: as the station said, else as the rules in force say."""
    if e.points < 0:
        return None
    if e.expiry_declared:
        return e.expires_at
    at = e.at
    ruleset = ctx.rules.in_force(at)
    return None if ruleset is None else points_expire_at(ruleset, at)


def book_adjustment(
    ctx: Context, member_id: str, points: int, expires: datetime | None, at: datetime
) -> None:
    """Book a manual adjustment: taken back (what was spent is written off) or granted."""
    member = ctx.member(member_id)
    if points < 0:
        debit(
            ctx.book, member, -points, kind="adjust", counter=ADJUSTMENTS, booking=ctx.booking(at)
        )
        return
    credit(
        ctx.book,
        member,
        [Credit(points, expires)],
        kind="adjust",
        counter=ADJUSTMENTS,
        booking=ctx.booking(at),
    )


def points_adjusted(ctx: Context, e: PointsAdjusted) -> None:
    """Booked when within the station's bound; beyond it, held for HQ's approval."""
    member = ctx.member(e.member_id)
    points = e.points
    if points == 0:
        raise Rejected("payload.invalid", "points.adjusted needs non-zero points")
    at = e.at
    expires = adjustment_expiry(ctx, e)
    now_ms = millis(ctx.book.now)
    limits = ctx.trust.limits_for(ctx.station_id)
    recent = ctx.book.adjusted_since(ctx.station_id, now_ms - 24 * 3600 * 1000)
    excess = adjustment_excess(points, recent, limits)
    detail = f"adjustment of member {member.member_id}: {excess}; waiting for HQ"
    hold(
        ctx,
        member.member_id,
        points,
        expires,
        at,
        Flag(
            "adjustment.pending", detail, points=points, member_id=member.member_id, suspends=False
        ),
        reason=e.reason,
        actor=e.actor,
        status="applied" if excess is None else "pending",
    )
    if excess is not None:
        ctx.held = f"adjustment.pending: {detail}"
        return
    book_adjustment(ctx, member.member_id, points, expires, at)


def points_expired(ctx: Context, e: PointsExpired) -> None:
    """Recorded only: the cloud expires lots by their dates itself (expire_lots)."""
    ctx.member(e.member_id)


def tier_changed(ctx: Context, e: MemberTierChanged) -> None:
    member = ctx.member(e.member_id)
    tier = e.tier
    conn = ctx.book.conn
    moved = tier_moved(chain_zone(conn), e.at or ctx.book.now, e.previous_tier, tier)
    if moved:
        tier_moves(conn, Counter([moved]))
    if member.tier != tier:
        member.tier = tier
        member.dirty = True
        ctx.book.touch(member)


def _bind(model: type[E], handler: Callable[[Context, E], None]) -> tuple[str, Handler]:
    """A kind's handler, type-checked against the kind's model."""
    return model.kind, handler


HANDLERS: dict[str, Handler] = dict(
    [
        _bind(MemberRegistered, register_member),
        _bind(PlateAttached, attach_plate),
        _bind(SaleRecorded, sale_recorded),
        _bind(SaleMemberAttached, sale_member_attached),
        _bind(SaleReversed, sale_reversed),
        _bind(SaleDetached, sale_detached),
        _bind(PointsRedeemed, points_redeemed),
        _bind(PointsAdjusted, points_adjusted),
        _bind(PointsExpired, points_expired),
        _bind(MemberTierChanged, tier_changed),
    ]
)
