"""Rule-set drafts: HQ's unpublished rule sets and their maker-checker way to the stations.

A draft is validated by the same parser the stations use, stored with the sha256 of its
exact text, approved by an admin who did not draft it (the approval names the hash it
approved), and published through the ledger's own publish path, with the change feed row
the stations pull. An edit after an approval or a backtest makes them stale: the approval
and the backtest name the hash they judged. Every change is audited in its own transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, func, insert, select, update

from cloud_sync.core.ruleset import Fault, RuleSet, RuleSetError, ruleset_in_force
from cloud_sync.core.ruleset.parser import parse_ruleset_json

from .audit import record_audit
from .changes import append_changes
from .database import Database
from .errors import LedgerError
from .rulesets import publish as publish_document
from .schema import backtests, changes, rule_drafts, rulesets, station_pulls, stations

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "MAX_NAME_CHARS",
    "approve_draft",
    "diff_documents",
    "document_hash",
    "draft_row",
    "latest_backtest",
    "list_versions",
    "publish_draft",
    "pull_status",
    "save_draft",
    "top_version",
    "validate_document",
    "versions_with_pulls",
]

MAX_NAME_CHARS = 80
MAX_DOCUMENT_BYTES = 256 * 1024
_MAX_ACTOR_CHARS = 64


def document_hash(document: str) -> str:
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


def validate_document(conn: Connection | None, document: str) -> tuple[RuleSet | None, list[Fault]]:
    """The parsed rule set, or every fault with its JSON path; a version already published
    (when a connection is given) is a fault too: publishing it would be refused."""
    if len(document.encode("utf-8")) > MAX_DOCUMENT_BYTES:
        return None, [Fault("$", f"the document is over {MAX_DOCUMENT_BYTES // 1024} KiB")]
    try:
        parsed = parse_ruleset_json(document)
    except RuleSetError as exc:
        return None, list(exc.faults)
    faults: list[Fault] = []
    if len(parsed.name) > MAX_NAME_CHARS:
        faults.append(Fault("$.name", f"is longer than {MAX_NAME_CHARS} characters"))
    if conn is not None:
        top = conn.execute(select(func.max(rulesets.c.version))).scalar_one_or_none()
        if top is not None and parsed.version <= int(top):
            faults.append(
                Fault(
                    "$.version",
                    f"version {parsed.version} is not above the latest published ({top}); "
                    f"use {int(top) + 1}",
                )
            )
    return (None if faults else parsed), faults


def _actor(name: str) -> str:
    actor = name.strip()
    if not actor or len(actor) > _MAX_ACTOR_CHARS:
        raise LedgerError("rules.actor", f"a name is 1 to {_MAX_ACTOR_CHARS} characters")
    return actor


def _faults_text(faults: list[Fault]) -> str:
    return "; ".join(str(f) for f in faults)


def draft_row(conn: Connection, draft_id: str) -> dict[str, Any]:
    row = conn.execute(select(rule_drafts).where(rule_drafts.c.draft_id == draft_id)).first()
    if row is None:
        raise LedgerError("rules.draft_unknown", f"no draft {draft_id!r}")
    return dict(row._mapping)


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in ("draft_id", "name", "status", "document_hash", "approved_hash")}


def save_draft(
    conn: Connection, *, document: str, by: str, now: datetime, draft_id: str | None = None
) -> dict[str, Any]:
    """Create a draft (draft_id None) or replace a draft's document; an edit drops its
    approval. Raises LedgerError rules.invalid with every fault's path."""
    actor = _actor(by)
    parsed, faults = validate_document(conn, document)
    if parsed is None:
        raise LedgerError("rules.invalid", _faults_text(faults))
    digest = document_hash(document)
    at = now.isoformat()
    if draft_id is None:
        draft_id = "d" + secrets.token_hex(6)
        row = {
            "draft_id": draft_id,
            "name": parsed.name,
            "document": document,
            "document_hash": digest,
            "status": "draft",
            "drafted_by": actor,
            "drafted_at": at,
            "updated_at": at,
        }
        conn.execute(insert(rule_drafts).values(row))
        record_audit(
            conn, actor=actor, action="rules.draft", target=draft_id, at=now, after=_summary(row)
        )
        return draft_row(conn, draft_id)
    before = _unpublished(conn, draft_id)
    edit: dict[str, Any] = {
        "name": parsed.name,
        "document": document,
        "document_hash": digest,
        "status": "draft",
        "updated_at": at,
        "approved_by": None,
        "approved_at": None,
        "approved_hash": None,
    }
    if before["document_hash"] == digest:
        edit = {}  # the same text again: audited, the approval kept
    return _changed(conn, before, actor=actor, action="rules.draft_edit", now=now, **edit)


def _unpublished(conn: Connection, draft_id: str) -> dict[str, Any]:
    """The draft's row; refused once it is published (a published draft never changes)."""
    draft = draft_row(conn, draft_id)
    if draft["status"] == "published":
        raise LedgerError("rules.draft_published", f"draft {draft_id} is published already")
    return draft


def _changed(
    conn: Connection,
    before: dict[str, Any],
    *,
    actor: str,
    action: str,
    now: datetime,
    noted: dict[str, Any] | None = None,
    **values: Any,
) -> dict[str, Any]:
    """Write `values` into the draft's row (if any) and audit before/after, `noted` added to
    the after, in the caller's transaction; the row as it is now."""
    draft_id = before["draft_id"]
    if values:
        conn.execute(update(rule_drafts).where(rule_drafts.c.draft_id == draft_id).values(values))
    after = draft_row(conn, draft_id)
    record_audit(
        conn,
        actor=actor,
        action=action,
        target=draft_id,
        at=now,
        before=_summary(before),
        after={**_summary(after), **(noted or {})},
    )
    return after


def latest_backtest(conn: Connection, draft_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(backtests)
        .where(backtests.c.draft_id == draft_id)
        .order_by(backtests.c.started_at.desc(), backtests.c.backtest_id.desc())
        .limit(1)
    ).first()
    return None if row is None else dict(row._mapping)


def _current_backtest(conn: Connection, draft: dict[str, Any]) -> bool:
    found = conn.execute(
        select(backtests.c.backtest_id).where(
            backtests.c.draft_id == draft["draft_id"],
            backtests.c.document_hash == draft["document_hash"],
            backtests.c.status == "done",
        )
    ).first()
    return found is not None


def approve_draft(
    conn: Connection, *, draft_id: str, by: str, now: datetime, expected_hash: str | None = None
) -> dict[str, Any]:
    """Maker-checker: the approver is never the drafter; the approval names the hash."""
    actor = _actor(by)
    draft = _unpublished(conn, draft_id)
    if draft["drafted_by"] == actor:
        raise LedgerError("rules.self_approval", "you drafted this: another admin approves it")
    if expected_hash is not None and expected_hash != draft["document_hash"]:
        raise LedgerError("rules.draft_changed", "the draft changed since you looked at it")
    if not _current_backtest(conn, draft):
        raise LedgerError(
            "rules.backtest_needed", "run a backtest of this version of the draft first"
        )
    return _changed(
        conn,
        draft,
        actor=actor,
        action="rules.approve",
        now=now,
        status="approved",
        approved_by=actor,
        approved_at=now.isoformat(),
        approved_hash=draft["document_hash"],
    )


def publish_draft(
    db: Database,
    conn: Connection,
    *,
    draft_id: str,
    by: str,
    signature: str,
    signing_key_id: str,
    signed_hash: str,
    now: datetime,
) -> dict[str, Any]:
    """Publish an approved draft whose approval and backtest name its current text; the
    caller signed the text whose hash is `signed_hash` with the cloud's key."""
    actor = _actor(by)
    draft = draft_row(conn, draft_id)
    if draft["document_hash"] != signed_hash:
        raise LedgerError("rules.draft_changed", "the draft changed while it was being signed")
    if draft["status"] == "published":
        raise LedgerError("rules.draft_published", f"draft {draft_id} is published already")
    if draft["status"] != "approved" or draft["approved_hash"] != draft["document_hash"]:
        raise LedgerError("rules.not_approved", "the draft needs an approval of its current text")
    if not _current_backtest(conn, draft):
        raise LedgerError(
            "rules.backtest_needed", "the draft changed after its backtest: run a new backtest"
        )
    version, created = publish_document(conn, draft["document"], signature, signing_key_id, now)
    if created:
        append_changes(db, conn, [("ruleset", str(version))], now)
    return _changed(
        conn,
        draft,
        actor=actor,
        action="rules.publish",
        now=now,
        noted={"version": version},
        status="published",
        published_version=version,
        published_by=actor,
        published_at=now.isoformat(),
    )


def list_versions(conn: Connection) -> dict[str, Any]:
    """Published rule sets (newest first) with who drafted/approved/published them, and the
    drafts not published yet."""
    by_version = {
        int(row.published_version): dict(row._mapping)
        for row in conn.execute(
            select(rule_drafts).where(rule_drafts.c.published_version.is_not(None))
        )
    }
    published = []
    for row in conn.execute(
        select(
            rulesets.c.version,
            rulesets.c.name,
            rulesets.c.effective_from,
            rulesets.c.published_at,
        ).order_by(rulesets.c.version.desc())
    ):
        draft = by_version.get(int(row.version), {})
        published.append(
            {
                "version": int(row.version),
                "name": row.name,
                "effective_from": row.effective_from,
                "published_at": row.published_at,
                "draft_id": draft.get("draft_id"),
                "drafted_by": draft.get("drafted_by"),
                "approved_by": draft.get("approved_by"),
                "approved_at": draft.get("approved_at"),
                "published_by": draft.get("published_by"),
            }
        )
    drafts = []
    for row in conn.execute(
        select(rule_drafts)
        .where(rule_drafts.c.status != "published")
        .order_by(rule_drafts.c.updated_at.desc())
    ):
        item = {k: v for k, v in row._mapping.items() if k != "document"}
        test = latest_backtest(conn, row.draft_id)
        item["backtest"] = None if test is None else _backtest_brief(test, row.document_hash)
        drafts.append(item)
    return {"published": published, "drafts": drafts}


def _backtest_brief(test: dict[str, Any], current_hash: str) -> dict[str, Any]:
    return {
        "backtest_id": test["backtest_id"],
        "status": test["status"],
        "done_sales": test["done_sales"],
        "total_sales": test["total_sales"],
        "current": test["document_hash"] == current_hash,
        "started_at": test["started_at"],
        "finished_at": test["finished_at"],
        "error": test["error"],
    }


def _walk(path: str, before: Any, after: Any, out: list[dict[str, Any]]) -> None:
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after), key=str):
            _walk(f"{path}.{key}", before.get(key, _MISSING), after.get(key, _MISSING), out)
    elif isinstance(before, list) and isinstance(after, list):
        for index in range(max(len(before), len(after))):
            _walk(
                f"{path}[{index}]",
                before[index] if index < len(before) else _MISSING,
                after[index] if index < len(after) else _MISSING,
                out,
            )
    elif before != after or type(before) is not type(after):
        out.append(
            {
                "path": path,
                "before": None if before is _MISSING else before,
                "after": None if after is _MISSING else after,
                "change": "added"
                if before is _MISSING
                else "removed"
                if after is _MISSING
                else "changed",
            }
        )


_MISSING: Any = object()


def diff_documents(before: str | None, after: str) -> list[dict[str, Any]]:
    """A structural diff: each JSON path whose value differs, with both values."""
    out: list[dict[str, Any]] = []
    _walk("$", orjson.loads(before) if before else {}, orjson.loads(after), out)
    return out


def in_force_document(conn: Connection, now: datetime) -> tuple[int, str] | None:
    """The published rule set in force at `now` (latest effective_from not after it)."""
    docs = {int(r.version): r.document for r in conn.execute(select(rulesets))}
    parsed = [parse_ruleset_json(d) for d in docs.values()]
    found = ruleset_in_force(parsed, now)
    return None if found is None else (found.version, docs[found.version])


def top_version(conn: Connection) -> int | None:
    top = conn.execute(select(func.max(rulesets.c.version))).scalar_one_or_none()
    return None if top is None else int(top)


def pull_status(conn: Connection) -> dict[int, dict[str, list[str]]]:
    """Per published version: the enrolled stations whose cursor reached its change row
    ("pulled") and the others ("waiting")."""
    cursors = {r.station_id: int(r.cursor) for r in conn.execute(select(station_pulls))}
    enrolled = [
        r.station_id
        for r in conn.execute(select(stations.c.station_id).order_by(stations.c.station_id))
    ]
    carried = {
        int(r.ref): int(r.id)
        for r in conn.execute(
            select(changes.c.ref, changes.c.id).where(changes.c.kind == "ruleset")
        )
    }
    out: dict[int, dict[str, list[str]]] = {}
    for version, change_id in carried.items():
        pulled = [s for s in enrolled if cursors.get(s, -1) >= change_id]
        out[version] = {"pulled": pulled, "waiting": [s for s in enrolled if s not in pulled]}
    return out


def versions_with_pulls(conn: Connection) -> dict[str, Any]:
    """`list_versions`, each published version with the stations that pulled it or not
    (the rules screen and its API show the same)."""
    found = list_versions(conn)
    pulls = pull_status(conn)
    for row in found["published"]:
        row["pulls"] = pulls.get(row["version"], {"pulled": [], "waiting": []})
    return found
