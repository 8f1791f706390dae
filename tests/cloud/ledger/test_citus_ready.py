"""The ledger's schema is ready for Citus (docs/scale.md): the real metadata keeps the rules
of a distributed PostgreSQL under the shipped plan, a table that breaks one fails the check
by name, and `cloud db distribute` prints the plan and refuses a database without Citus."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

import pytest
from sqlalchemy import Column, ForeignKey, MetaData, Table, Text
from typer.testing import CliRunner

from cloud_sync.cloud.cli import cloud_app
from cloud_sync.cloud.ledger import schema_app as _app  # noqa: F401 - registers its tables
from cloud_sync.cloud.ledger.distribution import PLAN, Placement, check, statements
from cloud_sync.cloud.ledger.schema import metadata


def test_the_ledgers_tables_keep_the_citus_rules_under_the_plan() -> None:
    assert check(metadata) == []
    # The growing tables the cluster refused before schema 5 are distributed now.
    growing = ("members", "redemptions", "journals", "lots", "sales", "plates", "lines", "events")
    assert all(PLAN[name].distributed for name in growing)
    # A push's one write outside its station's shard: who used each event id.
    assert PLAN["event_ids"] == Placement("event_id", "event_ids")


def _members(meta: MetaData) -> Table:
    return Table("members", meta, Column("member_id", Text, primary_key=True))


def _plan(**placements: Placement) -> dict[str, Placement]:
    return {"members": Placement("member_id", "members"), **placements}


def _key_without_the_column(meta: MetaData) -> dict[str, Placement]:
    _members(meta)
    Table("lots", meta, Column("lot_id", Text, primary_key=True), Column("member_id", Text))
    return _plan(lots=Placement("member_id", "members"))


def _unique_without_the_column(meta: MetaData) -> dict[str, Placement]:
    _members(meta)
    Table(
        "cards",
        meta,
        Column("member_id", Text, primary_key=True),
        Column("card_no", Text, nullable=False, unique=True),
    )
    return _plan(cards=Placement("member_id", "members"))


def _reference_refers_to_distributed(meta: MetaData) -> dict[str, Placement]:
    _members(meta)
    Table(
        "stations",
        meta,
        Column("station_id", Text, primary_key=True),
        Column("manager", Text, ForeignKey("members.member_id")),
    )
    return _plan(stations=Placement())


def _not_colocated(meta: MetaData) -> dict[str, Placement]:
    _members(meta)
    Table(
        "sales",
        meta,
        Column("sale_id", Text, nullable=False),
        Column("member_id", Text, ForeignKey("members.member_id"), nullable=False),
    )
    return _plan(sales=Placement("sale_id", "sales"))


def _key_misses_the_column(meta: MetaData) -> dict[str, Placement]:
    _members(meta)
    Table(
        "journals",
        meta,
        Column("journal_id", Text, primary_key=True),
        Column("member_id", Text, primary_key=True),
    )
    Table(
        "lines",
        meta,
        Column("line_id", Text, primary_key=True),
        Column("member_id", Text, primary_key=True),
        Column("journal_id", Text, ForeignKey("journals.journal_id"), nullable=False),
    )
    return _plan(
        journals=Placement("member_id", "members"), lines=Placement("member_id", "members")
    )


def _missing_from_the_plan(meta: MetaData) -> dict[str, Placement]:
    _members(meta)
    Table("coupons", meta, Column("coupon_id", Text, primary_key=True))
    return _plan()


def _nullable_column(meta: MetaData) -> dict[str, Placement]:
    _members(meta)
    Table(
        "visits",
        meta,
        Column("visit_id", Text, nullable=False),
        Column("member_id", Text),
    )
    return _plan(visits=Placement("member_id", "members"))


@pytest.mark.parametrize(
    ("build", "table", "says"),
    [
        (_key_without_the_column, "lots", "primary key (lot_id) lacks the column member_id"),
        (_unique_without_the_column, "cards", "lacks the column member_id"),
        (_reference_refers_to_distributed, "stations", "a reference table refers to"),
        (_not_colocated, "sales", "not co-located"),
        (_key_misses_the_column, "lines", "does not join member_id"),
        (_missing_from_the_plan, "coupons", "not in the distribution plan"),
        (_nullable_column, "visits", "may be NULL"),
    ],
)
def test_a_table_that_breaks_a_rule_fails_the_check_by_name(
    build: Callable[[MetaData], dict[str, Placement]], table: str, says: str
) -> None:
    meta = MetaData()
    plan = build(meta)
    found = check(meta, plan)
    assert any(p.startswith(f"{table}:") and says in p for p in found), found


def test_the_printed_plan_places_every_table_once_in_order() -> None:
    result = CliRunner().invoke(cloud_app, ["db", "distribute", "--print"])
    assert result.exit_code == 0, result.output
    again = CliRunner().invoke(cloud_app, ["db", "distribute", "--print"])
    assert again.output == result.output  # deterministic
    sql = [line for line in result.output.splitlines() if not line.startswith("--")]
    call = re.compile(
        r"^SELECT (create_reference_table\('(\w+)'\)|"
        r"create_distributed_table\('(\w+)', '(\w+)', colocate_with => '(\w+)'\));$"
    )
    matches = [call.match(line) for line in sql]
    assert all(matches), [line for line, m in zip(sql, matches, strict=True) if m is None]
    named = [m.group(2) or m.group(3) for m in matches if m is not None]
    assert Counter(named) == Counter(list(metadata.tables))  # every table, exactly once
    seen: set[str] = set()
    for m, name in zip(matches, named, strict=True):
        assert m is not None
        table = metadata.tables[name]
        # A table comes after every table it refers to, and after its group's first table.
        assert {k.referred_table.name for k in table.foreign_key_constraints} - {name} <= seen
        if m.group(3):
            assert m.group(4) == PLAN[name].column
            assert m.group(5) == "none" or m.group(5) in seen
        seen.add(name)
    assert sql == statements(metadata)


def test_apply_refuses_a_database_without_citus(cloud_db_url: str) -> None:
    result = CliRunner().invoke(
        cloud_app, ["db", "distribute", "--apply", "--database-url", cloud_db_url]
    )
    assert result.exit_code == 2
    expected = "no citus extension" if cloud_db_url.startswith("postgresql") else "on SQLite"
    assert expected in result.output
    assert len(result.output.strip().splitlines()) == 1
