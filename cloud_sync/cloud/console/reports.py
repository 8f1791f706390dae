"""The dashboard and the reports: pages under /hq/, JSON and CSV/XLSX under
/api/v1/hq/reports/… (role: any HQ user). Every figure is read from the aggregates
(ledger/reports_hq.py), in the chain's dates."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection, select

from cloud_sync.cloud.ledger import LedgerError
from cloud_sync.cloud.ledger import member_reports as mr
from cloud_sync.cloud.ledger import report_tables as rt
from cloud_sync.cloud.ledger import reports_hq as rh
from cloud_sync.cloud.ledger.reports_hq import Period
from cloud_sync.cloud.ledger.schema import stations
from cloud_sync.cloud.server.context import ApiProblem, cloud_context
from cloud_sync.cloud.server.errors import error_responses
from cloud_sync.cloud.server.read_ledger import LedgerReads, ReadLedger

from .auth import HqUser, PageReader, Reader
from .export import Column, download
from .pages import lang_of, render

__all__ = ["router"]

router = APIRouter(tags=["HQ console"])
_T = TypeVar("_T")

RangeQ = Annotated[Literal["today", "7d", "30d", "custom"], Query(alias="range")]
FromQ = Annotated[str | None, Query(alias="from", max_length=10)]
ToQ = Annotated[str | None, Query(alias="to", max_length=10)]
StationQ = Annotated[str | None, Query(max_length=64)]
FormatQ = Annotated[Literal["json", "csv", "xlsx"], Query(alias="format")]


def _read(request: Request, reads: LedgerReads, work: Callable[[Connection, datetime], _T]) -> _T:
    now = cloud_context(request).now()
    try:
        return reads.read(lambda conn: work(conn, now))
    except LedgerError as exc:
        raise ApiProblem(422, exc.code, str(exc)) from exc


def _scope(
    conn: Connection,
    now: datetime,
    kind: str,
    first: str | None,
    last: str | None,
    station: str | None,
    default_days: int = 30,
) -> tuple[Period, str | None]:
    period = rt.period_of(conn, now, kind, first, last, default_days=default_days)
    return period, rt.check_station(conn, station)


def _export(table: rt.Table, fmt: str, lang: str, period: Period) -> Response:
    columns = [Column(c.key, c.zh if lang == "zh-CN" else c.en) for c in table.columns]
    name = f"{table.name}-{period.start.isoformat()}-{period.end.isoformat()}"
    return download("csv" if fmt == "csv" else "xlsx", columns, table.rows, filename=name)


def _columns(table: rt.Table, lang: str) -> list[tuple[str, str, str]]:
    return [(c.key, c.zh if lang == "zh-CN" else c.en, c.kind) for c in table.columns]


def _query(kind: str, first: str | None, last: str | None, station: str | None) -> str:
    parts = [f"range={kind}"]
    if kind == "custom":
        parts += [f"from={first or ''}", f"to={last or ''}"]
    if station is not None:
        parts.append(f"station={station}")
    return "&".join(parts)


# ---------------------------------------------------------------- JSON and downloads


@router.get(
    "/api/v1/hq/reports/{name}",
    response_model=None,
    responses=error_responses("report.range", "report.station"),
)
def report_api(
    request: Request,
    user: Reader,
    reads: ReadLedger,
    name: Literal["dashboard", "liability", "sales", "sales-hours", "members"],
    kind: RangeQ = "30d",
    first: FromQ = None,
    last: ToQ = None,
    station: StationQ = None,
    fmt: FormatQ = "json",
) -> Any:
    """One report as JSON, or its table as CSV/XLSX (`format`). Ranges: today, 7d, 30d, or
    custom with from/to (YYYY-MM-DD, at most 366 days); station: one id, or the chain."""

    def work(conn: Connection, now: datetime) -> Any:
        period, scope = _scope(conn, now, kind, first, last, station)
        if fmt != "json":
            return _export(rt.table(conn, name, period, scope, now), fmt, lang_of(request), period)
        if name == "dashboard":
            return rh.dashboard(conn, period, scope, now)
        if name == "members":
            return mr.member_report(conn, period.start, period.end, scope, now)
        found = rt.table(conn, name, period, scope, now)
        extra: dict[str, Any] = {}
        if name == "liability":
            extra = {
                "outstanding": rh.outstanding(conn, now, scope),
                "expiring": rh.expiring(conn, now),
            }
        return {
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "station": scope,
            "rows": found.rows,
            **extra,
        }

    return _read(request, reads, work)


# ---------------------------------------------------------------- pages


def _toolbar(
    conn: Connection,
    kind: str,
    first: str | None,
    last: str | None,
    station: str | None,
    period: Period,
) -> dict[str, Any]:
    ids = list(
        conn.execute(select(stations.c.station_id).order_by(stations.c.station_id)).scalars()
    )
    return {
        "range": kind,
        "first": period.start.isoformat(),
        "last": period.end.isoformat(),
        "station": station,
        "stations": ids,
        "query": _query(kind, first, last, station),
    }


def _page(
    request: Request,
    reads: LedgerReads,
    user: HqUser,
    template: str,
    active: str,
    build: Callable[[Connection, datetime, Period, str | None, str], dict[str, Any]],
    kind: str,
    first: str | None,
    last: str | None,
    station: str | None,
) -> HTMLResponse:
    lang = lang_of(request)

    def work(conn: Connection, now: datetime) -> dict[str, Any]:
        days = 365 if active in ("liability", "members") else 30
        period, scope = _scope(conn, now, kind, first, last, station, days)
        bar = _toolbar(conn, kind, first, last, station, period)
        return {"active": active, "bar": bar, **build(conn, now, period, scope, lang)}

    try:
        context = _read(request, reads, work)
    except ApiProblem as problem:
        bar: dict[str, Any] = {
            "range": kind,
            "first": first,
            "last": last,
            "station": station,
            "stations": [],
            "query": "",
        }
        return render(
            request,
            "hq_error.html",
            user,
            {"active": active, "bar": bar, "problem": problem.problem.detail},
            status_code=problem.status,
        )
    return render(request, template, user, context)


def _dashboard(
    conn: Connection, now: datetime, period: Period, scope: str | None, lang: str
) -> dict[str, Any]:
    data = rh.dashboard(conn, period, scope, now)
    grades = data["series"]["grades"]
    litres_columns = [("day", "日期" if lang == "zh-CN" else "Day", "text")] + [
        (f"g{g}", f"{g}#", "int") for g in grades
    ]
    litres_rows = [
        {"day": d["day"], **{f"g{g}": d["litres_ml_by_grade"][g] // 1000 for g in grades}}
        for d in data["series"]["days"]
    ]
    daily = rt.daily_table(conn, period, scope)
    return {
        "data": data,
        "litres_columns": litres_columns,
        "litres_rows": litres_rows,
        "daily_columns": _columns(daily, lang),
        # The chart draws whole yuan (its table's first number columns); the fen beside it.
        "daily_rows": [{**r, "amount_yuan": r["amount_fen"] // 100} for r in daily.rows],
    }


@router.get("/hq/", response_class=HTMLResponse, include_in_schema=False)
def dashboard_page(
    request: Request,
    user: PageReader,
    reads: ReadLedger,
    kind: RangeQ = "30d",
    first: FromQ = None,
    last: ToQ = None,
    station: StationQ = None,
) -> HTMLResponse:
    """The dashboard: KPI cards against the previous period, daily charts, stations."""
    return _page(
        request,
        reads,
        user,
        "hq_dashboard.html",
        "dashboard",
        _dashboard,
        kind,
        first,
        last,
        station,
    )


def _liability(
    conn: Connection, now: datetime, period: Period, scope: str | None, lang: str
) -> dict[str, Any]:
    table = rt.liability_table(conn, period, scope, now)
    chain = [r for r in table.rows if r["station_id"] == "*"]
    return {
        "columns": _columns(table, lang),
        "rows": table.rows,
        "chain_rows": chain,
        "outstanding": rh.outstanding(conn, now, scope),
        "expiring": rh.expiring(conn, now),
    }


@router.get("/hq/liability", response_class=HTMLResponse, include_in_schema=False)
def liability_page(
    request: Request,
    user: PageReader,
    reads: ReadLedger,
    kind: RangeQ = "custom",
    first: FromQ = None,
    last: ToQ = None,
    station: StationQ = None,
) -> HTMLResponse:
    """The points liability roll-forward per month and station, and what expires soon."""
    return _page(
        request,
        reads,
        user,
        "hq_liability.html",
        "liability",
        _liability,
        kind,
        first,
        last,
        station,
    )


def _sales(
    conn: Connection, now: datetime, period: Period, scope: str | None, lang: str
) -> dict[str, Any]:
    table = rt.sales_table(conn, period, scope)
    hours = rt.hours_table(conn, period, scope)
    return {
        "columns": _columns(table, lang),
        "rows": table.rows,
        "hour_columns": _columns(hours, lang),
        "hour_rows": hours.rows,
        "kpis": rh.kpis(conn, period, scope),
    }


@router.get("/hq/sales", response_class=HTMLResponse, include_in_schema=False)
def sales_page(
    request: Request,
    user: PageReader,
    reads: ReadLedger,
    kind: RangeQ = "30d",
    first: FromQ = None,
    last: ToQ = None,
    station: StationQ = None,
) -> HTMLResponse:
    """Sales per station × grade × day, and the peak hours heat map."""
    return _page(request, reads, user, "hq_sales.html", "sales", _sales, kind, first, last, station)


def _members(
    conn: Connection, now: datetime, period: Period, scope: str | None, lang: str
) -> dict[str, Any]:
    return {"report": mr.member_report(conn, period.start, period.end, scope, now)}


@router.get("/hq/reports/members", response_class=HTMLResponse, include_in_schema=False)
def member_reports_page(
    request: Request,
    user: PageReader,
    reads: ReadLedger,
    kind: RangeQ = "custom",
    first: FromQ = None,
    last: ToQ = None,
    station: StationQ = None,
) -> HTMLResponse:
    """Member growth, tiers, activity and dormant members, RFM segments."""
    return _page(
        request,
        reads,
        user,
        "hq_member_reports.html",
        "members",
        _members,
        kind,
        first,
        last,
        station,
    )
