"""What a member sees and changes of their own: `/m/api/v1/me…`.

The member is always `CurrentMember` (the token's member, merges resolved, erased members
signed out), never an id from the path or the body; ids in paths name only the member's own
records, and anyone else's answer 404 like ids that do not exist. Every answer holding
ledger data says when it was read (`as_of`) and how fresh the ledger is (`freshness`), and
none is cached by the browser or a proxy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy import Connection

from cloud_sync.cloud.ledger import member_history, member_plates, member_rights
from cloud_sync.cloud.ledger.member_self import freshness, member_home
from cloud_sync.cloud.ledger.postings import millis
from cloud_sync.cloud.server.context import ApiProblem, cloud_context
from cloud_sync.cloud.server.errors import error_responses
from cloud_sync.cloud.server.read_ledger import LedgerReads, ReadLedger

from .auth import CurrentMember, MemberPrincipal

__all__ = ["EXPORT_EVERY_S", "me_router"]

EXPORT_EVERY_S = 60  # one export per member per minute: it reads all the member's history
_THROTTLE_KEEP = 10_000  # members remembered by the throttle, at most
COUPONS_NOTE = "优惠券随营销活动上线 / coupons arrive with campaigns"

BeforeParam = Annotated[
    str | None,
    Query(max_length=400, description="the `next` cursor of the previous page; empty: newest"),
]
LimitParam = Annotated[
    int,
    Query(ge=1, le=member_history.MAX_PAGE, description="rows per page (at most 50)"),
]
PlateParam = Annotated[str, Path(min_length=1, max_length=32, description="the plate, as shown")]


class PlateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plate: Annotated[str, Field(min_length=1, max_length=32, description="e.g. 京A12345")]


class ConsentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    marketing: StrictBool = Field(description="true: offers may be sent; false: withdrawn")


class _Throttle:
    """At most one call per key per period, remembered in bounded memory."""

    def __init__(self, period_ms: int) -> None:
        self._period_ms = period_ms
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def wait_s(self, key: str, now_ms: int) -> int:
        """0 and the call is counted; otherwise the seconds until the key may call again."""
        with self._lock:
            last = self._last.get(key)
            if last is not None and now_ms - last < self._period_ms:
                return max(1, (self._period_ms - (now_ms - last) + 999) // 1000)
            if len(self._last) >= _THROTTLE_KEEP:
                cutoff = now_ms - self._period_ms
                self._last = {k: v for k, v in self._last.items() if v > cutoff}
                if len(self._last) >= _THROTTLE_KEEP:
                    self._last.clear()
            self._last[key] = now_ms
            return 0


def private(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer only the member's own app may keep."""
    content = orjson.dumps(body, default=str)
    return Response(
        content,
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _read(reads: LedgerReads, work: Any, missing: Any = None) -> Any:
    """One consistent read (a single snapshot on PostgreSQL), on the replica when fit."""
    return reads.read(work, snapshot=True, missing=missing)


def _signed_out() -> ApiProblem:
    return ApiProblem(401, "unauthorized", "signed out: the member no longer exists")


def _history_page(
    request: Request,
    reads: LedgerReads,
    page_of: Callable[..., dict[str, Any]],
    member: MemberPrincipal,
    before: str | None,
    limit: int,
) -> Response:
    """One page of the member's history, said how fresh (the stations it names)."""
    context = cloud_context(request)
    now = context.now()

    def work(conn: Connection) -> dict[str, Any]:
        page = page_of(conn, member.member_id, before=before or None, limit=limit)
        used = set(page.pop("stations"))
        return {**page, "as_of": now.isoformat(), "freshness": freshness(conn, used)}

    return private(_read(reads, work))


def _history_routes(router: APIRouter) -> None:
    @router.get(
        "/me/sales",
        summary="The member's sales at every station, newest first, with receipts and invoices",
        responses=error_responses("member_app.cursor"),
    )
    def my_sales(
        request: Request,
        member: CurrentMember,
        reads: ReadLedger,
        before: BeforeParam = None,
        limit: LimitParam = member_history.DEFAULT_PAGE,
    ) -> Response:
        return _history_page(request, reads, member_history.sales_page, member, before, limit)

    @router.get(
        "/me/redemptions",
        summary="The member's redemptions at every station, newest first",
        responses=error_responses("member_app.cursor"),
    )
    def my_redemptions(
        request: Request,
        member: CurrentMember,
        reads: ReadLedger,
        before: BeforeParam = None,
        limit: LimitParam = member_history.DEFAULT_PAGE,
    ) -> Response:
        return _history_page(request, reads, member_history.redemptions_page, member, before, limit)

    @router.get(
        "/me/coupons",
        summary="The member's coupons (none until campaigns arrive)",
        responses=error_responses(),
    )
    def my_coupons(request: Request, member: CurrentMember) -> Response:
        now = cloud_context(request).now()
        return private(
            {
                "open": [],
                "used": [],
                "expired": [],
                "available": False,
                "note": COUPONS_NOTE,
                "as_of": now.isoformat(),
            }
        )


def _plate_routes(router: APIRouter) -> None:
    @router.get("/me/plates", summary="The member's plates", responses=error_responses())
    def my_plates(request: Request, member: CurrentMember, reads: ReadLedger) -> Response:
        context = cloud_context(request)
        found = reads.read(
            lambda conn: member_plates.member_plates(conn, context.chain_keys, member.member_id)
        )
        return private({"plates": found, "max": member_plates.MAX_PLATES})

    @router.post(
        "/me/plates",
        status_code=201,
        summary="Add a plate (200 when the member holds it already)",
        responses=error_responses(
            "member_app.plate_taken",
            "member_app.plate_limit",
            "member_app.plate_throttled",
            "plate.format",
            body=True,
        ),
    )
    def add_plate(request: Request, body: PlateBody, member: CurrentMember) -> Response:
        context = cloud_context(request)
        now = context.now()
        db = context.ledger.db
        wait = db.transact(
            lambda conn: member_plates.take_plate_attempt(db, conn, member.member_id, now)
        )
        if wait:
            raise ApiProblem(
                429,
                "member_app.plate_throttled",
                f"at most {member_plates.PLATE_ADDS_PER_DAY} plate adds a day: retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        found, added = context.ledger.db.transact(
            lambda conn: member_plates.add_plate(
                context.ledger.db, conn, context.chain_keys, member.member_id, body.plate, now
            )
        )
        answer = {"plates": found, "added": added, "max": member_plates.MAX_PLATES}
        return private(answer, 201 if added else 200)

    @router.delete(
        "/me/plates/{plate}",
        summary="Remove one of the member's plates",
        responses=error_responses("not_found", "plate.format"),
    )
    def remove_plate(request: Request, plate: PlateParam, member: CurrentMember) -> Response:
        context = cloud_context(request)
        now = context.now()
        left = context.ledger.db.transact(
            lambda conn: member_plates.remove_plate(
                context.ledger.db, conn, context.chain_keys, member.member_id, plate, now
            )
        )
        return private({"plates": left, "max": member_plates.MAX_PLATES})


def _rights_routes(router: APIRouter) -> None:
    exports = _Throttle(EXPORT_EVERY_S * 1000)

    @router.get(
        "/me/export",
        summary="PIPL: everything held on the member, as one JSON document",
        responses=error_responses("member_app.export_throttled"),
    )
    def export(request: Request, member: CurrentMember) -> Response:
        context = cloud_context(request)
        now = context.now()
        wait = exports.wait_s(member.member_id, millis(now))
        if wait:
            raise ApiProblem(
                429,
                "member_app.export_throttled",
                f"one export a minute: retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        document = context.ledger.db.transact(
            lambda conn: member_rights.export_for_member(
                conn, context.chain_keys, member.member_id, now
            )
        )
        return private(
            document, headers={"Content-Disposition": 'attachment; filename="member-export.json"'}
        )

    @router.post(
        "/me/consent",
        summary="Give or withdraw marketing consent",
        responses=error_responses(body=True),
    )
    def consent(request: Request, body: ConsentBody, member: CurrentMember) -> Response:
        context = cloud_context(request)
        now = context.now()
        answer = context.ledger.db.transact(
            lambda conn: member_rights.set_marketing_consent(
                conn, member.member_id, marketing=body.marketing, now=now
            )
        )
        return private(answer)

    @router.delete(
        "/me",
        summary="PIPL: delete the account (anonymised; the ledger's sums kept; signed out)",
        responses=error_responses("member.erased"),
    )
    def delete_me(request: Request, member: CurrentMember) -> Response:
        context = cloud_context(request)
        now = context.now()
        done = context.ledger.db.transact(
            lambda conn: member_rights.delete_account(
                context.ledger.db, conn, member.member_id, now
            )
        )
        return private({"deleted": True, "at": now.isoformat(), **done})


def me_router() -> APIRouter:
    router = APIRouter(prefix="/m/api/v1", tags=["member app"])

    @router.get(
        "/me",
        summary="The member's home: balance and its value, expiring points, tier and progress",
        responses=error_responses(),
    )
    def me(request: Request, member: CurrentMember, reads: ReadLedger) -> Response:
        context = cloud_context(request)
        now = context.now()
        home = _read(
            reads,
            lambda conn: member_home(
                conn, context.chain_keys, context.ledger.rules, member.member_id, now
            ),
            # signed up a moment ago: the replica may not have the member yet
            missing=lambda found: found is None,
        )
        if home is None:
            raise _signed_out()
        return private(home)

    _history_routes(router)
    _plate_routes(router)
    _rights_routes(router)
    return router
