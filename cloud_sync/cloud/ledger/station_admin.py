"""HQ's stations screen: every station's health, sync position, rule version, allowance,
variance, flags and quarantine in a constant number of grouped queries; enrolment,
revocation and token rotation, each audited in its own transaction.

What the cloud can know of a station's backlog: only what it has received. Per epoch it
keeps the highest sequence number it accepted (`high_water`) and the time of the last push;
a station does not report how many events wait in its outbox, so the list shows the last
pushed sequence and the time since, never a count of unsent events.

The list reads at most 2,000 stations with eight statements whatever their number (no
query per station); the per-station lookups are correlated subqueries on indexes
(`ix_sales_station_end`, `ix_sales_differing`, `ix_allowances_station`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final, Literal, get_args
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, func, literal_column, select, update

from .audit import record_audit
from .errors import LedgerError
from .postings import millis
from .review import list_flags
from .schema import (
    adjustments,
    agg_sales_day,
    allowances,
    events,
    high_water,
    redemptions,
    rulesets,
    sales,
    station_flags,
    station_keys,
    station_reviews,
    stations,
)
from .stations import add_station, rotate_token

__all__ = [
    "CHAIN_TZ",
    "HEALTHS",
    "SORTS",
    "Health",
    "Sort",
    "enrol_station",
    "health_counts",
    "health_of",
    "revoke_station",
    "rotate_station_token",
    "station_detail",
    "station_rows",
]

Health = Literal["online", "late", "offline", "never"]
HEALTHS: Final[tuple[Health, ...]] = ("online", "late", "offline", "never")
# The columns a list sorts by (the console's query parameter is this type too).
Sort = Literal[
    "id",
    "name",
    "health",
    "last_push_at",
    "high_water",
    "rule_version",
    "variance",
    "open_flags",
    "quarantined",
    "allowance_remaining",
]
SORTS: Final[tuple[str, ...]] = get_args(Sort)
_SORT_FIELD: Final = {"variance": "variance_points"}  # a row's variance is its points
CHAIN_TZ: Final = ZoneInfo("Asia/Shanghai")  # the days of agg_sales_day
_LATE: Final = timedelta(hours=1)
_OFFLINE: Final = timedelta(hours=24)
_NAME_MAX: Final = 64
_SEARCH_MAX: Final = 64
_RECENT: Final = 20
_DAYS: Final = 30
_REVOKED_PREFIX: Final = "revoked:"  # never a SHA-256 hex digest: no token hashes to it


def health_of(last_push_at: str | None, now: datetime) -> Health:
    """online: pushed within the hour; late: over 1 h ago; offline: over 24 h; never."""
    if not last_push_at:
        return "never"
    age = now - datetime.fromisoformat(last_push_at)
    if age > _OFFLINE:
        return "offline"
    if age > _LATE:
        return "late"
    return "online"


def _pairs(conn: Connection, stmt: Any) -> dict[str, Any]:
    return {str(row[0]): row for row in conn.execute(stmt)}


def _figures(conn: Connection, only: str | None) -> dict[str, dict[str, Any]]:
    """Per station: everything the list shows except health (which needs the clock)."""

    def scoped(stmt: Any, column: Any) -> Any:
        return stmt if only is None else stmt.where(column == only)

    latest_sale = (
        select(sales.c.ruleset_version)
        .where(sales.c.station_id == stations.c.station_id, sales.c.ruleset_version.is_not(None))
        .order_by(sales.c.ended_at.desc())
        .limit(1)
        .correlate(stations)
        .scalar_subquery()
    )
    base = conn.execute(
        scoped(
            select(
                stations.c.station_id,
                stations.c.name,
                stations.c.added_at,
                stations.c.keys_uploaded_at,
                stations.c.last_push_at,
                stations.c.revoked_at,
                latest_sale.label("rule_version"),
            ).order_by(stations.c.station_id),
            stations.c.station_id,
        )
    ).all()
    marks: dict[str, list[dict[str, int]]] = {}
    for row in conn.execute(
        scoped(
            select(high_water.c.station_id, high_water.c.epoch, high_water.c.high_water),
            high_water.c.station_id,
        ).order_by(high_water.c.station_id, high_water.c.epoch)
    ):
        marks.setdefault(row.station_id, []).append(
            {"epoch": int(row.epoch), "high_water": int(row.high_water)}
        )
    keys = _pairs(
        conn,
        scoped(
            select(station_keys.c.station_id, func.count()).group_by(station_keys.c.station_id),
            station_keys.c.station_id,
        ),
    )
    # Literal, not a bound parameter: the planner uses the partial ix_sales_differing only
    # when it can prove the query's condition implies the index's.
    differing = and_(
        sales.c.recomputed.is_not(None),
        sales.c.points != sales.c.recomputed,
        sales.c.member_id.is_not(None),
        sales.c.status != literal_column("'reversed'"),
    )
    variance = _pairs(
        conn,
        scoped(
            select(
                sales.c.station_id,
                func.coalesce(func.sum(sales.c.points - sales.c.recomputed), 0).label("points"),
                func.count().label("n"),
            )
            .where(differing)
            .group_by(sales.c.station_id),
            sales.c.station_id,
        ),
    )
    # The newest grant per station: a grouped max over ix_allowances_station, joined back.
    newest = (
        select(allowances.c.station_id, func.max(allowances.c.granted_ms).label("granted_ms"))
        .group_by(allowances.c.station_id)
        .subquery()
    )
    current = and_(
        newest.c.station_id == allowances.c.station_id,
        newest.c.granted_ms == allowances.c.granted_ms,
    )
    allowance = _pairs(
        conn,
        scoped(
            select(
                allowances.c.station_id,
                allowances.c.points,
                allowances.c.expires_at,
                allowances.c.expires_ms,
            ).join(newest, current),
            allowances.c.station_id,
        ),
    )
    # Points redeemed against each station's newest grant (a separate statement: nested in
    # the one above, PostgreSQL's planner chose to run it once per station).
    used = {
        str(sid): int(points)
        for sid, points in conn.execute(
            scoped(
                select(allowances.c.station_id, func.sum(redemptions.c.points))
                .join(newest, current)
                .join(
                    redemptions,
                    and_(
                        redemptions.c.allowance_id == allowances.c.allowance_id,
                        redemptions.c.station_id == allowances.c.station_id,
                    ),
                )
                .group_by(allowances.c.station_id),
                allowances.c.station_id,
            )
        )
    }
    flags = _pairs(
        conn,
        scoped(
            select(station_flags.c.station_id, func.count())
            .where(station_flags.c.resolved_at.is_(None))
            .group_by(station_flags.c.station_id),
            station_flags.c.station_id,
        ),
    )
    reviews = _pairs(
        conn,
        scoped(
            select(
                station_reviews.c.station_id, station_reviews.c.suspended, station_reviews.c.reason
            ),
            station_reviews.c.station_id,
        ),
    )
    rejected = _pairs(
        conn,
        scoped(
            select(events.c.station_id, func.count())
            .where(events.c.status == "rejected")
            .group_by(events.c.station_id),
            events.c.station_id,
        ),
    )
    out: dict[str, dict[str, Any]] = {}
    for row in base:
        sid = row.station_id
        epochs = marks.get(sid, [])
        grant = allowance.get(sid)
        varied = variance.get(sid)
        review = reviews.get(sid)
        out[sid] = {
            "id": sid,
            "name": row.name,
            "enrolled_at": row.added_at,
            "keys_uploaded_at": row.keys_uploaded_at,
            "station_keys": int(keys[sid][1]) if sid in keys else 0,
            "revoked_at": row.revoked_at,
            "last_push_at": row.last_push_at,
            "epoch": epochs[-1]["epoch"] if epochs else None,
            "high_water": epochs[-1]["high_water"] if epochs else None,
            "epochs": epochs,
            "rule_version": None if row.rule_version is None else int(row.rule_version),
            "allowance_points": None if grant is None else int(grant.points),
            "allowance_used": None if grant is None else used.get(sid, 0),
            "allowance_remaining": None if grant is None else int(grant.points) - used.get(sid, 0),
            "allowance_expires_at": None if grant is None else grant.expires_at,
            "allowance_expires_ms": None if grant is None else int(grant.expires_ms),
            "variance_points": int(varied.points) if varied is not None else 0,
            "variance_sales": int(varied.n) if varied is not None else 0,
            "open_flags": int(flags[sid][1]) if sid in flags else 0,
            "suspended": bool(review.suspended) if review is not None else False,
            "suspended_reason": review.reason if review is not None else None,
            "quarantined": int(rejected[sid][1]) if sid in rejected else 0,
        }
    return out


def _newest_version(conn: Connection) -> int | None:
    found = conn.execute(select(func.max(rulesets.c.version))).scalar_one_or_none()
    return None if found is None else int(found)


def _with_clock(row: dict[str, Any], newest: int | None, now: datetime) -> dict[str, Any]:
    row["health"] = health_of(row["last_push_at"], now)
    row["since_push_s"] = (
        None
        if not row["last_push_at"]
        else int((now - datetime.fromisoformat(row["last_push_at"])).total_seconds())
    )
    row["newest_version"] = newest
    row["rule_current"] = row["rule_version"] is not None and row["rule_version"] == newest
    expires_ms = row.pop("allowance_expires_ms")
    row["allowance_expired"] = None if expires_ms is None else expires_ms <= millis(now)
    return row


def _sort_key(sort: str) -> Callable[[dict[str, Any]], Any]:
    sort = _SORT_FIELD.get(sort, sort)
    if sort == "health":
        return lambda row: (HEALTHS.index(row["health"]), row["id"])
    if sort in ("id", "name", "last_push_at"):
        return lambda row: (row[sort] is None, row[sort] or "", row["id"])
    return lambda row: (row[sort] is None, row[sort] or 0, row["id"])


def station_rows(
    conn: Connection,
    now: datetime,
    *,
    health: str | None = None,
    search: str | None = None,
    sort: str = "id",
    descending: bool = False,
) -> list[dict[str, Any]]:
    """The stations list, filtered by health and by a text found in the id or name."""
    if health is not None and health not in HEALTHS:
        raise LedgerError("station.filter", f"health is one of {', '.join(HEALTHS)}")
    if sort not in SORTS:
        raise LedgerError("station.filter", f"sort is one of {', '.join(SORTS)}")
    if search is not None and len(search) > _SEARCH_MAX:
        raise LedgerError("station.filter", f"a search is at most {_SEARCH_MAX} characters")
    newest = _newest_version(conn)
    rows = [_with_clock(row, newest, now) for row in _figures(conn, None).values()]
    if health is not None:
        rows = [row for row in rows if row["health"] == health]
    needle = (search or "").strip().casefold()
    if needle:
        rows = [
            row
            for row in rows
            if needle in row["id"].casefold() or needle in (row["name"] or "").casefold()
        ]
    rows.sort(key=_sort_key(sort), reverse=descending)
    return rows


def health_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = dict.fromkeys(HEALTHS, 0)
    for row in rows:
        counts[row["health"]] += 1
    return counts


def _sales_days(conn: Connection, station_id: str, now: datetime) -> list[dict[str, Any]]:
    """The last 30 days (the chain's dates, today included) from agg_sales_day, zeros kept."""
    today = now.astimezone(CHAIN_TZ).date()
    days = [(today - timedelta(days=back)).isoformat() for back in range(_DAYS - 1, -1, -1)]
    found = {
        row.day: row
        for row in conn.execute(
            select(
                agg_sales_day.c.day,
                func.sum(agg_sales_day.c.sales).label("sales"),
                func.sum(agg_sales_day.c.litres_ml).label("litres_ml"),
                func.sum(agg_sales_day.c.amount_fen).label("amount_fen"),
            )
            .where(agg_sales_day.c.station_id == station_id, agg_sales_day.c.day >= days[0])
            .group_by(agg_sales_day.c.day)
        )
    }
    out = []
    for day in days:
        row = found.get(day)
        out.append(
            {
                "day": day,
                "sales": int(row.sales) if row is not None else 0,
                "litres_ml": int(row.litres_ml) if row is not None else 0,
                "amount_fen": int(row.amount_fen) if row is not None else 0,
            }
        )
    return out


def _allowance_history(conn: Connection, station_id: str) -> list[dict[str, Any]]:
    recent = (
        select(allowances)
        .where(allowances.c.station_id == station_id)
        .order_by(allowances.c.granted_ms.desc())
        .limit(_RECENT)
        .subquery()
    )
    used = (
        select(redemptions.c.allowance_id, func.sum(redemptions.c.points).label("used"))
        .where(
            redemptions.c.station_id == station_id,
            redemptions.c.allowance_id.in_(select(recent.c.allowance_id)),
        )
        .group_by(redemptions.c.allowance_id)
        .subquery()
    )
    rows = conn.execute(
        select(recent, func.coalesce(used.c.used, 0).label("used"))
        .outerjoin(used, used.c.allowance_id == recent.c.allowance_id)
        .order_by(recent.c.granted_ms.desc())
    )
    return [
        {
            "allowance_id": row.allowance_id,
            "points": int(row.points),
            "used": int(row.used),
            "remaining": int(row.points) - int(row.used),
            "per_member_cap": int(row.per_member_cap),
            "granted_at": row.granted_at,
            "expires_at": row.expires_at,
        }
        for row in rows
    ]


def _recent_quarantine(conn: Connection, station_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(events.c.event_id, events.c.epoch, events.c.seq, events.c.kind)
        .add_columns(events.c.reason, events.c.received_at)
        .where(events.c.station_id == station_id, events.c.status == "rejected")
        .order_by(events.c.id.desc())
        .limit(_RECENT)
    )
    return [dict(row._mapping) for row in rows]


def station_detail(conn: Connection, station_id: str, now: datetime) -> dict[str, Any]:
    """One station's row of the list, with its recent quarantine, flags, adjustments,
    allowances and its sales per day for the last 30 days."""
    found = _figures(conn, station_id).get(station_id)
    if found is None:
        raise LedgerError("station.unknown", f"no station {station_id!r} is enrolled")
    row = _with_clock(found, _newest_version(conn), now)
    row["recent_quarantine"] = _recent_quarantine(conn, station_id)
    row["flags"] = list_flags(conn, station_id, open_only=False, limit=_RECENT)
    row["adjustments"] = [
        dict(adj._mapping)
        for adj in conn.execute(
            select(adjustments)
            .where(adjustments.c.station_id == station_id)
            .order_by(adjustments.c.received_ms.desc())
            .limit(_RECENT)
        )
    ]
    row["allowances"] = _allowance_history(conn, station_id)
    row["sales_days"] = _sales_days(conn, station_id, now)
    return row


def _check_name(name: str | None) -> str | None:
    if name is None:
        return None
    name = name.strip()
    if len(name) > _NAME_MAX:
        raise LedgerError("station.name", f"a station name is at most {_NAME_MAX} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise LedgerError("station.name", "a station name has no control characters")
    return name or None


def _state(conn: Connection, station_id: str) -> dict[str, Any]:
    row = conn.execute(
        select(stations.c.station_id, stations.c.name, stations.c.revoked_at).where(
            stations.c.station_id == station_id
        )
    ).first()
    if row is None:
        raise LedgerError("station.unknown", f"no station {station_id!r} is enrolled")
    return {"name": row.name, "revoked_at": row.revoked_at}


def enrol_station(
    conn: Connection, station_id: str, name: str | None, *, actor: str, now: datetime
) -> str:
    """Enrol a station; returns its token (shown once; the audit never holds it)."""
    name = _check_name(name) or station_id  # as `cloud station add` names it
    token = add_station(conn, station_id, name, now)
    record_audit(
        conn,
        actor=actor,
        action="station.enrol",
        target=station_id,
        at=now,
        after={"name": name, "enrolled_at": now.isoformat()},
    )
    return token


def revoke_station(conn: Connection, station_id: str, *, actor: str, now: datetime) -> None:
    """The station's token stops working at once; its history stays. A rotation reinstates."""
    before = _state(conn, station_id)
    if before["revoked_at"] is not None:
        raise LedgerError("station.revoked", f"station {station_id!r} is revoked already")
    conn.execute(
        update(stations)
        .where(stations.c.station_id == station_id)
        .values(token_hash=_REVOKED_PREFIX + secrets.token_hex(16), revoked_at=now.isoformat())
    )
    record_audit(
        conn,
        actor=actor,
        action="station.revoke",
        target=station_id,
        at=now,
        before=before,
        after={**before, "revoked_at": now.isoformat()},
    )


def rotate_station_token(conn: Connection, station_id: str, *, actor: str, now: datetime) -> str:
    """A new token (shown once); the old one stops working; a revoked station is reinstated."""
    before = _state(conn, station_id)
    token = rotate_token(conn, station_id)
    record_audit(
        conn,
        actor=actor,
        action="station.rotate_token",
        target=station_id,
        at=now,
        before=before,
        after={**before, "revoked_at": None},
    )
    return token
