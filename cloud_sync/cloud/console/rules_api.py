"""/api/v1/hq/rules/…: rule-set drafts, their backtests, approval and publishing.

The console's rule pages call exactly these routes, so a script can do what a person does.
Drafting and backtests need the marketer role, approving and publishing the admin role
(never one's own draft), reading any HQ role. A backtest runs in a thread of the server,
one at a time per draft; its progress and result are read back from the ledger.
"""

from __future__ import annotations

import logging
import threading
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from cloud_sync.cloud.ledger.backtest import backtest_row, run_backtest, start_backtest
from cloud_sync.cloud.ledger.drafts import (
    MAX_DOCUMENT_BYTES,
    approve_draft,
    diff_documents,
    draft_row,
    in_force_document,
    latest_backtest,
    pull_status,
    save_draft,
    validate_document,
    versions_with_pulls,
)
from cloud_sync.cloud.server.context import cloud_context
from cloud_sync.cloud.server.errors import error_responses
from cloud_sync.cloud.server.rules import publish_draft

from .auth import Admin, HqUser, Marketer, Reader
from .export import Column, ExportFormat, download
from .rules_window import export_rows, window_from_body

__all__ = ["rules_api_router"]

log = logging.getLogger(__name__)

# A document is at most 256 KiB of UTF-8; 4 bytes per character at worst.
_MAX_CHARS = MAX_DOCUMENT_BYTES
_TABLES = ("grade", "station", "tier", "weekday", "hour", "day")


class DocumentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    document: str = Field(max_length=_MAX_CHARS, description="The rule set's JSON text.")


class BacktestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    days: int | None = Field(default=None, ge=1, le=366, description="The last N days.")
    window_from: str | None = Field(default=None, alias="from", max_length=40)
    window_to: str | None = Field(default=None, alias="to", max_length=40)
    station_id: str | None = Field(default=None, min_length=1, max_length=32)


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    document_hash: str | None = Field(
        default=None, max_length=64, description="The text the approver looked at."
    )


def permissions(user: HqUser, draft: dict[str, Any], test: dict[str, Any] | None) -> dict[str, Any]:
    """What this user may do with the draft now, and why not (shown beside the buttons)."""
    current_test = (
        test is not None
        and test["status"] == "done"
        and test["document_hash"] == draft["document_hash"]
    )
    approve_why = None
    publish_why = None
    if draft["status"] == "published":
        approve_why = publish_why = "published"
    elif not user.may("admin"):
        approve_why = publish_why = "admin_only"
    else:
        if draft["drafted_by"] == user.name:
            approve_why = "own_draft"
        elif not current_test:
            approve_why = "backtest_stale" if test is not None else "backtest_missing"
        if draft["status"] != "approved" or draft["approved_hash"] != draft["document_hash"]:
            publish_why = "not_approved"
        elif not current_test:
            publish_why = "backtest_stale"
    return {
        "edit": user.may("marketer") and draft["status"] != "published",
        "backtest": user.may("marketer") and draft["status"] != "published",
        "approve": approve_why is None,
        "approve_reason": approve_why,
        "publish": publish_why is None,
        "publish_reason": publish_why,
    }


def _draft_view(request: Request, user: HqUser, draft_id: str) -> dict[str, Any]:
    db = cloud_context(request).ledger.db
    draft = db.read(lambda c: draft_row(c, draft_id))
    test = db.read(lambda c: latest_backtest(c, draft_id))
    if test is not None:
        test = {k: v for k, v in test.items() if k != "result"}
        test["current"] = test["document_hash"] == draft["document_hash"]
    return {**draft, "backtest": test, "may": permissions(user, draft, test)}


def _one_at_a_time(request: Request) -> threading.Lock:
    """Backtests take a core each: this process runs them one after another (the ledger
    refuses more than `MAX_RUNNING` waiting at once)."""
    lock = getattr(request.app.state, "backtest_lock", None)
    if lock is None:
        lock = request.app.state.backtest_lock = threading.Lock()
    assert isinstance(lock, type(threading.Lock()))
    return lock


def _run_in_background(request: Request, backtest_id: str) -> None:
    context = cloud_context(request)
    lock = _one_at_a_time(request)

    def work() -> None:
        try:
            with lock:
                run_backtest(context.ledger.db, context.ledger.rules, backtest_id, context.now)
        except Exception:  # stored with its reason by run_backtest
            log.exception("backtest %s failed", backtest_id)

    threading.Thread(target=work, name=f"backtest-{backtest_id}", daemon=True).start()


def rules_api_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1/hq/rules", tags=["HQ console"])

    @router.get("", responses=error_responses())
    def versions(request: Request, user: Reader) -> dict[str, Any]:
        """Published versions (who drafted, approved, published; stations pulled or not)
        and the drafts not published yet."""
        return cloud_context(request).ledger.db.read(versions_with_pulls)

    @router.get("/pulls", responses=error_responses())
    def pulls(request: Request, user: Reader) -> dict[str, Any]:
        """Per published version: the stations that pulled it and those not yet."""
        found = cloud_context(request).ledger.db.read(pull_status)
        return {str(version): status for version, status in found.items()}

    @router.post("/validate", responses=error_responses(body=True))
    def validate(request: Request, body: DocumentBody, user: Marketer) -> dict[str, Any]:
        """Every fault of a document with its JSON path (the editor asks as one types)."""
        db = cloud_context(request).ledger.db
        parsed, faults = db.read(lambda c: validate_document(c, body.document))
        return {
            "ok": parsed is not None,
            "faults": [{"path": f.path, "message": f.message} for f in faults],
        }

    @router.post("/drafts", status_code=201, responses=error_responses("rules.invalid", body=True))
    def create(request: Request, body: DocumentBody, user: Marketer) -> dict[str, Any]:
        """Store a new draft (validated); answers it with its id and hash."""
        context = cloud_context(request)
        row = context.ledger.db.transact(
            lambda c: save_draft(c, document=body.document, by=user.name, now=context.now())
        )
        return _draft_view(request, user, row["draft_id"])

    @router.get("/drafts/{draft_id}", responses=error_responses("rules.draft_unknown"))
    def show(request: Request, draft_id: str, user: Reader) -> dict[str, Any]:
        """A draft, its latest backtest's state and what the caller may do with it."""
        return _draft_view(request, user, draft_id)

    @router.put(
        "/drafts/{draft_id}",
        responses=error_responses(
            "rules.invalid", "rules.draft_unknown", "rules.draft_published", body=True
        ),
    )
    def edit(request: Request, draft_id: str, body: DocumentBody, user: Marketer) -> dict[str, Any]:
        """Replace a draft's document; its approval (and backtest) no longer count."""
        context = cloud_context(request)
        context.ledger.db.transact(
            lambda c: save_draft(
                c, document=body.document, by=user.name, now=context.now(), draft_id=draft_id
            )
        )
        return _draft_view(request, user, draft_id)

    @router.get("/drafts/{draft_id}/diff", responses=error_responses("rules.draft_unknown"))
    def diff(request: Request, draft_id: str, user: Reader) -> dict[str, Any]:
        """Each JSON path where the draft differs from the rule set in force now."""
        context = cloud_context(request)
        db = context.ledger.db
        draft = db.read(lambda c: draft_row(c, draft_id))
        current = db.read(lambda c: in_force_document(c, context.now()))
        return {
            "in_force_version": None if current is None else current[0],
            "changes": diff_documents(None if current is None else current[1], draft["document"]),
        }

    _backtest_routes(router)
    _decision_routes(router)
    return router


def _backtest_routes(router: APIRouter) -> None:
    @router.post(
        "/drafts/{draft_id}/backtests",
        status_code=202,
        responses=error_responses(
            "rules.draft_unknown", "backtest.running", "backtest.window", body=True
        ),
    )
    def backtest(
        request: Request, draft_id: str, body: BacktestBody, user: Marketer
    ) -> dict[str, Any]:
        """Start the draft's backtest over a window (default: the last 30 days)."""
        context = cloud_context(request)
        db = context.ledger.db
        draft = db.read(lambda c: draft_row(c, draft_id))
        now = context.now()
        lo, hi = window_from_body(body.days, body.window_from, body.window_to, draft, now)
        backtest_id = db.transact(
            lambda c: start_backtest(
                c,
                draft_id=draft_id,
                window_from=lo,
                window_to=hi,
                station_id=body.station_id,
                by=user.name,
                now=now,
            )
        )
        _run_in_background(request, backtest_id)
        return {"backtest_id": backtest_id, "status": "running"}

    @router.get("/backtests/{backtest_id}", responses=error_responses("backtest.unknown"))
    def backtest_status(request: Request, backtest_id: str, user: Reader) -> dict[str, Any]:
        """Progress (done_sales of total_sales), then the result, or the failure's reason."""
        return cloud_context(request).ledger.db.read(lambda c: backtest_row(c, backtest_id))

    @router.get("/backtests/{backtest_id}/export", responses=error_responses("backtest.unknown"))
    def backtest_export(
        request: Request,
        backtest_id: str,
        user: Reader,
        table: Annotated[
            Literal["grade", "station", "tier", "weekday", "hour", "day", "samples", "members"],
            Query(description="Which table of the result."),
        ] = "grade",
        format: Annotated[ExportFormat, Query()] = "csv",
    ) -> Any:
        """A table of the result as CSV (UTF-8 BOM) or XLSX."""
        row = cloud_context(request).ledger.db.read(lambda c: backtest_row(c, backtest_id))
        columns, rows = export_rows(row["result"] or {}, table)
        return download(
            format, [Column(k, h) for k, h in columns], rows, filename=f"backtest-{table}"
        )


def _decision_routes(router: APIRouter) -> None:
    @router.post(
        "/drafts/{draft_id}/approve",
        responses=error_responses(
            "rules.self_approval",
            "rules.draft_unknown",
            "rules.draft_published",
            "rules.draft_changed",
            "rules.backtest_needed",
            body=True,
        ),
    )
    def approve(request: Request, draft_id: str, body: ApproveBody, user: Admin) -> dict[str, Any]:
        """Approve the draft's current text (never one's own draft)."""
        context = cloud_context(request)
        context.ledger.db.transact(
            lambda c: approve_draft(
                c,
                draft_id=draft_id,
                by=user.name,
                now=context.now(),
                expected_hash=body.document_hash,
            )
        )
        return _draft_view(request, user, draft_id)

    @router.post(
        "/drafts/{draft_id}/publish",
        responses=error_responses(
            "rules.draft_unknown",
            "rules.draft_published",
            "rules.not_approved",
            "rules.backtest_needed",
            "rules.draft_changed",
            "rules.version_taken",
        ),
    )
    def publish(request: Request, draft_id: str, user: Admin) -> dict[str, Any]:
        """Sign the approved draft with the cloud's key and publish it to every station."""
        context = cloud_context(request)
        publish_draft(context.ledger, context.signing_key, draft_id, user.name, context.now())
        return _draft_view(request, user, draft_id)
