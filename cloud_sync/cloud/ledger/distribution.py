"""The plan for a Citus cluster: every ledger table is a reference table or distributed by a
column in a co-location group (docs/scale.md says why each is where it is).

Pure: `check` reads a MetaData against the rules of a distributed PostgreSQL (a key or
unique index of a distributed table holds its distribution column; a foreign key between
distributed tables joins their distribution columns inside one co-location group; no
foreign key from a reference table to a distributed one; every table is placed), and
`statements` writes the SQL that makes a PostgreSQL database with Citus follow the plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import ForeignKeyConstraint, MetaData, Table, UniqueConstraint

__all__ = ["PLAN", "Placement", "check", "statements"]


@dataclass(frozen=True)
class Placement:
    """A reference table (`column` None: copied to every node), or a table distributed by
    `column`, co-located with `group` (the group's first table, distributed by itself)."""

    column: str | None = None
    group: str | None = None

    @property
    def distributed(self) -> bool:
        return self.column is not None


_REFERENCE = Placement()


def _group(anchor: str, column: str, *others: str) -> dict[str, Placement]:
    placed = Placement(column, anchor)
    return {anchor: placed, **dict.fromkeys(others, placed)}


# Growing with members: one member's rows on one shard, so a member's booking is one shard.
_MEMBER = _group(
    "members",
    "member_id",
    "lots",
    "journals",
    "lines",
    "redemptions",
    "member_activity",
    "member_days",
    "checkins",
    "invoice_requests",
    "feedback",
    "member_plate_adds",
)
# Growing with stations' pushes: a station's events, its high-water marks and pulls, and the
# per-station report aggregates a push adds to.
_STATION = _group(
    "events",
    "station_id",
    "events_archived",
    "high_water",
    "station_pulls",
    "agg_sales_day",
    "agg_sales_hour",
    "agg_points_day",
    "agg_points_month",
    "agg_members_day",
)
# Found by their own keys: every event about a sale names the sale (a member may never);
# a plate is looked up by plate; a phone by its blind index (sign-up, one-time codes).
_SALE = _group("sales", "sale_id")
_PLATE = _group("plates", "plate_index")
_PHONE = _group("member_phones", "phone_index", "member_otps")
# An event id is used by one station: the push's one write outside its station's shard.
_EVENT_ID = _group("event_ids", "event_id")

# Small, read everywhere, written rarely (or by HQ): a copy on every node.
_REFERENCES = dict.fromkeys(
    (
        "schema_version",
        "settings",
        "counters",
        "changes",
        "stations",
        "station_keys",
        "station_flags",
        "station_reviews",
        "allowances",
        "adjustments",
        "rulesets",
        "rule_drafts",
        "backtests",
        "hq_users",
        "hq_sessions",
        "hq_audit",
        "agg_active_day",
        "agg_tier_month",
        "tier_moves_archived",
        "rfm_snapshots",
        "member_sessions",
        "member_otp_sends",
        "member_sign_in_failures",
    ),
    _REFERENCE,
)

PLAN: Mapping[str, Placement] = {
    **_REFERENCES,
    **_MEMBER,
    **_STATION,
    **_SALE,
    **_PLATE,
    **_PHONE,
    **_EVENT_ID,
}


def _unique_column_sets(table: Table) -> list[tuple[str, list[str]]]:
    """(what, columns) of the primary key and of every unique constraint and index."""
    found = [("primary key", [c.name for c in table.primary_key.columns])]
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint):
            what = f"unique constraint {constraint.name or ''}".rstrip()
            found.append((what, [c.name for c in constraint.columns]))
    for index in table.indexes:
        if index.unique:
            found.append((f"unique index {index.name}", [c.name for c in index.columns]))
    return [(what, columns) for what, columns in found if columns]


def _table_problems(table: Table, placed: Placement, plan: Mapping[str, Placement]) -> list[str]:
    if not placed.distributed:
        return []
    column = placed.column or ""
    name = table.name
    if column not in table.c:
        return [f"{name}: distributed by {column}, which it does not have"]
    found: list[str] = []
    if table.c[column].nullable:
        found.append(f"{name}: its distribution column {column} may be NULL")
    for what, columns in _unique_column_sets(table):
        if column not in columns:
            found.append(f"{name}: {what} ({', '.join(columns)}) lacks the column {column}")
    anchor = plan.get(placed.group or "")
    if anchor is None or anchor.group != placed.group or not anchor.distributed:
        found.append(f"{name}: co-located with {placed.group}, which is no group's first table")
    return found


def _key_problems(
    table: Table, key: ForeignKeyConstraint, plan: Mapping[str, Placement]
) -> list[str]:
    mine = plan.get(table.name)
    target = key.referred_table
    theirs = plan.get(target.name)
    if mine is None or theirs is None or not theirs.distributed:
        return []  # unplaced tables are reported once; anything may refer to a reference
    where = f"{table.name}: foreign key to {target.name}"
    if not mine.distributed:
        return [f"{where}: a reference table refers to a distributed one"]
    if mine.group != theirs.group:
        return [f"{where}: the tables are not co-located ({mine.group} and {theirs.group})"]
    pairs = {(e.parent.name, e.column.name) for e in key.elements}
    if (mine.column, theirs.column) not in pairs:
        return [f"{where}: does not join {mine.column} to {target.name}.{theirs.column}"]
    return []


def check(metadata: MetaData, plan: Mapping[str, Placement] = PLAN) -> list[str]:
    """Every way the tables of `metadata` break the rules of a distributed PostgreSQL
    under `plan`, each naming its table; empty when Citus takes them as planned."""
    found: list[str] = []
    tables = metadata.tables
    for name in sorted(set(tables) - set(plan)):
        found.append(f"{name}: not in the distribution plan")
    for name in sorted(set(plan) - set(tables)):
        found.append(f"{name}: in the distribution plan, but no such table")
    for name in sorted(set(tables) & set(plan)):
        table = tables[name]
        found += _table_problems(table, plan[name], plan)
        for constraint in sorted(table.foreign_key_constraints, key=lambda k: str(k.name or "")):
            found += _key_problems(table, constraint, plan)
    return found


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def statements(metadata: MetaData, plan: Mapping[str, Placement] = PLAN) -> list[str]:
    """The SQL, one statement per table: reference tables first (a table after those it
    refers to), then each co-location group, its first table first. Deterministic."""
    ordered = [t.name for t in metadata.sorted_tables if t.name in plan]
    out = [
        f"SELECT create_reference_table({_quote(name)});"
        for name in ordered
        if not plan[name].distributed
    ]
    anchors = [name for name in ordered if plan[name].group == name]
    for anchor in sorted(anchors, key=lambda a: (a != "members", ordered.index(a))):
        placed = plan[anchor]
        column = _quote(placed.column or "")
        out.append(
            f"SELECT create_distributed_table({_quote(anchor)}, {column}, colocate_with => 'none');"
        )
        for name in ordered:
            if name != anchor and plan[name].group == anchor:
                column = _quote(plan[name].column or "")
                out.append(
                    f"SELECT create_distributed_table({_quote(name)}, {column}, "
                    f"colocate_with => {_quote(anchor)});"
                )
    return out
