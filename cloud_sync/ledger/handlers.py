"""One function per event kind: read and check the payload, then change the working set.

Every check comes before the first change, so an event that is rejected leaves nothing
behind; the whole batch then goes on with the next event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from cloud_sync.loyalty.pricing import SaleFacts, price_sale
from cloud_sync.loyalty.ruleset import points_expire_at

from .book import Sale
from .context import Context
from .members import attach_plate, register_member
from .payload import (
    ID_LENGTH,
    MAX_INTEGER,
    SHORT_LENGTH,
    Payload,
    Rejected,
    checked_integer,
    parse_moment,
)
from .postings import ADJUSTMENTS, ISSUED, Credit, credit, debit, millis, redeem, reverse_earn
from .trust import AllowanceFacts, Flag, adjustment_excess, redemption_flags

__all__ = ["HANDLERS", "book_adjustment"]

_NOTE_LENGTH = 512


def _earn_credits(p: Payload, points: int) -> list[Credit]:
    """The station's earn entries: one lot each, at the expiry the station declared."""
    credits: list[Credit] = []
    for entry in p.objects("ledger"):
        if entry.get("kind") != "earn":
            continue
        value = checked_integer(p.kind, "ledger.points", entry.get("points"), low=1)
        raw_expiry = entry.get("expires_at")
        try:
            expires = None if raw_expiry is None else parse_moment(str(raw_expiry))
        except ValueError:
            raise Rejected(
                "payload.invalid", f"{p.kind} earn entry expires_at is not a time"
            ) from None
        credits.append(Credit(value, expires))
    if sum(c.points for c in credits) != points:
        raise Rejected(
            "sale.ledger_mismatch",
            f"{p.kind} claims {points} points but its earn entries hold "
            f"{sum(c.points for c in credits)}",
        )
    return credits


def _recompute(
    ctx: Context,
    version: int | None,
    receipt: Mapping[str, Any] | None,
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
    tier = receipt.get("tier")
    if not isinstance(tier, str):
        return None
    try:
        points = price_sale(ruleset, facts, tier).points
    except (KeyError, ValueError, TypeError, ArithmeticError):
        return None
    return points if abs(points) < MAX_INTEGER else None


def _book_earn(
    ctx: Context,
    sale: Sale,
    credits: list[Credit],
    recomputed: int | None,
    at: datetime,
) -> None:
    if sale.member_id is None or (sale.points == 0 and not recomputed):
        return
    member = ctx.member(sale.member_id)
    if recomputed is not None and sale.points > recomputed:
        ctx.flag(
            Flag(
                "sale.points_over_rules",
                f"sale {sale.sale_id} claims {sale.points} points, the rules give {recomputed}",
                points=sale.points - recomputed,
                member_id=member.member_id,
            )
        )
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


def sale_recorded(ctx: Context, p: Payload) -> None:
    sale_id = p.text("sale_id", longest=ID_LENGTH)
    if ctx.book.sale(sale_id) is not None:
        raise Rejected("sale.exists", f"sale {sale_id} was recorded by an earlier event")
    p.text("source")
    grade = p.text("grade", longest=SHORT_LENGTH)
    litres, amount = p.decimal("litres"), p.decimal("amount")
    ended_at = p.moment("ended_at")
    points = p.integer("points", low=0)
    member_id = p.opt_text("member_id", longest=ID_LENGTH)
    member = None if member_id is None else ctx.member(member_id)
    if member is None and points:
        raise Rejected("sale.no_member", "a sale without a member earns no points")
    credits = _earn_credits(p, points)
    version = p.opt_integer("ruleset_version")
    facts = SaleFacts(grade=grade, litres=litres, amount=amount, ended_at=ended_at)
    recomputed = (
        None if member is None else _recompute(ctx, version, p.opt_object("receipt"), facts)
    )
    sale = Sale(
        sale_id=sale_id,
        station_id=ctx.station_id,
        event_id=ctx.event_id,
        member_id=None if member is None else member.member_id,
        grade=grade,
        litres=str(litres),
        amount=str(amount),
        ended_at=ended_at.isoformat(),
        points=points,
        tier=p.opt_text("tier", longest=SHORT_LENGTH),
        ruleset_version=version,
        recomputed=recomputed,
        status="recorded",
    )
    ctx.book.add_sale(sale)
    _book_earn(ctx, sale, credits, recomputed, ended_at)


def sale_member_attached(ctx: Context, p: Payload) -> None:
    sale_id = p.text("sale_id")
    sale = ctx.book.sale(sale_id)
    if sale is None:
        raise Rejected("sale.unknown", f"no sale {sale_id}")
    ctx.own_sale(sale.station_id, sale_id)
    if sale.status != "recorded":
        raise Rejected("sale.reversed", f"sale {sale_id} was reversed")
    if sale.member_id is not None:
        raise Rejected("sale.already_attached", f"sale {sale_id} already has a member")
    member = ctx.member(p.text("member_id"))
    points = p.integer("points", low=0)
    credits = _earn_credits(p, points)
    version = p.opt_integer("ruleset_version")
    at = p.opt_moment("at")
    ended_at = parse_moment(sale.ended_at)
    facts = SaleFacts(sale.grade, Decimal(sale.litres), Decimal(sale.amount), ended_at)
    recomputed = _recompute(ctx, version, p.opt_object("receipt"), facts)
    sale.member_id = member.member_id
    sale.points = points
    sale.tier = p.opt_text("tier", longest=SHORT_LENGTH)
    sale.ruleset_version = version
    sale.recomputed = recomputed
    sale.dirty = True
    _book_earn(ctx, sale, credits, recomputed, at or ended_at)


def sale_reversed(ctx: Context, p: Payload) -> None:
    """Undo the sale's earn as booked (postings.reverse_earn): its own lot first, what was
    spent elsewhere written off, what repaid an overdraft owed again."""
    sale_id = p.text("sale_id")
    sale = ctx.book.sale(sale_id)
    if sale is None:
        raise Rejected("sale.unknown", f"no sale {sale_id}")
    ctx.own_sale(sale.station_id, sale_id)
    if sale.status == "reversed":
        raise Rejected("sale.reversed", f"sale {sale_id} was already reversed")
    at = p.moment("at")
    member = None if sale.member_id is None else ctx.member(sale.member_id)
    sale.status = "reversed"
    sale.dirty = True
    if member is None:
        return
    reverse_earn(
        ctx.book,
        member,
        ctx.book.lots_of_sale(sale_id),
        claimed=sale.points,
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
        used=ctx.book.redeemed_under(allowance_id),
        used_by_member=ctx.book.redeemed_under(allowance_id, member_sent),
    )


def points_redeemed(ctx: Context, p: Payload) -> None:
    """Always booked (the customer has the goods); beyond the station's allowance it is
    flagged, and its overdraft is on HQ's review list instead of within an allowance."""
    redemption_id = p.text("redemption_id", longest=ID_LENGTH)
    if ctx.book.redemption_exists(ctx.station_id, redemption_id):
        raise Rejected("redemption.exists", f"redemption {redemption_id} was booked before")
    member_sent = p.text("member_id", longest=ID_LENGTH)
    member = ctx.member(member_sent)
    points = p.integer("points", low=1)
    value_fen = p.integer("value_fen", low=0)
    at = p.moment("at")
    allowance_id = p.opt_text("allowance_id", longest=ID_LENGTH)
    faults = redemption_flags(
        ctx.station_id,
        allowance_id,
        _allowance_facts(ctx, allowance_id, member_sent),
        points=points,
        at=at,
        clock_skew=timedelta(seconds=ctx.trust.clock_skew_s),
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


def adjustment_expiry(ctx: Context, p: Payload, at: datetime, points: int) -> datetime | None:
    """When granted points expire: as the station said, else as the rules in force say."""
    if points < 0:
        return None
    if p.has("expires_at"):
        return p.opt_moment("expires_at")
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


def _note(p: Payload, key: str) -> str | None:
    """Free text kept for HQ's eyes only: cut to length, never a reason to reject."""
    value = p.data.get(key)
    return value[:_NOTE_LENGTH] if isinstance(value, str) else None


def points_adjusted(ctx: Context, p: Payload) -> None:
    """Booked when within the station's bound; beyond it, held for HQ's approval."""
    member = ctx.member(p.text("member_id", longest=ID_LENGTH))
    points = p.integer("points")
    if points == 0:
        raise Rejected("payload.invalid", "points.adjusted needs non-zero points")
    at = p.moment("at")
    expires = adjustment_expiry(ctx, p, at, points)
    now_ms = millis(ctx.book.now)
    limits = ctx.trust.limits_for(ctx.station_id)
    recent = ctx.book.adjusted_since(ctx.station_id, now_ms - 24 * 3600 * 1000)
    excess = adjustment_excess(points, recent, limits)
    ctx.book.add_adjustment(
        {
            "event_id": ctx.event_id,
            "station_id": ctx.station_id,
            "member_id": member.member_id,
            "points": points,
            "expires_at": None if expires is None else expires.isoformat(),
            "at": at.isoformat(),
            "reason": _note(p, "reason"),
            "actor": _note(p, "actor"),
            "status": "applied" if excess is None else "pending",
            "received_at": ctx.book.booked_at,
            "received_ms": now_ms,
            "decided_at": None,
            "decided_by": None,
            "note": None,
        }
    )
    if excess is not None:
        detail = f"adjustment of member {member.member_id}: {excess}; waiting for HQ"
        ctx.flag(
            Flag(
                "adjustment.pending",
                detail,
                points=points,
                member_id=member.member_id,
                suspends=False,
            )
        )
        ctx.held = f"adjustment.pending: {detail}"
        return
    book_adjustment(ctx, member.member_id, points, expires, at)


def points_expired(ctx: Context, p: Payload) -> None:
    """Recorded only: the cloud expires lots by their dates itself (expire_lots)."""
    ctx.member(p.text("member_id"))
    p.integer("points", low=0)


def tier_changed(ctx: Context, p: Payload) -> None:
    member = ctx.member(p.text("member_id"))
    tier = p.opt_text("tier", longest=SHORT_LENGTH) or p.opt_text("to", longest=SHORT_LENGTH)
    if tier is None:
        raise Rejected("payload.missing", "member.tier_changed needs 'tier'")
    if member.tier != tier:
        member.tier = tier
        member.dirty = True
        ctx.book.touch(member)


HANDLERS: dict[str, Callable[[Context, Payload], None]] = {
    "member.registered": register_member,
    "plate.attached": attach_plate,
    "sale.recorded": sale_recorded,
    "sale.member_attached": sale_member_attached,
    "sale.reversed": sale_reversed,
    "points.redeemed": points_redeemed,
    "points.adjusted": points_adjusted,
    "points.expired": points_expired,
    "member.tier_changed": tier_changed,
}
