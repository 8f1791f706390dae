"""The members screen's pages: search, a member's page, the import form.

The pages read through the same ledger functions as the JSON API; their forms call that
API from `static/hq-members.js` (with the CSRF header), so a script can do what a person
does here.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from cloud_sync.cloud.ledger.member_admin import (
    MAX_ADJUST,
    MAX_REASON,
    member_page,
    member_sales,
    search_members,
)
from cloud_sync.cloud.ledger.member_list import CHAIN_ZONE
from cloud_sync.cloud.ledger.member_sheet import MAX_BYTES, MAX_ROWS
from cloud_sync.cloud.server.context import cloud_context
from cloud_sync.core.identity import IdentityError

from .auth import PageAdmin, PageReader
from .pages import render

__all__ = ["members_pages_router"]

_HTTP_LIMIT = 8 * 1024 * 1024  # the service's body limit (the gate's); the CLI takes more


def members_pages_router() -> APIRouter:
    """The search page, a member's page and the import form."""
    router = APIRouter(prefix="/hq/members", tags=["HQ console"], include_in_schema=False)

    @router.get("", response_class=HTMLResponse)
    def search_page(
        request: Request, user: PageReader, q: Annotated[str, Query(max_length=64)] = ""
    ) -> HTMLResponse:
        context = cloud_context(request)
        found = None
        error = None
        if q.strip():
            try:
                found = context.ledger.db.read(
                    lambda c: search_members(c, context.chain_keys, q, context.now())
                )
            except (IdentityError, ValueError) as exc:
                error = str(exc)
        return render(
            request,
            "hq_members.html",
            user,
            {"active": "members", "q": q, "found": found, "error": error},
        )

    @router.get("/import", response_class=HTMLResponse)
    def import_page(request: Request, user: PageAdmin) -> HTMLResponse:
        return render(
            request,
            "hq_member_import.html",
            user,
            {
                "active": "members",
                "max_rows": MAX_ROWS,
                "max_mib": MAX_BYTES // (1024 * 1024),
                "http_mib": _HTTP_LIMIT // (1024 * 1024),
                "http_limit": _HTTP_LIMIT,
            },
        )

    @router.get("/{member_id}", response_class=HTMLResponse)
    def member_page_view(
        request: Request,
        user: PageReader,
        member_id: str,
        before: Annotated[str | None, Query(max_length=200)] = None,
    ) -> HTMLResponse:
        context = cloud_context(request)
        db = context.ledger.db
        page = db.read(lambda c: member_page(c, context.chain_keys, member_id, context.now()))
        if page is None:
            return render(
                request,
                "hq_members.html",
                user,
                {"active": "members", "q": member_id, "found": [], "error": None},
                status_code=404,
            )
        sales = db.read(lambda c: member_sales(c, page["member_id"], before=before, limit=50))
        return render(
            request,
            "hq_member.html",
            user,
            {
                "active": "members",
                "m": page,
                "sales": sales,
                "zone": str(CHAIN_ZONE),
                "request_id": uuid.uuid4().hex,
                "max_adjust": MAX_ADJUST,
                "max_reason": MAX_REASON,
                "is_admin": user.may("admin"),
            },
        )

    return router
