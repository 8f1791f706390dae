"""The backtest's I/O: start one per draft, stream the window's sales by keyset in batches
(never all in memory), feed the pure core, store progress and the result (or the reason
it failed) in `backtests`.

Sales count when recorded (a reversed sale gave its points back). The window is
[from, to) on the sale's end time. Sales from before the window (as far back as the
longest tier window) and, for one station's backtest, the other stations' sales only
count toward the members' tiers under the draft.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Connection, and_, func, insert, select, tuple_, update

from cloud_sync.core.ruleset import RuleSet, ruleset_in_force
from cloud_sync.core.ruleset.parser import parse_ruleset_json

from .audit import record_audit
from .backtest_core import BacktestCore, PastSale
from .database import Database
from .drafts import draft_row
from .errors import LedgerError
from .rulesets import RuleBook
from .schema import backtests, members, sales

__all__ = ["BATCH", "backtest_row", "run_backtest", "start_backtest"]

BATCH = 5000
MAX_WINDOW_DAYS = 366
STALE_AFTER = timedelta(hours=2)
MAX_RUNNING = 3  # running or waiting for the one before, chain-wide
_SLACK = timedelta(days=1)  # end times carry their station's offset: widen the text bounds


def start_backtest(
    conn: Connection,
    *,
    draft_id: str,
    window_from: datetime,
    window_to: datetime,
    station_id: str | None,
    by: str,
    now: datetime,
) -> str:
    """A new backtest row (status running); refused while one of this draft is running."""
    if window_from.tzinfo is None or window_to.tzinfo is None:
        raise LedgerError("backtest.window", "the window's ends carry a time zone offset")
    if not window_from < window_to:
        raise LedgerError("backtest.window", "the window's start is before its end")
    if window_to - window_from > timedelta(days=MAX_WINDOW_DAYS):
        raise LedgerError("backtest.window", f"a window is at most {MAX_WINDOW_DAYS} days")
    if station_id is not None and not 1 <= len(station_id) <= 32:
        raise LedgerError("backtest.window", "a station id is 1 to 32 characters")
    draft = draft_row(conn, draft_id)
    # A backtest still "running" long after it started was cut off by a restart.
    conn.execute(
        update(backtests)
        .where(
            backtests.c.status == "running",
            backtests.c.started_at < (now - STALE_AFTER).isoformat(),
        )
        .values(status="failed", error="interrupted: the server stopped while it ran")
    )
    running = conn.execute(
        select(backtests.c.backtest_id, backtests.c.draft_id).where(backtests.c.status == "running")
    ).all()
    mine = [row.backtest_id for row in running if row.draft_id == draft_id]
    if mine:
        raise LedgerError("backtest.running", f"backtest {mine[0]} of this draft is running")
    if len(running) >= MAX_RUNNING:  # each takes a core: a chain's HQ waits, never the stations
        raise LedgerError(
            "backtest.running",
            f"{len(running)} backtests are running or waiting; start this one when one is done",
        )
    backtest_id = "b" + secrets.token_hex(6)
    row = {
        "backtest_id": backtest_id,
        "draft_id": draft_id,
        "document_hash": draft["document_hash"],
        "window_from": window_from.isoformat(),
        "window_to": window_to.isoformat(),
        "station_id": station_id,
        "status": "running",
        "done_sales": 0,
        "total_sales": 0,
        "started_by": by,
        "started_at": now.isoformat(),
    }
    conn.execute(insert(backtests).values(row))
    record_audit(conn, actor=by, action="rules.backtest", target=draft_id, at=now, after=row)
    return backtest_id


def backtest_row(conn: Connection, backtest_id: str) -> dict[str, Any]:
    row = conn.execute(select(backtests).where(backtests.c.backtest_id == backtest_id)).first()
    if row is None:
        raise LedgerError("backtest.unknown", f"no backtest {backtest_id!r}")
    found = dict(row._mapping)
    found["result"] = orjson.loads(found["result"]) if found["result"] else None
    return found


def _bounds(lo: datetime, hi: datetime) -> Any:
    return and_(
        sales.c.ended_at >= (lo - _SLACK).isoformat(),
        sales.c.ended_at < (hi + _SLACK).isoformat(),
        sales.c.status == "recorded",
    )


def _stream(db: Database, lo: datetime, hi: datetime) -> Iterator[list[Any]]:
    """Batches of sales ordered by (ended_at, sale_id), each batch its own read."""
    last: tuple[str, str] | None = None
    columns = [
        sales.c.sale_id,
        sales.c.station_id,
        sales.c.member_id,
        sales.c.grade,
        sales.c.litres,
        sales.c.amount,
        sales.c.ended_at,
        sales.c.points,
        sales.c.tier,
        sales.c.ruleset_version,
        members.c.registered_at,
    ]
    while True:
        stmt = (
            select(*columns)
            .select_from(sales.outerjoin(members, members.c.member_id == sales.c.member_id))
            .where(_bounds(lo, hi))
            .order_by(sales.c.ended_at, sales.c.sale_id)
            .limit(BATCH)
        )
        if last is not None:
            # A row value, so the index on (ended_at, sale_id) seeks to the next batch; the
            # OR form scanned from the window's start for every batch (quadratic).
            stmt = stmt.where(tuple_(sales.c.ended_at, sales.c.sale_id) > tuple_(*last))
        rows = db.read(lambda conn, s=stmt: conn.execute(s).all())  # type: ignore[misc]
        if not rows:
            return
        yield rows
        last = (rows[-1].ended_at, rows[-1].sale_id)
        if len(rows) < BATCH:
            return


def _count(conn: Connection, lo: datetime, hi: datetime, station_id: str | None) -> int:
    stmt = select(func.count()).select_from(sales).where(_bounds(lo, hi))
    if station_id is not None:
        stmt = stmt.where(sales.c.station_id == station_id)
    return int(conn.execute(stmt).scalar_one())


def run_backtest(
    db: Database,
    book: RuleBook,
    backtest_id: str,
    now: Callable[[], datetime],
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run a started backtest to its end; a failure is stored with its reason (and raised)."""
    try:
        return _run(db, book, backtest_id, now, progress)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"[:500]
        db.transact(
            lambda conn: conn.execute(
                update(backtests)
                .where(backtests.c.backtest_id == backtest_id)
                .values(status="failed", error=reason, finished_at=now().isoformat())
            )
        )
        raise


def _run(
    db: Database,
    book: RuleBook,
    backtest_id: str,
    now: Callable[[], datetime],
    progress: Callable[[int, int], None] | None,
) -> dict[str, Any]:
    test = db.read(lambda conn: backtest_row(conn, backtest_id))
    draft_doc = db.read(lambda conn: draft_row(conn, test["draft_id"]))["document"]
    draft = parse_ruleset_json(draft_doc)
    lo = datetime.fromisoformat(test["window_from"])
    hi = datetime.fromisoformat(test["window_to"])
    scope = test["station_id"]
    published: list[RuleSet] = db.read(book.all)
    by_version = {r.version: r for r in published}
    core = BacktestCore(draft, ruleset_in_force(published, hi - timedelta(microseconds=1)))
    total = db.read(lambda conn: _count(conn, lo, hi, scope))
    as_of = now()
    _progress(db, backtest_id, 0, total)
    done = 0
    reported = 0
    convert = _Rows(by_version, published)
    for rows in _stream(db, lo - core.keep, hi):
        for row in rows:
            sale = convert.sale(row)
            ended = sale.ended_at
            if lo <= ended < hi and (scope is None or row.station_id == scope):
                core.sale(sale)
                done += 1
            elif ended < hi:
                core.lead_in(sale)
        if done - reported >= BATCH:
            reported = done
            _progress(db, backtest_id, done, total)
        if progress is not None:
            progress(done, total)
    result = core.result(hi)
    result.update(
        {
            "backtest_id": backtest_id,
            "draft_id": test["draft_id"],
            "document_hash": test["document_hash"],
            "window": {"from": test["window_from"], "to": test["window_to"]},
            "station_id": scope,
            "data_as_of": as_of.isoformat(),
            "sales": done,
        }
    )
    text = orjson.dumps(result).decode("utf-8")
    db.transact(
        lambda conn: conn.execute(
            update(backtests)
            .where(backtests.c.backtest_id == backtest_id)
            .values(
                status="done",
                done_sales=done,
                total_sales=done,
                result=text,
                finished_at=now().isoformat(),
            )
        )
    )
    if progress is not None:
        progress(done, max(total, done))
    return result


class _Rows:
    """Rows of the sales query to PastSale, parsing each repeated value once."""

    def __init__(self, by_version: dict[int, RuleSet], published: list[RuleSet]) -> None:
        self._by_version = by_version
        self._published = published
        self._litres: dict[str, Decimal] = {}
        self._registered: dict[str, datetime | None] = {}

    def sale(self, row: Any) -> PastSale:
        ended = datetime.fromisoformat(row.ended_at)
        member = row.member_id
        version = row.ruleset_version
        rs = None
        if version is not None:
            rs = self._by_version.get(int(version))
        elif member is not None:  # a 0.6 station named no version: the rules of its time
            rs = ruleset_in_force(self._published, ended)
        litres = self._litres.get(row.litres)
        if litres is None:
            if len(self._litres) > 100_000:
                self._litres.clear()
            litres = self._litres.setdefault(row.litres, Decimal(row.litres))
        registered = None
        if member is not None:
            if member in self._registered:
                registered = self._registered[member]
            else:
                raw = row.registered_at
                registered = datetime.fromisoformat(raw) if raw else None
                self._registered[member] = registered
        return PastSale(
            row.sale_id,
            row.station_id,
            member,
            row.grade,
            litres,
            Decimal(row.amount),
            ended,
            int(row.points),
            row.tier,
            rs,
            registered,
        )


def _progress(db: Database, backtest_id: str, done: int, total: int) -> None:
    db.transact(
        lambda conn: conn.execute(
            update(backtests)
            .where(backtests.c.backtest_id == backtest_id)
            .values(done_sales=done, total_sales=total)
        )
    )
