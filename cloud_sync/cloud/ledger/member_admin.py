"""HQ's members: search, the member page's data, and HQ's own manual adjustment.

Phones and plates are found through their blind indexes under the chain's keys, exactly as
`views.find_member` does; an id is matched as it is. The adjustment is booked through the
ledger's own postings (a `Book`, as `review.decide_adjustment` books a held one) so lots,
overdraft, journals and the changes feed stay one story; the client's request id makes a
double click book once.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, or_, select

from cloud_sync.core.identity import IdentityError, parse_identifier
from cloud_sync.core.privacy import MemberKeys, blind_index
from cloud_sync.core.ruleset import points_expire_at

from .audit import record_audit
from .book import Book
from .changes import append_changes
from .context import Context
from .database import Database
from .errors import LedgerError
from .handlers import book_adjustment
from .keys import KeyRing
from .member_list import CHAIN_ZONE
from .payload import Rejected
from .postings import millis
from .rulesets import RuleBook, RuleLookup
from .schema import (
    adjustments,
    events,
    hq_audit,
    lots,
    member_activity,
    members,
    plates,
    redemptions,
    sales,
)
from .views import member_view, spendable_points

__all__ = [
    "ERASED_MARK",
    "HQ_STATION",
    "MAX_ADJUST",
    "audit_about",
    "event_bodies",
    "family_of",
    "hq_adjust",
    "member_page",
    "member_sales",
    "search_members",
    "tier_history",
]

ERASED_MARK = "已注销"
HQ_STATION = ""  # the adjustments table's station for HQ's own rows (as the aggregates)
MAX_ADJUST = 1_000_000
MAX_REASON = 200
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_MEMBER_ID = re.compile(r"^[0-9A-Za-z-]{1,64}$")
_PAGE_MAX = 200


def search_members(
    conn: Connection, keys: MemberKeys, q: str, now: datetime, limit: int = 20
) -> list[dict[str, Any]]:
    """Members matching a phone, a plate or a member id (what the search box holds)."""
    text = q.strip()
    if not text or len(text) > 64:
        raise LedgerError("member.query", "enter a phone number, a plate or a member id")
    found: list[str] = []
    if _MEMBER_ID.fullmatch(text) and ("-" in text or len(text) > 13):
        found += conn.execute(
            select(members.c.member_id).where(members.c.member_id == text)
        ).scalars()
    if not found:
        try:
            ident = parse_identifier(text)
        except IdentityError:
            if _MEMBER_ID.fullmatch(text):
                return []
            raise
        index = blind_index(keys, ident.kind, ident.value)
        if ident.kind == "phone":
            stmt = select(members.c.member_id).where(members.c.phone_index == index)
        else:
            stmt = select(plates.c.member_id).where(plates.c.plate_index == index)
        found += conn.execute(stmt.limit(limit)).scalars()
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for member_id in found:
        view = member_view(conn, keys, member_id, now)
        if view is None or view["member_id"] in seen:
            continue
        seen.add(view["member_id"])
        out.append(
            {
                key: view[key]
                for key in ("member_id", "phone_masked", "name", "tier", "points", "registered_at")
            }
            | {"plates": view["plates"]}
        )
    return out


def family_of(conn: Connection, member_id: str) -> list[str]:
    """The member and every id merged into it (their sales and events are its history)."""
    family = [member_id]
    frontier = [member_id]
    while frontier and len(family) < 1000:
        merged = list(
            conn.execute(
                select(members.c.member_id).where(members.c.merged_into.in_(frontier))
            ).scalars()
        )
        frontier = [m for m in merged if m not in family]
        family += frontier
    return family


def event_bodies(conn: Connection, kinds: tuple[str, ...], family: list[str]) -> list[Any]:
    """Stored events of these kinds naming one of the ids (a LIKE narrows, JSON decides)."""
    stmt = select(events.c.id, events.c.event_id, events.c.station_id, events.c.body).where(
        events.c.kind.in_(kinds),
        events.c.status == "applied",
        or_(*(events.c.body.contains(f'"{m}"') for m in family)),
    )
    out = []
    for row in conn.execute(stmt.order_by(events.c.id)):
        body = orjson.loads(row.body)
        payload = body.get("payload") or {}
        if payload.get("member_id") in family:
            out.append((row, body, payload))
    return out


def tier_history(conn: Connection, family: list[str], registered: Any) -> list[dict[str, Any]]:
    """Registration, then every member.tier_changed a station reported, oldest first."""
    history = [
        {
            "at": registered.registered_at,
            "tier": None,
            "previous_tier": None,
            "station_id": registered.registered_station,
            "what": "registered",
        }
    ]
    for row, body, payload in event_bodies(conn, ("member.tier_changed",), family):
        history.append(
            {
                "at": payload.get("at") or body.get("created_at"),
                "tier": payload.get("tier", payload.get("to")),
                "previous_tier": payload.get("previous_tier", payload.get("from")),
                "station_id": row.station_id,
                "what": "tier_changed",
            }
        )
    return history


def member_sales(
    conn: Connection, member_id: str, *, before: str | None = None, limit: int = 50
) -> dict[str, Any]:
    """The member's sales at every station, newest first; `before` is the last page's cursor
    (`ended_at|sale_id` of its last row)."""
    limit = max(1, min(limit, _PAGE_MAX))
    family = family_of(conn, member_id)
    stmt = select(sales).where(sales.c.member_id.in_(family))
    if before:
        at, _, sale_id = before.partition("|")
        stmt = stmt.where(
            or_(sales.c.ended_at < at, (sales.c.ended_at == at) & (sales.c.sale_id < sale_id))
        )
    rows = conn.execute(
        stmt.order_by(sales.c.ended_at.desc(), sales.c.sale_id.desc()).limit(limit + 1)
    ).all()
    page = [
        {
            "sale_id": r.sale_id,
            "station_id": r.station_id,
            "ended_at": r.ended_at,
            "grade": r.grade,
            "litres": r.litres,
            "amount": r.amount,
            "points": int(r.points),
            "tier": r.tier,
            "status": r.status,
            "source": r.source,
        }
        for r in rows[:limit]
    ]
    cursor = f"{page[-1]['ended_at']}|{page[-1]['sale_id']}" if len(rows) > limit else None
    return {"sales": page, "next": cursor}


def _redemptions(conn: Connection, family: list[str]) -> list[dict[str, Any]]:
    stmt = select(redemptions).where(redemptions.c.member_id.in_(family))
    rows = conn.execute(stmt.order_by(redemptions.c.at.desc()).limit(_PAGE_MAX))
    return [
        {
            "station_id": r.station_id,
            "redemption_id": r.redemption_id,
            "points": int(r.points),
            "value_fen": int(r.value_fen),
            "shortfall": int(r.shortfall),
            "at": r.at,
        }
        for r in rows
    ]


def _adjustments(conn: Connection, family: list[str]) -> list[dict[str, Any]]:
    stmt = select(adjustments).where(adjustments.c.member_id.in_(family))
    rows = conn.execute(stmt.order_by(adjustments.c.received_ms.desc()).limit(_PAGE_MAX))
    return [
        {
            "id": r.event_id,
            "station_id": r.station_id or None,  # None: HQ
            "points": int(r.points),
            "reason": r.reason,
            "actor": r.actor,
            "status": r.status,
            "at": r.at,
        }
        for r in rows
    ]


def _all_lots(conn: Connection, member_id: str, now: datetime) -> list[dict[str, Any]]:
    now_ms = millis(now)
    stmt = select(lots).where(lots.c.member_id == member_id)
    rows = conn.execute(stmt.order_by(lots.c.earned_ms.desc()).limit(_PAGE_MAX))
    return [
        {
            "points": int(r.points),
            "remaining": int(r.remaining),
            "expired": int(r.expired),
            "expires_at": r.expires_at,
            "live": int(r.remaining) > 0 and (r.expires_ms is None or r.expires_ms > now_ms),
            "source": r.source,
            "sale_id": r.sale_id,
            "earned_ms": int(r.earned_ms),
        }
        for r in rows
    ]


def member_page(
    conn: Connection, keys: MemberKeys, member_id: str, now: datetime
) -> dict[str, Any] | None:
    """Everything the member page shows (sales come paged from `member_sales`)."""
    view = member_view(conn, keys, member_id, now)
    if view is None:
        return None
    survivor = view["member_id"]
    row = conn.execute(select(members).where(members.c.member_id == survivor)).one()
    family = family_of(conn, survivor)
    activity = conn.execute(
        select(member_activity).where(member_activity.c.member_id == survivor)
    ).first()
    return {
        **view,
        "erased": row.phone_index is None,
        "consent": {"at": row.consent_at, "channel": row.consent_channel},
        "tier_history": tier_history(conn, family, row),
        "all_lots": _all_lots(conn, survivor, now),
        "redemptions": _redemptions(conn, family),
        "adjustments": _adjustments(conn, family),
        "last_sale_ms": None if activity is None else activity.last_sale_ms,
    }


def _validate_adjust(points: int, reason: str, request_id: str) -> str:
    if points == 0 or abs(points) > MAX_ADJUST:
        raise LedgerError(
            "member.adjust_points", f"an adjustment is 1 to {MAX_ADJUST:,} points, either sign"
        )
    cleaned = " ".join(reason.split())
    if not cleaned or len(cleaned) > MAX_REASON:
        raise LedgerError("member.adjust_reason", f"give a reason of 1 to {MAX_REASON} characters")
    if not _REQUEST_ID.fullmatch(request_id):
        raise LedgerError("member.request_id", "the request id is 8 to 64 letters, digits, - or _")
    return cleaned


def hq_adjust(
    db: Database,
    conn: Connection,
    keys: MemberKeys,
    rules: RuleBook,
    *,
    member_id: str,
    points: int,
    reason: str,
    request_id: str,
    actor: str,
    now: datetime,
) -> dict[str, Any]:
    """Grant (positive) or take back (negative) points at HQ, booked once per request id.

    The member's row is locked first (PostgreSQL), so a second click of the same request
    waits for the first and then finds it booked: it answers the same result, books nothing.
    """
    reason = _validate_adjust(points, reason, request_id)
    book = Book(conn, now, lock=db.dialect == "postgresql")
    key = f"hq:{request_id}"
    ctx = Context(book, KeyRing(keys, dict), RuleLookup(rules, conn), HQ_STATION, event_id=key)
    try:
        member = ctx.member(member_id)
    except Rejected as exc:
        raise LedgerError("member.unknown", exc.reason) from exc
    done = conn.execute(select(adjustments).where(adjustments.c.event_id == key)).first()
    if done is not None:
        if (done.member_id, int(done.points), done.reason) != (member.member_id, points, reason):
            raise LedgerError(
                "member.request_reused", "that request id was used for another adjustment"
            )
        return _adjust_answer(done, replayed=True)
    if member.phone_index is None:
        raise LedgerError("member.erased", "the member was erased: nothing to adjust")
    before = spendable_points(conn, member.member_id, now)
    ruleset = ctx.rules.in_force(now)
    expires = None if points < 0 or ruleset is None else points_expire_at(ruleset, now)
    book_adjustment(ctx, member.member_id, points, expires, now)
    # HQ's journal is HQ's: no station (the roll-forward's "HQ" row).
    for journal in book.journals:
        journal["station_id"] = None
    book.add_adjustment(
        {
            "event_id": key,
            "station_id": HQ_STATION,
            "member_id": member.member_id,
            "points": points,
            "expires_at": None if expires is None else expires.isoformat(),
            "at": now.astimezone(CHAIN_ZONE).isoformat(timespec="seconds"),  # as people read it
            "reason": reason,
            "actor": actor,
            "status": "applied",
            "received_at": now.isoformat(),
            "received_ms": millis(now),
            "decided_at": now.isoformat(),
            "decided_by": actor,
            "note": None,
        }
    )
    book.flush()
    changed = [("member", m) for m in book.touched] + [("deny", m) for m in book.deny_touched]
    after = spendable_points(conn, member.member_id, now)
    record_audit(
        conn,
        actor=actor,
        action="member.adjust",
        target=member.member_id,
        at=now,
        before={"points": before},
        after={"points": after, "adjusted": points, "reason": reason, "request_id": request_id},
    )
    append_changes(db, conn, changed, now)
    row = conn.execute(select(adjustments).where(adjustments.c.event_id == key)).one()
    return _adjust_answer(row, replayed=False)


def _adjust_answer(row: Any, *, replayed: bool) -> dict[str, Any]:
    return {
        "request_id": str(row.event_id)[3:],
        "member_id": row.member_id,
        "points": int(row.points),
        "reason": row.reason,
        "actor": row.actor,
        "at": row.at,
        "expires_at": row.expires_at,
        "replayed": replayed,
    }


def audit_about(conn: Connection, member_id: str, limit: int = 500) -> list[dict[str, Any]]:
    """HQ's audit entries whose target is this member, oldest first."""
    stmt = select(hq_audit).where(hq_audit.c.target == member_id).order_by(hq_audit.c.audit_id)
    out = []
    for row in conn.execute(stmt.limit(limit)).mappings():
        entry = {str(key): value for key, value in row.items()}
        for key in ("before", "after"):
            entry[key] = orjson.loads(entry[key]) if entry[key] is not None else None
        out.append(entry)
    return out
