"""HQ's reports (hq-console.md, "Definitions"), read from the aggregates, never the postings.

Periods are inclusive ranges of the chain's dates (`day` strings, YYYY-MM-DD); a station of
None is the whole chain, '' is HQ's own postings. Points are integers, money integer fen,
litres integer millilitres.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, Select, case, func, select

from cloud_sync.core.ruleset import RuleSet, ruleset_in_force
from cloud_sync.core.ruleset.parser import parse_ruleset_json

from .aggregates import BALANCE_SIGN, chain_zone
from .schema import (
    agg_active_day,
    agg_members_day,
    agg_points_day,
    agg_points_month,
    agg_sales_day,
    agg_sales_hour,
    lots,
    member_days,
    rulesets,
    stations,
)

__all__ = [
    "Period",
    "dashboard",
    "liability",
    "outstanding",
    "points_per_yuan",
    "stations_health",
]

_HOUR_MS: Final = 3_600_000
_DAY_MS: Final = 24 * _HOUR_MS


@dataclass(frozen=True)
class Period:
    """Inclusive dates of the chain's calendar."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        return Period(self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    def dates(self) -> list[str]:
        return [(self.start + timedelta(days=i)).isoformat() for i in range(self.days)]


def _signed(points: Any, movement: Any) -> Any:
    """A movement's effect on members' balances (aggregates.BALANCE_SIGN) in SQL."""
    return case(
        *((movement == name, points * sign) for name, sign in BALANCE_SIGN.items() if sign != 1),
        else_=points,
    )


def _scoped(stmt: Select[Any], column: Any, station: str | None) -> Select[Any]:
    return stmt if station is None else stmt.where(column == station)


# ---------------------------------------------------------------- outstanding


def _rulesets(conn: Connection) -> list[RuleSet]:
    return [parse_ruleset_json(doc) for doc in conn.execute(select(rulesets.c.document)).scalars()]


def points_per_yuan(conn: Connection, at: datetime) -> int | None:
    """`redeem.points_per_yuan` of the rule set in force at `at` (None: no rule set yet)."""
    ruleset = ruleset_in_force(_rulesets(conn), at)
    return None if ruleset is None else ruleset.redeem.points_per_yuan


def outstanding(conn: Connection, now: datetime, station: str | None = None) -> dict[str, Any]:
    """Members' balances now: the running sum of every movement ever (equal to the ledger's
    member accounts by construction; `aggregates check` compares them), less the points of
    lots past their expiry the nightly job has not booked yet (chain-wide only: a lot knows
    no station). Yuan at the redemption rate in force now, rounded down to the fen."""
    stmt = _scoped(
        select(
            func.coalesce(
                func.sum(_signed(agg_points_month.c.points, agg_points_month.c.movement)), 0
            )
        ),
        agg_points_month.c.station_id,
        station,
    )
    booked = int(conn.execute(stmt).scalar_one())
    pending = 0
    if station is None:
        now_ms = int(now.timestamp() * 1000)
        pending = int(
            conn.execute(
                select(func.coalesce(func.sum(lots.c.remaining), 0)).where(
                    lots.c.remaining > 0, lots.c.expires_ms <= now_ms
                )
            ).scalar_one()
        )
    points = booked - pending
    rate = points_per_yuan(conn, now)
    return {
        "points": points,
        "booked_points": booked,
        "expired_unbooked": pending,
        "points_per_yuan": rate,
        "yuan_fen": None if not rate else points * 100 // rate,
    }


def expiring(conn: Connection, now: datetime, days: Iterable[int] = (30, 60, 90)) -> list[Any]:
    """Points of live lots expiring within N days from now: one range scan of the partial
    index for the longest horizon, summed per horizon."""
    now_ms = int(now.timestamp() * 1000)
    horizons = sorted(set(days))
    if not horizons:
        return []
    sums = [
        func.coalesce(
            func.sum(case((lots.c.expires_ms <= now_ms + n * _DAY_MS, lots.c.remaining), else_=0)),
            0,
        )
        for n in horizons
    ]
    found = conn.execute(
        select(*sums).where(
            lots.c.remaining > 0,
            lots.c.expires_ms > now_ms,
            lots.c.expires_ms <= now_ms + horizons[-1] * _DAY_MS,
        )
    ).one()
    by_horizon = {n: int(points) for n, points in zip(horizons, found, strict=True)}
    return [{"days": n, "points": by_horizon[n]} for n in days]


# ---------------------------------------------------------------- liability roll-forward

ROLL_COLUMNS: Final = (
    "opening",
    "issued",
    "variance",
    "redeemed",
    "expired",
    "adjustments",
    "written_off",
    "other",
    "closing",
)


def _months(first: str, last: str) -> list[str]:
    year, month = int(first[:4]), int(first[5:7])
    found = []
    while f"{year:04d}-{month:02d}" <= last:
        found.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


def liability(
    conn: Connection, first_month: str, last_month: str, station: str | None = None
) -> list[dict[str, Any]]:
    """The roll-forward per month and station (stations with no balance and no movement
    left out), then a chain row ('*') per month:
    closing = opening + issued + variance − redeemed − expired + adjustments − written_off
    + other; closing of a month is the opening of the next."""
    table = agg_points_month
    before = _scoped(
        select(table.c.station_id, func.sum(_signed(table.c.points, table.c.movement)))
        .where(table.c.month < first_month)
        .group_by(table.c.station_id),
        table.c.station_id,
        station,
    )
    balance: defaultdict[str, int] = defaultdict(int)
    for station_id, points in conn.execute(before):
        balance[str(station_id)] = int(points)
    moves: defaultdict[tuple[str, str], defaultdict[str, int]] = defaultdict(
        lambda: defaultdict(int)
    )
    within = _scoped(
        select(table.c.month, table.c.station_id, table.c.movement, table.c.points).where(
            table.c.month >= first_month, table.c.month <= last_month
        ),
        table.c.station_id,
        station,
    )
    for month, station_id, movement, points in conn.execute(within):
        moves[(str(month), str(station_id))][str(movement)] += int(points)
    station_ids = sorted(set(balance) | {s for _, s in moves})
    rows: list[dict[str, Any]] = []
    for month in _months(first_month, last_month):
        total = dict.fromkeys(ROLL_COLUMNS, 0)
        for station_id in station_ids:
            got: dict[str, int] = moves.get((month, station_id), {})
            closing = balance[station_id] + sum(BALANCE_SIGN.get(m, 1) * p for m, p in got.items())
            row: dict[str, Any] = {
                "month": month,
                "station_id": station_id,
                "opening": balance[station_id],
                "issued": got.get("issued", 0),
                "variance": got.get("variance", 0),
                "redeemed": got.get("redeemed", 0),
                "expired": got.get("expired", 0),
                "adjustments": got.get("adjusted_up", 0) + got.get("adjusted_down", 0),
                "written_off": got.get("written_off", 0),
                "other": got.get("other", 0),
                "closing": closing,
            }
            balance[station_id] = closing
            if any(row[key] for key in ROLL_COLUMNS):  # a station with nothing yet: no row
                rows.append(row)
            for key in ROLL_COLUMNS:
                total[key] += row[key]
        rows.append({"month": month, "station_id": "*", **total})
    return rows


# ---------------------------------------------------------------- the dashboard


def _sum_sales(conn: Connection, period: Period, station: str | None) -> dict[str, int]:
    t = agg_sales_day
    stmt = _scoped(
        select(
            func.coalesce(func.sum(t.c.sales), 0),
            func.coalesce(func.sum(t.c.litres_ml), 0),
            func.coalesce(func.sum(t.c.amount_fen), 0),
        ).where(t.c.day >= period.start.isoformat(), t.c.day <= period.end.isoformat()),
        t.c.station_id,
        station,
    )
    sales_, litres, amount = conn.execute(stmt).one()
    return {"sales": int(sales_), "litres_ml": int(litres), "amount_fen": int(amount)}


def _sum_points(conn: Connection, period: Period, station: str | None) -> dict[str, int]:
    t = agg_points_day
    stmt = _scoped(
        select(t.c.movement, func.sum(t.c.points))
        .where(t.c.day >= period.start.isoformat(), t.c.day <= period.end.isoformat())
        .group_by(t.c.movement),
        t.c.station_id,
        station,
    )
    got = {str(m): int(p) for m, p in conn.execute(stmt)}
    return {
        # hq-console.md: issued = earn and positive adjustments; variance separately.
        "points_issued": got.get("issued", 0) + got.get("adjusted_up", 0),
        "points_variance": got.get("variance", 0),
        "points_redeemed": got.get("redeemed", 0),
        "points_expired": got.get("expired", 0),
    }


def _members(conn: Connection, period: Period, station: str | None) -> dict[str, int]:
    days = (period.start.isoformat(), period.end.isoformat())
    # GROUP BY in a subquery, not count(DISTINCT): PostgreSQL hashes it (half the time at a
    # million sales) instead of sorting every visit of the period.
    visitors = _scoped(
        select(member_days.c.member_id).where(
            member_days.c.day >= days[0], member_days.c.day <= days[1]
        ),
        member_days.c.station_id,
        station,
    ).group_by(member_days.c.member_id)
    buyers = select(func.count()).select_from(visitors.subquery())
    new = _scoped(
        select(func.coalesce(func.sum(agg_members_day.c.registered), 0)).where(
            agg_members_day.c.day >= days[0], agg_members_day.c.day <= days[1]
        ),
        agg_members_day.c.station_id,
        station,
    )
    return {
        "buyers": int(conn.execute(buyers).scalar_one()),
        "new_members": int(conn.execute(new).scalar_one()),
    }


def kpis(conn: Connection, period: Period, station: str | None) -> dict[str, int]:
    return (
        _sum_sales(conn, period, station)
        | _sum_points(conn, period, station)
        | _members(conn, period, station)
    )


def _per_day(
    conn: Connection, period: Period, stmt: Select[Any], width: int
) -> dict[str, list[int]]:
    found = {d: [0] * width for d in period.dates()}
    for row in conn.execute(stmt):
        values = found.setdefault(str(row[0]), [0] * width)
        for i in range(width):
            values[i] += int(row[i + 1] or 0)
    return found


def series(conn: Connection, period: Period, station: str | None) -> dict[str, Any]:
    """Per day of the period: litres by grade, amount, points, active and new members."""
    lo, hi = period.start.isoformat(), period.end.isoformat()
    s = agg_sales_day
    grades = sorted(
        str(g)
        for g in conn.execute(
            _scoped(
                select(s.c.grade).distinct().where(s.c.day >= lo, s.c.day <= hi),
                s.c.station_id,
                station,
            )
        ).scalars()
    )
    by_grade: dict[str, dict[str, int]] = {d: dict.fromkeys(grades, 0) for d in period.dates()}
    amount: dict[str, int] = dict.fromkeys(period.dates(), 0)
    stmt = _scoped(
        select(s.c.day, s.c.grade, func.sum(s.c.litres_ml), func.sum(s.c.amount_fen))
        .where(s.c.day >= lo, s.c.day <= hi)
        .group_by(s.c.day, s.c.grade),
        s.c.station_id,
        station,
    )
    for day, grade, ml, fen in conn.execute(stmt):
        by_grade[str(day)][str(grade)] += int(ml)
        amount[str(day)] += int(fen)
    p = agg_points_day
    points = _per_day(
        conn,
        period,
        _scoped(
            select(
                p.c.day,
                func.sum(case((p.c.movement.in_(("issued", "adjusted_up")), p.c.points), else_=0)),
                func.sum(case((p.c.movement == "redeemed", p.c.points), else_=0)),
                func.sum(case((p.c.movement == "expired", p.c.points), else_=0)),
            )
            .where(p.c.day >= lo, p.c.day <= hi)
            .group_by(p.c.day),
            p.c.station_id,
            station,
        ),
        3,
    )
    m = agg_members_day
    if station is None:
        active_stmt: Select[Any] = select(agg_active_day.c.day, agg_active_day.c.active).where(
            agg_active_day.c.day >= lo, agg_active_day.c.day <= hi
        )
    else:
        active_stmt = select(m.c.day, m.c.active).where(
            m.c.day >= lo, m.c.day <= hi, m.c.station_id == station
        )
    active = _per_day(conn, period, active_stmt, 1)
    new = _per_day(
        conn,
        period,
        _scoped(
            select(m.c.day, func.sum(m.c.registered))
            .where(m.c.day >= lo, m.c.day <= hi)
            .group_by(m.c.day),
            m.c.station_id,
            station,
        ),
        1,
    )
    return {
        "grades": grades,
        "days": [
            {
                "day": d,
                "litres_ml_by_grade": by_grade[d],
                "amount_fen": amount[d],
                "points_issued": points[d][0],
                "points_redeemed": points[d][1],
                "points_expired": points[d][2],
                "active_members": active[d][0],
                "new_members": new[d][0],
            }
            for d in period.dates()
        ],
    }


def stations_health(conn: Connection, now: datetime) -> list[dict[str, Any]]:
    """Every station's last push: online (< 1 h), late (> 1 h), offline (> 24 h), never."""
    now_ms = int(now.timestamp() * 1000)
    zone = chain_zone(conn)
    rows = []
    query = select(stations.c.station_id, stations.c.name, stations.c.last_push_at)
    for station_id, name, last in conn.execute(query.order_by(stations.c.station_id)):
        if last is None:
            state, shown = "never", None
        else:
            moment = datetime.fromisoformat(last)
            age = now_ms - int(moment.timestamp() * 1000)
            state = "online" if age <= _HOUR_MS else "late" if age <= _DAY_MS else "offline"
            shown = moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")
        rows.append({"station_id": station_id, "name": name, "last_push": shown, "state": state})
    return rows


def dashboard(
    conn: Connection, period: Period, station: str | None, now: datetime
) -> dict[str, Any]:
    now_figures, before = kpis(conn, period, station), kpis(conn, period.previous(), station)
    return {
        "from": period.start.isoformat(),
        "to": period.end.isoformat(),
        "station": station,
        "kpis": [
            {"key": key, "value": value, "previous": before[key], "change": value - before[key]}
            for key, value in now_figures.items()
        ],
        "outstanding": outstanding(conn, now, station),
        "series": series(conn, period, station),
        "stations": stations_health(conn, now),
    }


def sales_hours(conn: Connection, period: Period, station: str | None) -> list[dict[str, Any]]:
    """Sales per ISO weekday (1 = Monday) and hour over the period (the peak-hours map)."""
    h = agg_sales_hour
    stmt = _scoped(
        select(h.c.day, h.c.hour, func.sum(h.c.sales), func.sum(h.c.litres_ml))
        .where(h.c.day >= period.start.isoformat(), h.c.day <= period.end.isoformat())
        .group_by(h.c.day, h.c.hour),
        h.c.station_id,
        station,
    )
    cells: defaultdict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    for day, hour, count, ml in conn.execute(stmt):
        cell = cells[(date.fromisoformat(str(day)).isoweekday(), int(hour))]
        cell[0] += int(count)
        cell[1] += int(ml)
    return [
        {"weekday": wd, "hour": hr, "sales": cells[(wd, hr)][0], "litres_ml": cells[(wd, hr)][1]}
        for wd in range(1, 8)
        for hr in range(24)
    ]


def sales_table(conn: Connection, period: Period, station: str | None) -> list[dict[str, Any]]:
    """Sales per station × grade × day (reversed sales taken out of their own day)."""
    s = agg_sales_day
    stmt = _scoped(
        select(s.c.day, s.c.station_id, s.c.grade, s.c.sales, s.c.member_sales)
        .add_columns(s.c.litres_ml, s.c.amount_fen)
        .where(s.c.day >= period.start.isoformat(), s.c.day <= period.end.isoformat())
        .order_by(s.c.day, s.c.station_id, s.c.grade),
        s.c.station_id,
        station,
    )
    return [dict(row._mapping) for row in conn.execute(stmt)]
