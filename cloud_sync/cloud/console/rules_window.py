"""The backtest's window as the console asks for it, and its result as export tables."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from cloud_sync.cloud.ledger.errors import LedgerError
from cloud_sync.core.ruleset.parser import parse_ruleset_json

__all__ = ["BY_COLUMNS", "SAMPLE_COLUMNS", "export_rows", "window_from_body"]

BY_COLUMNS: list[tuple[str, str]] = [
    ("key", "key"),
    ("sales", "sales"),
    ("member_sales", "member_sales"),
    ("booked_points", "booked_points"),
    ("current_points", "current_points"),
    ("draft_points", "draft_points"),
    ("diff_points", "diff_points"),
    ("draft_requalified_points", "draft_requalified_points"),
    ("diff_requalified_points", "diff_requalified_points"),
    ("current_fen", "current_fen"),
    ("draft_fen", "draft_fen"),
    ("draft_requalified_fen", "draft_requalified_fen"),
]
SAMPLE_COLUMNS: list[tuple[str, str]] = [
    ("sale_id", "sale_id"),
    ("station_id", "station_id"),
    ("member_id", "member_id"),
    ("ended_at", "ended_at"),
    ("grade", "grade"),
    ("litres", "litres"),
    ("amount", "amount"),
    ("booked_points", "booked_points"),
    ("current_tier", "current_tier"),
    ("current_points", "current_points"),
    ("draft_tier", "draft_tier"),
    ("draft_points", "draft_points"),
    ("requalified_tier", "requalified_tier"),
    ("requalified_points", "requalified_points"),
]
MEMBER_COLUMNS: list[tuple[str, str]] = [
    ("member_id", "member_id"),
    ("sales", "sales"),
    ("current_points", "current_points"),
    ("draft_points", "draft_points"),
    ("diff_points", "diff_points"),
    ("draft_requalified_points", "draft_requalified_points"),
]


def _moment(value: str, zone: Any, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise LedgerError("backtest.window", f"{name} is not an ISO 8601 date or time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def window_from_body(
    days: int | None, start: str | None, end: str | None, draft: dict[str, Any], now: datetime
) -> tuple[datetime, datetime]:
    """days N (ending now; default 30) or from/to (a bare date is in the draft's zone)."""
    if days is not None and (start or end):
        raise LedgerError("backtest.window", "give days or from/to, not both")
    if start or end:
        if not (start and end):
            raise LedgerError("backtest.window", "from and to go together")
        zone = parse_ruleset_json(draft["document"]).zone
        return _moment(start, zone, "from"), _moment(end, zone, "to")
    return now - timedelta(days=30 if days is None else days), now


def sample_rows(result: dict[str, Any]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for sample in result.get("samples", []):
        rows.append(
            {
                **{k: sample[k] for k in ("sale_id", "station_id", "member_id", "ended_at")},
                **{k: sample[k] for k in ("grade", "litres", "amount", "booked_points")},
                "current_tier": sample["current"]["tier"],
                "current_points": sample["current"]["points"],
                "draft_tier": sample["draft"]["tier"],
                "draft_points": sample["draft"]["points"],
                "requalified_tier": sample["draft_requalified"]["tier"],
                "requalified_points": sample["draft_requalified"]["points"],
            }
        )
    return rows


def export_rows(
    result: dict[str, Any], table: str
) -> tuple[list[tuple[str, str]], list[dict[str, object]]]:
    if table == "samples":
        return SAMPLE_COLUMNS, sample_rows(result)
    if table == "members":
        return MEMBER_COLUMNS, list(result.get("top_members", []))
    return BY_COLUMNS, list(result.get("by", {}).get(table, []))
