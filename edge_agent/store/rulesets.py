"""Installed rule-set documents, keyed by version."""

from __future__ import annotations

from dataclasses import dataclass

from .database import Tx

__all__ = ["RuleSetRow", "all_rulesets", "get_ruleset", "insert_ruleset", "rulesets_generation"]


@dataclass(frozen=True)
class RuleSetRow:
    version: int
    name: str
    effective_from: str
    document: str
    signature: str | None
    source: str
    installed_at: str


_COLUMNS = "version, name, effective_from, document, signature, source, installed_at"


def insert_ruleset(tx: Tx, row: RuleSetRow) -> None:
    tx.execute(
        f"INSERT INTO rulesets ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
        [
            row.version,
            row.name,
            row.effective_from,
            row.document,
            row.signature,
            row.source,
            row.installed_at,
        ],
    )


def get_ruleset(tx: Tx, version: int) -> RuleSetRow | None:
    sql = f"SELECT {_COLUMNS} FROM rulesets WHERE version = ?"  # noqa: S608
    row = tx.execute(sql, [version]).fetchone()
    return None if row is None else RuleSetRow(*row)


def all_rulesets(tx: Tx) -> list[RuleSetRow]:
    sql = f"SELECT {_COLUMNS} FROM rulesets ORDER BY version"  # noqa: S608
    return [RuleSetRow(*row) for row in tx.execute(sql).fetchall()]


def rulesets_generation(tx: Tx) -> tuple[int, int]:
    """Changes whenever a rule set is installed: lets callers cache parsed rule sets."""
    row = tx.execute("SELECT count(*), coalesce(max(version), 0) FROM rulesets").fetchone()
    return int(row[0]), int(row[1])
