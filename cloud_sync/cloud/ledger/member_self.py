"""The member's own view of the ledger (`/m/api/v1/me`): who is signed in, and the home page.

A token names the member it was given to; a member merged into another since reads as its
survivor, and an erased (or unknown) member is nobody: `signed_in_member` answers None and
the app says "signed out". The home page is built from indexed look-ups only (the member's
row, its live lots, its sales in the longest tier window through `ix_sales_member`, the
stations it used by key), so it costs the same with a thousand members or millions.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from cloud_sync.core.events import parse_moment
from cloud_sync.core.privacy import MemberKeys, decrypt_field
from cloud_sync.core.ruleset import RuleSet
from cloud_sync.core.tiers import qualification_windows

from .aggregates import chain_zone
from .member_admin import family_of
from .member_progress import WindowSale, tier_progress
from .postings import millis
from .rulesets import RuleBook, RuleLookup
from .schema import lots, members, sales, stations

__all__ = [
    "EXPIRY_HORIZONS",
    "FRESHNESS_EN",
    "FRESHNESS_ZH",
    "MAX_WINDOW_SALES",
    "freshness",
    "member_home",
    "signed_in_member",
]

EXPIRY_HORIZONS = (30, 60, 90)
# Sales read for the tier windows, at most: a sale every two hours for ten years. A member
# beyond it (a fleet card) sees the tier the stations last reported, without progress.
MAX_WINDOW_SALES = 50_000
FRESHNESS_ZH = (
    "积分与交易来自总部账本；各油站通常几分钟内同步，离线油站的交易会在其恢复联网后到达。"
)
FRESHNESS_EN = (
    "Points and sales come from the chain's ledger; stations sync within minutes, and an "
    "offline station's sales arrive when it is back online."
)
_MAX_HOPS = 64
_DAY_MS = 86_400_000


def signed_in_member(conn: Connection, member_id: str) -> Any | None:
    """The member row a token's member reads as: itself, or the survivor it was merged
    into; None when there is no such member or it was erased (its phone is gone)."""
    row = conn.execute(select(members).where(members.c.member_id == member_id)).first()
    hops = 0
    while row is not None and row.status == "merged" and row.merged_into and hops < _MAX_HOPS:
        row = conn.execute(select(members).where(members.c.member_id == row.merged_into)).first()
        hops += 1
    if row is None or row.status != "active" or row.phone_index is None:
        return None
    return row


def freshness(conn: Connection, station_ids: set[str]) -> dict[str, Any]:
    """How fresh the ledger's answer is: the note, and the newest push of the member's
    stations (one look-up by key)."""
    newest: datetime | None = None
    if station_ids:
        stmt = select(stations.c.last_push_at).where(stations.c.station_id.in_(sorted(station_ids)))
        for at in conn.execute(stmt).scalars():
            if at is not None:
                moment = parse_moment(at)
                newest = moment if newest is None or moment > newest else newest
    return {
        "note": FRESHNESS_ZH,
        "note_en": FRESHNESS_EN,
        "stations_synced_at": None if newest is None else newest.isoformat(),
    }


def _balance(
    conn: Connection, row: Any, ruleset: RuleSet | None, now: datetime, zone: tzinfo
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The balance (live lots less the overdraft) and what expires in 30/60/90 days."""
    now_ms = millis(now)
    horizon_ms = now_ms + EXPIRY_HORIZONS[-1] * _DAY_MS
    live = conn.execute(
        select(lots.c.remaining, lots.c.expires_at, lots.c.expires_ms).where(
            lots.c.member_id == row.member_id, lots.c.remaining > 0
        )
    ).all()
    held = 0
    by_date: dict[str, int] = {}
    within = dict.fromkeys(EXPIRY_HORIZONS, 0)
    for lot in live:
        if lot.expires_ms is not None and lot.expires_ms <= now_ms:
            continue  # past its date, its expiry not booked yet: not spendable
        held += int(lot.remaining)
        if lot.expires_ms is None or lot.expires_ms > horizon_ms:
            continue
        day = parse_moment(lot.expires_at).astimezone(zone).date().isoformat()
        by_date[day] = by_date.get(day, 0) + int(lot.remaining)
        for days in EXPIRY_HORIZONS:
            if lot.expires_ms <= now_ms + days * _DAY_MS:
                within[days] += int(lot.remaining)
    points = held - int(row.overdraft)
    rate = None if ruleset is None else ruleset.redeem.points_per_yuan
    balance = {
        "points": points,
        "overdraft": int(row.overdraft),
        "points_per_yuan": rate,
        "min_redeem_points": None if ruleset is None else ruleset.redeem.min_points,
        # What the points buy at the rate in force, rounded down to the fen.
        "yuan_fen": None if not rate else max(points, 0) * 100 // rate,
    }
    expiring = {
        "within": [{"days": days, "points": within[days]} for days in EXPIRY_HORIZONS],
        "by_date": [{"date": day, "points": pts} for day, pts in sorted(by_date.items())],
    }
    return balance, expiring


def _window_sales(
    conn: Connection, family: list[str], days: int, now: datetime
) -> tuple[list[WindowSale], set[str], bool]:
    """The member's standing sales of the last `days` days (one range of ix_sales_member
    per id), the stations they were at, and whether MAX_WINDOW_SALES cut them short.

    `ended_at` is ISO text with the station's offset, so the range starts a day early in
    text (no offset is 24 hours) and the exact instant decides here."""
    start = now - timedelta(days=days)
    bound = (start - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    rows = conn.execute(
        select(sales.c.ended_at, sales.c.litres, sales.c.amount, sales.c.station_id)
        .where(
            sales.c.member_id.in_(family),
            sales.c.ended_at >= bound,
            sales.c.status == "recorded",
        )
        .limit(MAX_WINDOW_SALES + 1)
    ).all()
    found: list[WindowSale] = []
    used: set[str] = set()
    for row in rows[:MAX_WINDOW_SALES]:
        at = parse_moment(row.ended_at)
        if start <= at <= now:
            found.append(WindowSale(at, Decimal(row.litres), Decimal(row.amount)))
            used.add(row.station_id)
    return found, used, len(rows) > MAX_WINDOW_SALES


def _stored_tier(row: Any, ruleset: RuleSet | None) -> dict[str, Any]:
    """The tier the stations last reported (no rule set, or too many sales to sum)."""
    code = row.tier
    name = code
    if ruleset is not None and code is not None:
        with contextlib.suppress(KeyError):  # a tier the rules in force no longer know
            name = ruleset.tier(code).name
    return {
        "tier": {"code": code, "name": name, "via": "reported", "trial_until": None},
        "next": None,
        "keep": None,
    }


def member_home(
    conn: Connection, keys: MemberKeys, rules: RuleBook, member_id: str, now: datetime
) -> dict[str, Any] | None:
    """Everything the app's home page shows, for the member `signed_in_member` resolved."""
    row = signed_in_member(conn, member_id)
    if row is None:
        return None
    ruleset = RuleLookup(rules, conn).in_force(now)
    zone = chain_zone(conn)
    balance, expiring = _balance(conn, row, ruleset, now, zone)
    used: set[str] = set() if row.registered_station is None else {row.registered_station}
    windows = [] if ruleset is None else sorted(qualification_windows(ruleset))
    progress = _stored_tier(row, ruleset)
    if ruleset is not None:
        found: list[WindowSale] = []
        cut = False
        if windows:
            found, at_stations, cut = _window_sales(
                conn, family_of(conn, row.member_id), windows[-1], now
            )
            used |= at_stations
        if not cut:
            progress = tier_progress(
                ruleset,
                found,
                registered_at=parse_moment(row.registered_at),
                now=now,
                zone=zone,
            )
    progress["tier"]["reported"] = row.tier
    return {
        "member_id": row.member_id,
        "phone_masked": row.phone_masked,
        "name": None if row.name_sealed is None else decrypt_field(keys, "name", row.name_sealed),
        "registered_at": row.registered_at,
        "balance": balance,
        "expiring": expiring,
        **progress,
        "marketing": {"consent": row.marketing_at is not None, "at": row.marketing_at},
        "ruleset_version": None if ruleset is None else ruleset.version,
        "as_of": now.isoformat(),
        "freshness": freshness(conn, used),
    }
