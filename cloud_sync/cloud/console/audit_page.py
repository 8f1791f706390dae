"""The audit screen: every HQ change, newest first, filtered by actor, action, target and
day (UTC), a page at a time, and the same rows as CSV or XLSX. Any role may read it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Final
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from cloud_sync.cloud.ledger.audit import audit_actions, audit_entries
from cloud_sync.cloud.server.context import ApiProblem
from cloud_sync.cloud.server.errors import error_responses
from cloud_sync.cloud.server.read_ledger import LedgerReads, ReadLedger

from .auth import PageReader, Reader
from .export import Column, ExportFormat, download
from .pages import render

__all__ = ["audit_router"]

PAGE: Final = 50
EXPORT_MAX: Final = 10_000
_Text = Annotated[str | None, Query(max_length=64)]
_Day = Annotated[str | None, Query(alias="from", max_length=10)]
_Until = Annotated[str | None, Query(alias="to", max_length=10)]
_Before = Annotated[int | None, Query(ge=1)]


@dataclass(frozen=True)
class Filters:
    actor: str | None
    action: str | None
    target: str | None
    since: date | None
    until: date | None

    def query(self) -> dict[str, str]:
        pairs = {
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "from": self.since.isoformat() if self.since else None,
            "to": self.until.isoformat() if self.until else None,
        }
        return {key: value for key, value in pairs.items() if value}


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ApiProblem(422, "invalid", f"{name}: a day is YYYY-MM-DD") from exc


@dataclass(frozen=True)
class _Asked:
    """The filters as typed: the API refuses a bad day, the page shows it as its error."""

    actor: str | None
    action: str | None
    target: str | None
    since: str | None
    until: str | None


def _asked(
    actor: _Text = None,
    action: _Text = None,
    target: _Text = None,
    since: _Day = None,
    until: _Until = None,
) -> _Asked:
    return _Asked(actor, action, target, since, until)


Asked = Annotated[_Asked, Depends(_asked)]


def _filters(asked: _Asked) -> Filters:
    return Filters(
        actor=(asked.actor or "").strip() or None,
        action=(asked.action or "").strip() or None,
        target=(asked.target or "").strip() or None,
        since=_day(asked.since, "from"),
        until=_day(asked.until, "to"),
    )


def _ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def _search(
    reads: LedgerReads, filters: Filters, before: int | None, limit: int
) -> list[dict[str, Any]]:
    since_ms = _ms(filters.since) if filters.since else None
    until_ms = _ms(filters.until + timedelta(days=1)) if filters.until else None
    return reads.read(
        lambda conn: audit_entries(
            conn,
            actor=filters.actor,
            action=filters.action,
            target=filters.target,
            since_ms=since_ms,
            until_ms=until_ms,
            before_id=before,
            limit=limit,
        )
    )


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    def text(value: Any) -> str:
        return "" if value is None else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()

    return {**row, "before": text(row["before"]), "after": text(row["after"])}


COLUMNS: Final = (
    Column("audit_id", "#"),
    Column("at", "时间 (UTC)"),
    Column("actor", "操作人"),
    Column("action", "动作"),
    Column("target", "对象"),
    Column("before", "之前"),
    Column("after", "之后"),
)


def audit_router() -> APIRouter:
    router = APIRouter(tags=["HQ console"])

    @router.get("/api/v1/hq/audit", responses=error_responses())
    def api_audit(
        request: Request,
        user: Reader,
        reads: ReadLedger,
        asked: Asked,
        before: _Before = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        """HQ's changes, newest first; `next_before` pages on (null at the end)."""
        filters = _filters(asked)
        rows = _search(reads, filters, before, limit)
        last = rows[-1]["audit_id"] if len(rows) == limit else None
        return {"entries": rows, "next_before": last}

    @router.get("/hq/audit", include_in_schema=False)
    async def audit_page(
        request: Request,
        user: PageReader,
        reads: ReadLedger,
        asked: Asked,
        before: _Before = None,
        format: ExportFormat | None = None,
    ) -> Response:
        try:
            filters = _filters(asked)
        except ApiProblem as problem:
            filters = Filters(asked.actor, asked.action, asked.target, None, None)
            error = str(problem)
        else:
            error = ""
        if format is not None:
            rows = await run_in_threadpool(_search, reads, filters, None, EXPORT_MAX)
            return download(format, COLUMNS, [_flat(r) for r in rows], filename="hq-audit")
        rows = await run_in_threadpool(_search, reads, filters, before, PAGE + 1)
        more = len(rows) > PAGE
        rows = [_flat(r) for r in rows[:PAGE]]
        actions = await run_in_threadpool(reads.read, audit_actions)
        query = filters.query()
        context = {
            "active": "audit",
            "rows": rows,
            "filters": filters,
            "actions": actions,
            "error": error,
            "next_url": f"?{urlencode({**query, 'before': rows[-1]['audit_id']})}"
            if more
            else None,
            "first_url": f"?{urlencode(query)}" if before else None,
            "export_url": f"/hq/audit?{urlencode(query)}",
        }
        return render(request, "hq_audit.html", user, context)

    return router
