"""/hq/rules pages: versions and drafts, the editor, the diff, the backtest, approval.

The pages render what the ledger holds; every change goes through /api/v1/hq/rules
(rules_api.py) from console/static/hq-rules.js, so the page and a script do the same thing.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from cloud_sync.cloud.ledger.backtest import backtest_row
from cloud_sync.cloud.ledger.drafts import (
    diff_documents,
    draft_row,
    in_force_document,
    latest_backtest,
    top_version,
    versions_with_pulls,
)
from cloud_sync.cloud.server.context import cloud_context

from .auth import PageMarketer, PageReader
from .pages import render
from .rules_api import permissions
from .rules_window import sample_rows

__all__ = ["rules_pages_router"]

_REASONS = {
    "published": ("已发布", "published already"),
    "admin_only": ("仅管理员可操作", "admins only"),
    "own_draft": (
        "这是您起草的，须由另一位管理员审批",
        "you drafted this: another admin approves it",
    ),
    "backtest_missing": ("尚未回测", "no backtest yet"),
    "backtest_stale": (
        "回测早于最近一次修改，请重新回测",
        "the backtest is older than the last edit",
    ),
    "not_approved": ("尚未审批当前版本", "the current text is not approved"),
}


def _shown(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode("utf-8")


def _diff_rows(before: str | None, after: str) -> list[dict[str, Any]]:
    return [
        {**d, "before": _shown(d["before"]), "after": _shown(d["after"])}
        for d in diff_documents(before, after)
    ]


def _next_version(top: int | None, current: tuple[int, str] | None) -> str:
    """The rule set in force as the start of a new draft, numbered after the latest."""
    if current is None:
        return ""
    document = json.loads(current[1])
    if isinstance(document, dict):
        document["version"] = (top or 0) + 1
    return json.dumps(document, ensure_ascii=False, indent=2)


def _by_tables(result: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    by: dict[str, list[dict[str, Any]]] = result.get("by", {})
    return by


def rules_pages_router() -> APIRouter:
    router = APIRouter(tags=["HQ console"], include_in_schema=False)

    @router.get("/hq/rules", response_class=HTMLResponse)
    def rules_list(request: Request, user: PageReader) -> HTMLResponse:
        versions = cloud_context(request).ledger.db.read(versions_with_pulls)
        return render(request, "hq_rules.html", user, {"active": "rules", **versions})

    @router.get("/hq/rules/new", response_class=HTMLResponse)
    def rules_new(request: Request, user: PageMarketer) -> HTMLResponse:
        context = cloud_context(request)
        db = context.ledger.db
        current = db.read(lambda c: in_force_document(c, context.now()))
        return render(
            request,
            "hq_rules_edit.html",
            user,
            {
                "active": "rules",
                "draft": None,
                "document": _next_version(db.read(top_version), current),
                "in_force_version": None if current is None else current[0],
                "diff": [],
                "may": {"edit": True, "backtest": False, "approve": False, "publish": False},
                "reasons": _REASONS,
                "test": None,
                "result": None,
            },
        )

    @router.get("/hq/rules/drafts/{draft_id}", response_class=HTMLResponse)
    def rules_draft(request: Request, draft_id: str, user: PageReader) -> HTMLResponse:
        context = cloud_context(request)
        db = context.ledger.db
        draft = db.read(lambda c: draft_row(c, draft_id))
        test = db.read(lambda c: latest_backtest(c, draft_id))
        current = db.read(lambda c: in_force_document(c, context.now()))
        result = None
        if test is not None:
            test_id = str(test["backtest_id"])
            test = db.read(lambda c: backtest_row(c, test_id))
            test["current"] = test["document_hash"] == draft["document_hash"]
            result = test["result"]
        return render(
            request,
            "hq_rules_edit.html",
            user,
            {
                "active": "rules",
                "draft": draft,
                "document": draft["document"],
                "in_force_version": None if current is None else current[0],
                "diff": _diff_rows(None if current is None else current[1], draft["document"]),
                "may": permissions(user, draft, test),
                "reasons": _REASONS,
                "test": test,
                "result": result,
                "by": _by_tables(result or {}),
                "samples": sample_rows(result or {}),
            },
        )

    return router
