"""The stations screen: health, sync position, rule version, allowance, variance and
quarantine per station; enrolment, revocation and token rotation for admins.

A new token is in the answer to the request that made it and nowhere else: not in the
audit, not in a log line, not on any page shown later.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from cloud_sync.cloud.ledger import station_admin
from cloud_sync.cloud.server.context import cloud_context
from cloud_sync.cloud.server.errors import error_responses
from cloud_sync.cloud.server.read_ledger import LedgerReads, ReadLedger

from .auth import Admin, PageReader, Reader
from .export import Column, download
from .pages import render

__all__ = ["stations_router"]

HealthParam = Annotated[
    str | None,
    Query(
        max_length=16,
        description="online (< 1 h), late (> 1 h), offline (> 24 h) or never; empty: all",
    ),
]
SearchParam = Annotated[
    str | None, Query(max_length=64, description="text in the station's id or name")
]
SortParam = Annotated[station_admin.Sort, Query(description="the column to sort by")]
FormatParam = Annotated[Literal["csv", "xlsx"] | None, Query(description="export instead")]

_EXPORT: Final = (
    Column("id", "station_id"),
    Column("name", "name"),
    Column("health", "health"),
    Column("enrolled_at", "enrolled_at"),
    Column("keys_uploaded_at", "keys_uploaded_at"),
    Column("revoked_at", "revoked_at"),
    Column("last_push_at", "last_push_at"),
    Column("epoch", "epoch"),
    Column("high_water", "last_pushed_seq"),
    Column("rule_version", "rule_version"),
    Column("newest_version", "newest_version"),
    Column("allowance_points", "allowance_points"),
    Column("allowance_used", "allowance_used"),
    Column("allowance_remaining", "allowance_remaining"),
    Column("allowance_expires_at", "allowance_expires_at"),
    Column("variance_points", "variance_points"),
    Column("variance_sales", "variance_sales"),
    Column("open_flags", "open_flags"),
    Column("suspended", "suspended"),
    Column("quarantined", "quarantined"),
)
_DAYS_EXPORT: Final = (
    Column("day", "day"),
    Column("sales", "sales"),
    Column("litres_ml", "litres_ml"),
    Column("amount_fen", "amount_fen"),
)


# Times the pages show in the chain's time zone (the JSON and exports keep them as stored).
_TIME_KEYS: Final = frozenset(
    {
        "enrolled_at",
        "keys_uploaded_at",
        "revoked_at",
        "last_push_at",
        "allowance_expires_at",
        "received_at",
        "flagged_at",
        "resolved_at",
        "granted_at",
        "expires_at",
        "decided_at",
    }
)


def _local(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return value
    return moment.astimezone(station_admin.CHAIN_TZ).strftime("%Y-%m-%d %H:%M")


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """A row for a page: its times in the chain's zone, its lists' rows likewise."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in _TIME_KEYS:
            out[key] = _local(value)
        elif isinstance(value, list):
            out[key] = [_shown(item) if isinstance(item, dict) else item for item in value]
        else:
            out[key] = value
    return out


class EnrolBody(BaseModel):
    station_id: Annotated[str, Field(min_length=1, max_length=32)]
    name: Annotated[str | None, Field(max_length=64)] = None


def _rows(
    request: Request,
    reads: LedgerReads,
    health: str | None,
    q: str | None,
    sort: str,
    desc: bool,
) -> list[dict[str, Any]]:
    now = cloud_context(request).now()
    return reads.read(
        lambda conn: station_admin.station_rows(
            conn,
            now,
            health=health or None,
            search=q,
            sort=sort,
            descending=desc,
        )
    )


_BACKLOG: Final = (
    "the cloud knows only what it received: high_water is the last sequence number accepted "
    "per epoch, last_push_at when; a station does not report its unsent events"
)


def _token_answer(station_id: str, token: str, status: int) -> JSONResponse:
    answer = JSONResponse({"station_id": station_id, "token": token}, status_code=status)
    answer.headers["Cache-Control"] = "no-store"
    return answer


def stations_router() -> APIRouter:
    """The stations list, one station's detail and the admin's token actions."""
    router = APIRouter(tags=["HQ console"])

    @router.get(
        "/api/v1/hq/stations",
        summary="Every station's health, sync and figures",
        responses=error_responses("station.filter"),
    )
    def list_stations(
        request: Request,
        user: Reader,
        reads: ReadLedger,
        health: HealthParam = None,
        q: SearchParam = None,
        sort: SortParam = "id",
        desc: bool = False,
        format: FormatParam = None,
    ) -> Response:
        rows = _rows(request, reads, health, q, sort, desc)
        if format is not None:
            return download(format, _EXPORT, rows, filename="stations")
        every = rows if not health and not q else _rows(request, reads, None, None, "id", False)
        return JSONResponse(
            {"counts": station_admin.health_counts(every), "stations": rows, "backlog": _BACKLOG}
        )

    @router.get(
        "/api/v1/hq/stations/{station_id}",
        summary="One station in detail",
        responses=error_responses("station.unknown"),
    )
    def get_station(
        request: Request,
        station_id: str,
        user: Reader,
        reads: ReadLedger,
        format: FormatParam = None,
    ) -> Response:
        now = cloud_context(request).now()
        detail = reads.read(lambda conn: station_admin.station_detail(conn, station_id, now))
        if format is not None:
            return download(
                format, _DAYS_EXPORT, detail["sales_days"], filename=f"sales-{station_id}"
            )
        return JSONResponse(detail)

    @router.post(
        "/api/v1/hq/stations",
        status_code=201,
        summary="Enrol a station (token once)",
        responses=error_responses("station.exists", "station.invalid", "station.name", body=True),
    )
    def enrol_station(request: Request, body: EnrolBody, user: Admin) -> JSONResponse:
        context = cloud_context(request)
        now = context.now()
        token = context.ledger.db.transact(
            lambda conn: station_admin.enrol_station(
                conn, body.station_id, body.name, actor=user.name, now=now
            )
        )
        return _token_answer(body.station_id, token, 201)

    @router.post(
        "/api/v1/hq/stations/{station_id}/revoke",
        summary="Revoke a station's token",
        responses=error_responses("station.unknown", "station.revoked"),
    )
    def revoke_station(request: Request, station_id: str, user: Admin) -> JSONResponse:
        context = cloud_context(request)
        now = context.now()
        context.ledger.db.transact(
            lambda conn: station_admin.revoke_station(conn, station_id, actor=user.name, now=now)
        )
        return JSONResponse({"station_id": station_id, "revoked_at": now.isoformat()})

    @router.post(
        "/api/v1/hq/stations/{station_id}/rotate",
        summary="A new token (shown once)",
        responses=error_responses("station.unknown"),
    )
    def rotate_station(request: Request, station_id: str, user: Admin) -> JSONResponse:
        context = cloud_context(request)
        now = context.now()
        token = context.ledger.db.transact(
            lambda conn: station_admin.rotate_station_token(
                conn, station_id, actor=user.name, now=now
            )
        )
        return _token_answer(station_id, token, 200)

    @router.get("/hq/stations", response_class=HTMLResponse, include_in_schema=False)
    def stations_page(
        request: Request,
        user: PageReader,
        reads: ReadLedger,
        health: HealthParam = None,
        q: SearchParam = None,
        sort: SortParam = "id",
        desc: bool = False,
    ) -> HTMLResponse:
        rows = _rows(request, reads, health, q, sort, desc)
        every = rows if not health and not q else _rows(request, reads, None, None, "id", False)
        return render(
            request,
            "hq_stations.html",
            user,
            {
                "active": "stations",
                "rows": [_shown(row) for row in rows],
                "counts": station_admin.health_counts(every),
                "total": len(every),
                "health": health,
                "q": q or "",
                "sort": sort,
                "desc": desc,
            },
        )

    @router.get("/hq/stations/{station_id}", response_class=HTMLResponse, include_in_schema=False)
    def station_page(
        request: Request, station_id: str, user: PageReader, reads: ReadLedger
    ) -> HTMLResponse:
        now = cloud_context(request).now()
        detail = reads.read(lambda conn: station_admin.station_detail(conn, station_id, now))
        days = [
            {**day, "litres": day["litres_ml"] // 1000, "amount_yuan": day["amount_fen"] // 100}
            for day in detail["sales_days"]
        ]
        return render(
            request,
            "hq_stations_detail.html",
            user,
            {"active": "stations", "s": _shown(detail), "days": days},
        )

    return router
