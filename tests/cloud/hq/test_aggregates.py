"""The report aggregates: kept at every flush, equal to what the ledger says, and the
liability roll-forward balancing to the point (hq-console.md, "Definitions")."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, delete, insert, select, update

from cloud_sync.cloud.ledger import CloudLedger, aggregates, aggregates_ledger
from cloud_sync.cloud.ledger import reports_hq as rh
from cloud_sync.cloud.ledger.aggregates import BALANCE_SIGN
from cloud_sync.cloud.ledger.database import Database
from cloud_sync.cloud.ledger.schema import (
    agg_active_day,
    agg_sales_day,
    member_days,
    members,
    schema_version,
)
from cloud_sync.core.privacy import MemberKeys

from .seed_chain import NOW, seed_chain


def _snapshot(ledger: CloudLedger) -> dict[str, Any]:
    return ledger.db.read(aggregates_ledger.stored)


def balanced(rows: list[dict[str, Any]]) -> None:
    """Every row's closing follows from its movements; each month opens at the last close."""
    last: dict[str, int] = {}
    for row in rows:
        expect = (
            row["opening"]
            + row["issued"]
            + row["variance"]
            - row["redeemed"]
            - row["expired"]
            + row["adjustments"]
            - row["written_off"]
            + row["other"]
        )
        assert row["closing"] == expect, row
        assert row["opening"] == last.get(row["station_id"], row["opening"]), row
        last[row["station_id"]] = row["closing"]


def active_balances(ledger: CloudLedger, now: Any) -> int:
    """The sum of every active member's spendable points, as the member view reports it."""
    ids = ledger.db.read(
        lambda conn: list(
            conn.execute(select(members.c.member_id).where(members.c.status == "active")).scalars()
        )
    )
    total = 0
    for member_id in ids:
        view = ledger.member(member_id, now)
        assert view is not None
        total += int(view["points"])
    return total


def test_seeded_chain_balances_and_matches_the_ledger(
    ledger: CloudLedger, chain_keys: MemberKeys
) -> None:
    seeded = seed_chain(ledger, chain_keys)

    def read(conn: Connection) -> dict[str, Any]:
        return {
            "problems": aggregates_ledger.check(conn),
            "balances": aggregates_ledger.ledger_outstanding(conn),
            "rows": rh.liability(conn, "2025-01", "2026-03"),
            "outstanding": rh.outstanding(conn, NOW),
            "sales": rh.kpis(conn, rh.Period(NOW.date() - timedelta(days=400), NOW.date()), None),
        }

    got = ledger.db.read(read)
    assert got["problems"] == []
    assert len(set(got["balances"].values())) == 1
    balanced(got["rows"])
    chain_rows = [r for r in got["rows"] if r["station_id"] == "*"]
    assert chain_rows[-1]["closing"] == got["balances"]["member_accounts"]
    assert got["outstanding"]["points"] == active_balances(ledger, NOW)
    # 100 points per yuan in the sample rules: ¥1.89 for 189 points.
    assert got["outstanding"]["yuan_fen"] == got["outstanding"]["points"]
    # The reversed sale is out; the sale before the rules' first day is in.
    assert got["sales"]["sales"] == seeded.sales + 1
    assert got["sales"]["litres_ml"] == seeded.litres_ml + 40_000
    march = {r["station_id"]: r for r in got["rows"] if r["month"] == "2026-03"}
    # m1 held nothing when S001 took 1,000 back: all of it written off, the balance unmoved.
    assert (march["S001"]["adjustments"], march["S001"]["written_off"]) == (-1000, -1000)
    assert march[""]["expired"] == 40  # the expiry job books with no station: HQ's row


def test_rebuild_equals_incremental_and_migration_fills_an_old_ledger(
    ledger: CloudLedger, chain_keys: MemberKeys, cloud_db_url: str
) -> None:
    seed_chain(ledger, chain_keys)
    kept = _snapshot(ledger)
    assert kept["agg_sales_day"] and kept["member_activity"] and kept["member_days"]
    ledger.db.transact(aggregates_ledger.rebuild)
    assert _snapshot(ledger) == kept

    def forget(conn: Connection) -> None:
        """A schema-2 ledger upgraded by an older build: aggregates empty."""
        for table in aggregates_ledger.AGGREGATE_TABLES:
            conn.execute(delete(table))
        conn.execute(update(schema_version).values(version=2))

    ledger.db.transact(forget)
    assert ledger.db.read(aggregates_ledger.check) != []
    db = Database.open(cloud_db_url)
    try:
        assert db.read(aggregates_ledger.check) == []
    finally:
        db.close()
    assert _snapshot(ledger) == kept


def test_rebuild_and_check_in_pages_of_three_rows_agree_with_the_flushes(
    ledger: CloudLedger, chain_keys: MemberKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rebuild and check page through the ledger (memory bounded at any size): with pages
    of 3 rows every visit, member and journal straddles pages, and the figures still equal
    what the flushes kept; the check's temporary tables leave nothing behind."""
    seed_chain(ledger, chain_keys)
    kept = _snapshot(ledger)
    monkeypatch.setattr(aggregates_ledger, "_PAGE", 3)
    assert ledger.db.read(aggregates_ledger.check) == []
    ledger.db.transact(aggregates_ledger.rebuild)
    assert _snapshot(ledger) == kept
    assert ledger.db.read(aggregates_ledger.check) == []  # twice on a pooled connection


def test_check_names_missing_and_extra_rows_and_caps_the_list(
    ledger: CloudLedger, chain_keys: MemberKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_chain(ledger, chain_keys)

    def tamper(conn: Connection) -> None:
        conn.execute(delete(member_days).where(member_days.c.station_id == "S001"))
        conn.execute(insert(agg_active_day).values(day="1999-01-01", active=7))

    ledger.db.transact(tamper)
    problems = ledger.db.read(aggregates_ledger.check)
    assert "agg_active_day ['1999-01-01']: stored (7,), ledger None" in problems
    lost = [p for p in problems if p.startswith("member_days [")]
    assert lost and all("'S001'" in p and p.endswith("stored None, ledger ()") for p in lost)
    monkeypatch.setattr(aggregates_ledger, "_SHOWN", 1)
    capped = ledger.db.read(aggregates_ledger.check)
    assert "member_days: more differences than the 1 named" in capped
    assert len([p for p in capped if p.startswith("member_days [")]) == 1


def test_check_names_a_tampered_figure(ledger: CloudLedger, chain_keys: MemberKeys) -> None:
    seed_chain(ledger, chain_keys)
    ledger.db.transact(
        lambda conn: conn.execute(
            update(agg_sales_day)
            .where(agg_sales_day.c.station_id == "S002")
            .values(litres_ml=agg_sales_day.c.litres_ml + 1)
        )
    )
    problems = ledger.db.read(aggregates_ledger.check)
    assert problems and all(p.startswith("agg_sales_day ['") for p in problems)
    assert all("'S002'" in p for p in problems)


def test_movement_signs_follow_members_balances() -> None:
    """Each journal's movements, signed, add up to what its member lines moved."""
    journals = {
        "earn": [("member:a", 12), ("points_issued", -10), ("variance", -2)],
        "redeem": [("member:a", -5), ("points_redeemed", 5)],
        "adjust": [("member:a", -3), ("adjustments", 5), ("written_off", -2)],
        "reverse": [
            ("member:a", -7),
            ("points_issued", 10),
            ("variance", 2),
            ("points_expired", -1),
            ("written_off", -4),
        ],
        "expire": [("member:a", -4), ("points_expired", 4)],
        "merge": [("member:a", -9), ("member:b", 9)],
        "import": [("member:a", 6), ("opening_balance", -6)],
    }
    for kind, lines in journals.items():
        moved = sum(p for account, p in lines if account.startswith("member:"))
        signed = sum(BALANCE_SIGN[m] * p for m, p in aggregates.movements_of(kind, lines))
        assert signed == moved, kind
    assert dict(aggregates.movements_of("adjust", journals["adjust"])) == {
        "adjusted_down": -5,
        "written_off": -2,
    }
    assert dict(aggregates.movements_of("merge", journals["merge"])) == {"merged": 9}
