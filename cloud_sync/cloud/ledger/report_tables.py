"""HQ's reports as flat tables: one definition of each table's columns for the console's
pages, its CSV/XLSX downloads and `loyalpump cloud report`; and the report period a person
asks for (today / 7d / 30d / custom), checked, in the chain's dates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, select

from . import member_reports, reports_hq
from .aggregates import chain_zone
from .errors import LedgerError
from .reports_hq import Period
from .schema import stations

__all__ = ["RANGES", "Col", "Table", "check_station", "period_of", "table"]

RANGES: Final = ("today", "7d", "30d", "custom")
MAX_DAYS: Final = 366


@dataclass(frozen=True)
class Col:
    key: str
    zh: str
    en: str
    kind: str = "int"  # text | int | points | fen (as console/_macros.html draws them)


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Col, ...]
    rows: list[dict[str, Any]]


def _date(text: str | None, what: str) -> date:
    try:
        return date.fromisoformat(text or "")
    except ValueError as exc:
        raise LedgerError("report.range", f"{what} must be a date YYYY-MM-DD") from exc


def period_of(
    conn: Connection,
    now: datetime,
    kind: str = "30d",
    first: str | None = None,
    last: str | None = None,
    *,
    default_days: int = 30,
) -> Period:
    """The dates a report covers (both included); custom without from: `default_days`
    up to to (default today)."""
    today = now.astimezone(chain_zone(conn)).date()
    if kind == "today":
        return Period(today, today)
    if kind in ("7d", "30d"):
        return Period(today - timedelta(days=int(kind[:-1]) - 1), today)
    if kind != "custom" and not (first or last):
        raise LedgerError("report.range", f"range is one of {', '.join(RANGES)}")
    end = _date(last, "to") if last else today
    start = _date(first, "from") if first else end - timedelta(days=default_days - 1)
    if start > end:
        raise LedgerError("report.range", "from is after to")
    if (end - start).days + 1 > MAX_DAYS:
        raise LedgerError("report.range", f"a report covers at most {MAX_DAYS} days")
    return Period(start, end)


def check_station(conn: Connection, station: str | None) -> str | None:
    """None (the chain), '' (HQ's own postings) or an enrolled station's id."""
    if station is None or station in ("", "*"):
        return None if station in (None, "*") else ""
    if (
        len(station) > 64
        or conn.execute(
            select(stations.c.station_id).where(stations.c.station_id == station)
        ).first()
        is None
    ):
        raise LedgerError("report.station", f"no station {station[:64]!r}")
    return station


def _litres(ml: int) -> str:
    return f"{ml // 1000}.{ml % 1000 // 10:02d}" if ml >= 0 else "-" + _litres(-ml)


_LIABILITY = (
    Col("month", "月份", "Month", "text"),
    Col("station", "油站", "Station", "text"),
    Col("opening", "期初", "Opening", "points"),
    Col("issued", "发放", "Issued", "points"),
    Col("variance", "差异", "Variance", "points"),
    Col("redeemed", "兑换", "Redeemed", "points"),
    Col("expired", "过期", "Expired", "points"),
    Col("adjustments", "调整", "Adjustments", "points"),
    Col("written_off", "核销", "Written off", "points"),
    Col("other", "其他", "Other", "points"),
    Col("closing", "期末", "Closing", "points"),
    Col("closing_fen", "期末（元）", "Closing (yuan)", "fen"),
)
_SALES = (
    Col("day", "日期", "Day", "text"),
    Col("station_id", "油站", "Station", "text"),
    Col("grade", "油品", "Grade", "text"),
    Col("sales", "笔数", "Sales"),
    Col("member_sales", "会员笔数", "Member sales"),
    Col("litres", "升数", "Litres", "text"),
    Col("amount_fen", "金额", "Amount", "fen"),
)
_HOURS = (
    Col("hour", "小时", "Hour", "text"),
    Col("weekday", "星期", "Weekday", "text"),
    Col("sales", "笔数", "Sales"),
)
_DAILY = (
    Col("day", "日期", "Day", "text"),
    Col("amount_fen", "金额", "Amount", "fen"),
    Col("points_issued", "发放积分", "Points issued", "points"),
    Col("points_redeemed", "兑换积分", "Points redeemed", "points"),
    Col("points_expired", "过期积分", "Points expired", "points"),
    Col("active_members", "消费会员", "Active members"),
    Col("new_members", "新会员", "New members"),
)
_WEEKDAYS: Final = ("一", "二", "三", "四", "五", "六", "日")


def station_label(station_id: str) -> str:
    return "HQ" if station_id == "" else "合计" if station_id == "*" else station_id


def liability_table(conn: Connection, period: Period, station: str | None, now: datetime) -> Table:
    rate = reports_hq.points_per_yuan(conn, now)
    rows = reports_hq.liability(
        conn, period.start.strftime("%Y-%m"), period.end.strftime("%Y-%m"), station
    )
    for row in rows:
        row["station"] = station_label(row["station_id"])
        row["closing_fen"] = None if not rate else row["closing"] * 100 // rate
    return Table("liability", _LIABILITY, rows)


def sales_table(conn: Connection, period: Period, station: str | None) -> Table:
    rows = reports_hq.sales_table(conn, period, station)
    for row in rows:
        row["station_id"] = station_label(row["station_id"])
        row["litres"] = _litres(int(row["litres_ml"]))
    return Table("sales", _SALES, rows)


def hours_table(conn: Connection, period: Period, station: str | None) -> Table:
    rows = [
        {**r, "hour": f"{r['hour']:02d}", "weekday": "周" + _WEEKDAYS[r["weekday"] - 1]}
        for r in reports_hq.sales_hours(conn, period, station)
    ]
    return Table("sales-hours", _HOURS, rows)


def daily_table(conn: Connection, period: Period, station: str | None) -> Table:
    data = reports_hq.series(conn, period, station)
    return Table("dashboard", _DAILY, list(data["days"]))


def members_table(
    conn: Connection, period: Period, station: str | None, now: datetime | None = None
) -> Table:
    """The member report as one table: every figure a row (group, measure, value)."""
    report = member_reports.member_report(conn, period.start, period.end, station, now)
    rows: list[dict[str, Any]] = []
    for r in report["growth"]:
        rows.append({"section": "growth", "item": r["month"], "members": r["registered"]})
    for r in report["tiers"]:
        rows.append({"section": "tier", "item": r["tier"], "members": r["members"]})
    for r in report["activity"]:
        rows.append({"section": "activity", "item": r["group"], "members": r["members"]})
    for r in report["tier_movements"]["months"]:
        rows.append({"section": "tier_up", "item": r["month"], "members": r["up"]})
        rows.append({"section": "tier_down", "item": r["month"], "members": r["down"]})
    for r in report["rfm"]["segments"]:
        rows.append({"section": "rfm", "item": r["segment"], "members": r["members"]})
    columns = (
        Col("section", "类别", "Section", "text"),
        Col("item", "项目", "Item", "text"),
        Col("members", "会员数", "Members"),
    )
    return Table("members", columns, rows)


def table(conn: Connection, name: str, period: Period, station: str | None, now: datetime) -> Table:
    """A report by its name: liability, sales, sales-hours, dashboard, members."""
    if name == "liability":
        return liability_table(conn, period, station, now)
    if name == "sales":
        return sales_table(conn, period, station)
    if name == "sales-hours":
        return hours_table(conn, period, station)
    if name == "dashboard":
        return daily_table(conn, period, station)
    if name == "members":
        return members_table(conn, period, station, now)
    raise LedgerError("report.range", f"no report {name!r}")
