"""Members' feedback per station: how many, the mean rating and each rating's count, then the
comments newest first (one station's, the chain-wide ones, or all), with CSV/XLSX. Any role
reads it; nothing here changes data."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from cloud_sync.cloud.ledger.member_feedback import feedback_by_station, feedback_list
from cloud_sync.cloud.server.errors import error_responses
from cloud_sync.cloud.server.read_ledger import LedgerReads, ReadLedger

from .auth import PageReader, Reader
from .export import Column, ExportFormat, download
from .pages import render

__all__ = ["feedback_router"]

PAGE: Final = 50
EXPORT_MAX: Final = 200  # one page of the list: the export is what the page would page through
_Station = Annotated[str | None, Query(max_length=32, pattern=r"^[A-Za-z0-9_-]{1,32}$")]
_About = Annotated[Literal["chain"] | None, Query()]
_Before = Annotated[int | None, Query(ge=1)]

COLUMNS: Final = (
    Column("at", "时间 time"),
    Column("station_id", "油站 station"),
    Column("station_name", "油站名称 station name"),
    Column("rating", "评分 rating"),
    Column("comment", "评价 comment"),
    Column("sale_id", "交易 sale"),
    Column("member_id", "会员 member"),
)
SUMMARY_COLUMNS: Final = (
    Column("station_id", "油站 station"),
    Column("station_name", "油站名称 station name"),
    Column("count", "条数 count"),
    Column("average", "平均分 average"),
    *(Column(f"r{n}", f"{n} 星 {n} stars") for n in range(1, 6)),
)


def _read(
    reads: LedgerReads, station: str | None, about: str | None, before: int | None, limit: int
) -> dict[str, Any]:

    def work(conn: Any) -> dict[str, Any]:
        listed = feedback_list(
            conn, station_id=station, chain_only=about == "chain", before=before, limit=limit
        )
        return {"stations": feedback_by_station(conn), **listed}

    return reads.read(work)


def _flat(summary: dict[str, Any]) -> dict[str, Any]:
    return {**summary, **{f"r{n}": summary["ratings"][str(n)] for n in range(1, 6)}}


def feedback_router() -> APIRouter:
    router = APIRouter(tags=["HQ console"])

    @router.get("/api/v1/hq/feedback", responses=error_responses())
    def api_feedback(
        request: Request,
        user: Reader,
        reads: ReadLedger,
        station: _Station = None,
        about: _About = None,
        before: _Before = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        format: ExportFormat | None = None,
    ) -> Any:
        """`stations`: per station (null: about the chain) the count, the mean rating (a
        decimal string) and each rating's count; `feedback`: the comments newest first, of
        one `station`, of the chain (`about=chain`) or all; `next` pages on. `format=csv|xlsx`
        downloads the per-station table."""
        found = _read(reads, station, about, before, limit)
        if format is not None:
            rows = [_flat(s) for s in found["stations"]]
            return download(format, SUMMARY_COLUMNS, rows, filename="hq-feedback-stations")
        return found

    @router.get("/hq/feedback", include_in_schema=False)
    async def feedback_page(
        request: Request,
        user: PageReader,
        reads: ReadLedger,
        station: _Station = None,
        about: _About = None,
        before: _Before = None,
        format: ExportFormat | None = None,
    ) -> Response:
        if format is not None:
            found = await run_in_threadpool(_read, reads, station, about, None, EXPORT_MAX)
            return download(format, COLUMNS, found["feedback"], filename="hq-feedback")
        found = await run_in_threadpool(_read, reads, station, about, before, PAGE)
        query = {k: v for k, v in {"station": station, "about": about}.items() if v}
        context = {
            "active": "feedback",
            "stations": found["stations"],
            "rows": found["feedback"],
            "station": station,
            "about": about,
            "next_url": f"?{urlencode({**query, 'before': found['next']})}"
            if found["next"]
            else None,
            "first_url": f"?{urlencode(query)}" if before else None,
            "export_url": f"/hq/feedback?{urlencode({**query, 'format': ''})}",
        }
        return render(request, "hq_feedback.html", user, context)

    return router
