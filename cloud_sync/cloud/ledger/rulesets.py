"""Publishing rule sets, and finding the one a sale was priced under.

A published version never changes (same version, other text: refused), so parsed rule
sets are cached per version for the life of the process.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from cloud_sync.core.ruleset import RuleSet, RuleSetError, ruleset_in_force
from cloud_sync.core.ruleset.parser import parse_ruleset_json

from .errors import LedgerError
from .schema import rulesets

__all__ = ["RuleBook", "RuleLookup", "list_rulesets", "publish"]


class RuleBook:
    """Parsed rule sets by version, shared by every transaction of one ledger."""

    def __init__(self) -> None:
        self._parsed: dict[int, RuleSet] = {}
        self._lock = threading.Lock()

    def get(self, conn: Connection, version: int) -> RuleSet | None:
        with self._lock:
            cached = self._parsed.get(version)
        if cached is not None:
            return cached
        document = conn.execute(
            select(rulesets.c.document).where(rulesets.c.version == version)
        ).scalar_one_or_none()
        if document is None:
            return None
        parsed = parse_ruleset_json(document)
        with self._lock:
            self._parsed[version] = parsed
        return parsed

    def all(self, conn: Connection) -> list[RuleSet]:
        versions = conn.execute(select(rulesets.c.version)).scalars().all()
        found = (self.get(conn, v) for v in versions)
        return [r for r in found if r is not None]


class RuleLookup:
    """One transaction's questions about rule sets, each asked of the database once."""

    def __init__(self, book: RuleBook, conn: Connection) -> None:
        self._book = book
        self._conn = conn
        self._versions: dict[int, RuleSet | None] = {}
        self._all: list[RuleSet] | None = None

    def version(self, version: int) -> RuleSet | None:
        if version not in self._versions:
            self._versions[version] = self._book.get(self._conn, version)
        return self._versions[version]

    def in_force(self, at: datetime) -> RuleSet | None:
        if self._all is None:
            self._all = self._book.all(self._conn)
        return ruleset_in_force(self._all, at)


def publish(
    conn: Connection, document: str, signature: str, signing_key_id: str, now: datetime
) -> tuple[int, bool]:
    """Store a signed document; (version, True) when it is new, (version, False) when the
    same text was published before."""
    try:
        parsed = parse_ruleset_json(document)
    except RuleSetError as exc:
        raise LedgerError("rules.invalid", str(exc)) from exc
    if not signature or not signing_key_id:
        raise LedgerError("rules.unsigned", "a rule set is published with its signature")
    stored = conn.execute(
        select(rulesets.c.document).where(rulesets.c.version == parsed.version)
    ).scalar_one_or_none()
    if stored is not None:
        if stored == document:
            return parsed.version, False
        raise LedgerError(
            "rules.version_taken",
            f"rule set version {parsed.version} is already published with other content; "
            "publish the change as a new version",
        )
    conn.execute(
        insert(rulesets).values(
            version=parsed.version,
            name=parsed.name,
            effective_from=parsed.effective_from.isoformat(),
            document=document,
            signature=signature,
            signing_key_id=signing_key_id,
            published_at=now.isoformat(),
        )
    )
    return parsed.version, True


def list_rulesets(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(rulesets).order_by(rulesets.c.version))
    return [
        {
            "version": row.version,
            "name": row.name,
            "effective_from": row.effective_from,
            "published_at": row.published_at,
            "signing_key_id": row.signing_key_id,
            "signature": row.signature,
            "document": row.document,
        }
        for row in rows
    ]
