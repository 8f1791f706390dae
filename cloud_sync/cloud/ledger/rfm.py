"""RFM as of the end of a chain day (hq-console.md, "Definitions"), kept as a daily snapshot.

RFM needs each member's sales of the last 180 days, which no aggregate keeps. Rather than
scan them at every page view (5 million rows at 10 million sales a year), `snapshot` reads
the figures stored for that day in `rfm_snapshots`; only when none is stored does it compute
them: the database counts and sums each member's sales of the window (one GROUP BY), the
quintiles are scored here. `refresh` recomputes a day (`loyalpump cloud aggregates rfm`,
from a nightly job); the page shows when its figures were computed ("as of").
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any, Final

from sqlalchemy import BigInteger, Connection, Numeric, cast, func, select
from sqlalchemy.dialects.postgresql import TIMESTAMP
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.elements import ColumnElement

from .aggregates import chain_zone
from .schema import member_activity, members, rfm_snapshots, sales

__all__ = ["SEGMENTS", "compute", "end_ms", "refresh", "snapshot"]

DAY_MS: Final = 86_400_000
WINDOW_DAYS: Final = 180
SEGMENTS: Final = ("champions", "loyal", "at_risk", "hibernating", "new", "others")
_UNIX_JULIAN: Final = 2440587.5  # the Julian day of 1970-01-01T00:00Z


def end_ms(conn: Connection, end: date) -> int:
    """The end of the chain's day `end` (exclusive), in epoch milliseconds."""
    moment = datetime.combine(end + timedelta(days=1), time(), tzinfo=chain_zone(conn))
    return int(moment.timestamp() * 1000)


def _moment_ms(conn: Connection, iso: Any) -> ColumnElement[Any]:
    """An ISO 8601 text with its offset as epoch milliseconds, in the database's own SQL."""
    if conn.dialect.name == "postgresql":
        seconds = func.extract("epoch", cast(iso, TIMESTAMP(timezone=True)))
        return cast(func.round(seconds * 1000), BigInteger)
    return cast(func.round((func.julianday(iso) - _UNIX_JULIAN) * 86_400_000.0), BigInteger)


def _scores(values: dict[str, Any], *, higher_is_better: bool) -> dict[str, int]:
    """1–5 by chain-wide quintiles: a member's score is 1 + the fifth of the ordered
    population below which their value first appears (ties share a score)."""
    ordered: Sequence[Any] = sorted(values.values(), reverse=not higher_is_better)
    n = len(ordered)
    if not higher_is_better:
        ordered = [-v for v in ordered]
    return {
        key: 1 + (5 * bisect_left(ordered, v if higher_is_better else -v)) // n
        for key, v in values.items()
    }


def _window(conn: Connection, end: date, stop: int) -> dict[str, tuple[int, int]]:
    """Each member's (sales, amount in fen) of the 180 days up to `stop`, summed by the
    database under the member they belong to now (a merged member's go to the survivor)."""
    start = stop - WINDOW_DAYS * DAY_MS
    owner = members.alias("owner")
    who = func.coalesce(owner.c.merged_into, sales.c.member_id)
    moment = _moment_ms(conn, sales.c.ended_at)
    fen = cast(func.round(cast(sales.c.amount, Numeric) * 100), BigInteger)
    stmt = (
        select(who, func.count(), func.sum(fen))
        .select_from(sales.outerjoin(owner, owner.c.member_id == sales.c.member_id))
        .where(
            sales.c.member_id.is_not(None),
            sales.c.status == "recorded",
            # Text bounds a day wider than the window let the index narrow the scan; the
            # moment itself decides, whatever offset a station wrote.
            sales.c.ended_at >= (end - timedelta(days=WINDOW_DAYS + 1)).isoformat(),
            sales.c.ended_at < (end + timedelta(days=2)).isoformat(),
            moment >= start,
            moment < stop,
        )
        .group_by(who)
    )
    return {str(m): (int(n), int(amount)) for m, n, amount in conn.execute(stmt)}


def _last_before(conn: Connection, end: date, stop: int) -> dict[str, int]:
    """The last sale before `stop` of the members who also bought since (a past day's RFM):
    member_activity keeps only each member's latest sale; the database finds the rest."""
    owner = members.alias("owner")
    a = member_activity
    who = func.coalesce(owner.c.merged_into, sales.c.member_id)
    moment = _moment_ms(conn, sales.c.ended_at)
    stmt = (
        select(who, func.max(moment))
        .select_from(
            sales.outerjoin(owner, owner.c.member_id == sales.c.member_id).join(
                a, a.c.member_id == who
            )
        )
        .where(
            a.c.last_sale_ms >= stop,
            sales.c.ended_at < (end + timedelta(days=2)).isoformat(),
            moment < stop,
        )
        .group_by(who)
    )
    return {str(m): int(ms) for m, ms in conn.execute(stmt)}


def compute(conn: Connection, end: date) -> dict[str, Any]:
    """Recency (days since the last sale), frequency (sales in the last 180 days) and
    monetary (amount in those days), each scored 1–5 by quintiles over the members who
    bought; segments in this order: champions (R≥4, F≥4), loyal (F≥4), at risk (R≤2, F≥3),
    hibernating (R≤2, F≤2), new (registered within 30 days), others."""
    stop = end_ms(conn, end)
    window = _window(conn, end, stop)
    earlier = _last_before(conn, end, stop)
    a = member_activity
    recency: dict[str, int] = {}
    registered: dict[str, int] = {}
    query = (
        select(members.c.member_id, members.c.registered_at, a.c.last_sale_ms)
        .outerjoin(a, a.c.member_id == members.c.member_id)
        .where(members.c.status == "active")
    )
    for member_id, registered_at, latest in conn.execute(query):
        registered[member_id] = int(datetime.fromisoformat(registered_at).timestamp() * 1000)
        last = earlier.get(member_id) if latest is not None and latest >= stop else latest
        if last is not None:
            recency[member_id] = (stop - int(last)) // DAY_MS
    buyers = list(recency)
    none = (0, 0)
    r = _scores(recency, higher_is_better=False) if buyers else {}
    f = _scores({m: window.get(m, none)[0] for m in buyers}, higher_is_better=True)
    mon = _scores({m: window.get(m, none)[1] for m in buyers}, higher_is_better=True)
    counts: Counter[str] = Counter()
    for member_id, reg_ms in registered.items():
        rs, fs = r.get(member_id), f.get(member_id)
        if rs is not None and fs is not None and rs >= 4 and fs >= 4:
            segment = "champions"
        elif fs is not None and fs >= 4:
            segment = "loyal"
        elif rs is not None and fs is not None and rs <= 2 and fs >= 3:
            segment = "at_risk"
        elif rs is not None and fs is not None and rs <= 2 and fs <= 2:
            segment = "hibernating"
        elif stop - 30 * DAY_MS <= reg_ms < stop:
            segment = "new"
        else:
            segment = "others"
        counts[segment] += 1
    grid: Counter[tuple[int, int]] = Counter((r[m], f[m]) for m in buyers)
    scored = Counter(mon.values())
    return {
        "segments": [{"segment": s, "members": counts[s]} for s in SEGMENTS],
        "grid": [
            {"recency": rs, "frequency": fs, "members": grid[(rs, fs)]}
            for rs in range(1, 6)
            for fs in range(1, 6)
        ],
        "monetary": [{"score": s, "members": scored[s]} for s in range(1, 6)],
    }


def _as_of(computed_ms: int, conn: Connection) -> str:
    return datetime.fromtimestamp(computed_ms / 1000, chain_zone(conn)).isoformat(
        timespec="seconds"
    )


def _store(
    conn: Connection, end: date, now_ms: int, body: dict[str, Any], *, replace: bool
) -> None:
    postgres = conn.dialect.name == "postgresql"
    stmt = pg_insert(rfm_snapshots) if postgres else sqlite_insert(rfm_snapshots)
    values = {"end_day": end.isoformat(), "computed_ms": now_ms, "body": json.dumps(body)}
    stmt = stmt.values(**values)
    if replace:
        upsert = stmt.on_conflict_do_update(
            index_elements=["end_day"],
            set_={"computed_ms": stmt.excluded.computed_ms, "body": stmt.excluded.body},
        )
    else:
        upsert = stmt.on_conflict_do_nothing()
    conn.execute(upsert)


def refresh(conn: Connection, end: date, now: datetime) -> dict[str, Any]:
    """Compute RFM as of the end of `end` and store it (replacing that day's snapshot)."""
    body = compute(conn, end)
    now_ms = int(now.timestamp() * 1000)
    _store(conn, end, now_ms, body, replace=True)
    return body | {"as_of": _as_of(now_ms, conn)}


def snapshot(conn: Connection, end: date, now: datetime) -> dict[str, Any]:
    """RFM as of the end of `end`: the stored snapshot, else computed now and stored (a
    reader's transaction may be refused the write on SQLite: the next view stores it)."""
    row = conn.execute(
        select(rfm_snapshots.c.computed_ms, rfm_snapshots.c.body).where(
            rfm_snapshots.c.end_day == end.isoformat()
        )
    ).first()
    if row is not None:
        return dict(json.loads(row.body)) | {"as_of": _as_of(int(row.computed_ms), conn)}
    body = compute(conn, end)
    now_ms = int(now.timestamp() * 1000)
    try:
        with conn.begin_nested():
            _store(conn, end, now_ms, body, replace=False)
    except OperationalError:  # pragma: no cover - a busy SQLite writer; stored next time
        pass
    return body | {"as_of": _as_of(now_ms, conn)}
