"""HQ's members in the ledger: search, the member page, HQ's adjustment, PIPL export and
erasure; on SQLite and PostgreSQL."""

from __future__ import annotations

import functools
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from cloud_sync.cloud.ledger import LedgerError
from cloud_sync.cloud.ledger.member_admin import (
    ERASED_MARK,
    hq_adjust,
    member_page,
    member_sales,
    search_members,
)
from cloud_sync.cloud.ledger.member_privacy import erase_member, export_member
from cloud_sync.cloud.ledger.schema import journals, lines
from cloud_sync.core.privacy import blind_index

from .members_seed import NAME, NOW, PHONE, PLATE, Seeded, chain_keys, ledger, seeded

__all__ = ["chain_keys", "ledger", "seeded"]

LATER = NOW + timedelta(hours=3)


def test_search_by_phone_plate_and_id(seeded: Seeded) -> None:
    db, keys = seeded.ledger.db, seeded.keys
    for q in (PHONE, "+86 138-0013-8000", "京a·12345", seeded.member):
        found = db.read(functools.partial(search_members, keys=keys, q=q, now=LATER))
        assert [m["member_id"] for m in found] == [seeded.member], q
        assert found[0]["phone_masked"] == "138****8000"
        assert found[0]["plates"] == [PLATE]
    assert db.read(lambda c: search_members(c, keys, "13700137000", LATER)) == []
    with pytest.raises(ValueError, match=r"plate|phone|neither"):
        db.read(lambda c: search_members(c, keys, "京", LATER))


def test_member_page_holds_balance_lots_tier_history_sales_and_consent(seeded: Seeded) -> None:
    db, keys = seeded.ledger.db, seeded.keys
    page = db.read(lambda c: member_page(c, keys, seeded.member, LATER))
    assert page is not None
    assert page["points"] == 40 + 30 - 20
    assert page["name"] == NAME
    assert page["plates"] == [PLATE]
    assert page["consent"]["channel"] == "counter"
    assert [h["what"] for h in page["tier_history"]] == ["registered", "tier_changed"]
    assert page["tier_history"][1]["tier"] == "silver"
    assert [r["points"] for r in page["redemptions"]] == [20]
    assert all(lot["expires_at"] for lot in page["all_lots"])
    first = db.read(lambda c: member_sales(c, seeded.member, limit=1))
    assert first["sales"][0]["station_id"] == "S002"  # newest first, across stations
    second = db.read(lambda c: member_sales(c, seeded.member, before=first["next"], limit=1))
    assert second["sales"][0]["station_id"] == "S001" and second["next"] is None


def _adjust(seeded: Seeded, points: int, request_id: str, reason: str = "客诉补偿") -> dict:  # type: ignore[type-arg]
    ledger = seeded.ledger
    return ledger.db.transact(
        lambda c: hq_adjust(
            ledger.db,
            c,
            seeded.keys,
            ledger.rules,
            member_id=seeded.member,
            points=points,
            reason=reason,
            request_id=request_id,
            actor="alice",
            now=LATER,
        )
    )


def test_adjustment_books_once_under_a_double_submit_and_reaches_the_feed(seeded: Seeded) -> None:
    ledger = seeded.ledger
    cursor = ledger.changes("S001", 0, 1000, LATER).next_cursor
    totals = ledger.totals()
    first = _adjust(seeded, 500, "req-00000001")
    again = _adjust(seeded, 500, "req-00000001")
    assert not first["replayed"] and again["replayed"]
    view = ledger.member(seeded.member, LATER)
    assert view is not None and view["points"] == 50 + 500
    hq_journals = ledger.db.read(
        lambda c: c.execute(
            select(journals.c.station_id, lines.c.points)
            .join(lines, lines.c.journal_id == journals.c.journal_id)
            .where(journals.c.kind == "adjust", lines.c.account == "adjustments")
        ).all()
    )
    assert hq_journals == [(None, -500)]  # once, and HQ's (no station)
    assert ledger.ledger_problems() == []
    assert ledger.totals() != totals
    page = ledger.changes("S002", cursor, 1000, LATER)
    delta = {m.member_id: m for m in page.members}[seeded.member]
    assert sum(lot.points for lot in delta.lots) == 550
    with pytest.raises(LedgerError, match="another adjustment"):
        _adjust(seeded, 400, "req-00000001")
    taken = _adjust(seeded, -600, "req-00000002")  # more than held: the rest written off
    assert taken["points"] == -600
    assert ledger.member(seeded.member, LATER)["points"] == 0  # type: ignore[index]
    assert ledger.ledger_problems() == []
    for bad_points, bad_reason in ((0, "x"), (1_000_001, "x"), (5, "  ")):
        with pytest.raises(LedgerError):
            _adjust(seeded, bad_points, "req-00000003", bad_reason)
    audit = ledger.db.read(lambda c: c.execute(text("SELECT action FROM hq_audit")).all())
    assert [a[0] for a in audit] == ["member.adjust", "member.adjust"]


def test_export_holds_everything_and_is_audited_without_content(seeded: Seeded) -> None:
    ledger = seeded.ledger
    _adjust(seeded, 100, "req-00000009")
    doc = ledger.db.transact(
        lambda c: export_member(c, seeded.keys, seeded.member, actor="alice", now=LATER)
    )
    assert doc["profile"]["phone"] == "+8613800138000"
    assert doc["profile"]["name"] == NAME
    assert doc["plates"] == [PLATE]
    assert len(doc["sales"]) == 2 and len(doc["redemptions"]) == 1
    assert [a["reason"] for a in doc["adjustments"]] == ["客诉补偿"]
    assert doc["consent"]["channel"] == "counter"
    assert [h["what"] for h in doc["tier_history"]] == ["registered", "tier_changed"]
    assert [a["action"] for a in doc["audit"]] == ["member.adjust"]
    rows = ledger.db.read(lambda c: c.execute(text("SELECT action, after FROM hq_audit")).all())
    export_row = [r for r in rows if r[0] == "member.pipl_export"]
    assert len(export_row) == 1 and "138" not in export_row[0][1] and NAME not in export_row[0][1]


def _raw_dump(seeded: Seeded) -> str:
    """Every text cell of the tables that hold member data, as one string to grep."""
    out = []
    with seeded.ledger.db.engine.connect() as conn:
        for table in ("members", "plates", "events", "changes", "hq_audit", "adjustments"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                out.append(" ".join(str(v) for v in row))
    return "\n".join(out)


def test_erase_anonymises_and_keeps_every_sum(seeded: Seeded) -> None:
    ledger, keys = seeded.ledger, seeded.keys
    cursor = ledger.changes("S001", 0, 1000, LATER).next_cursor  # grants allowances
    before_totals = ledger.totals()
    before_dump = _raw_dump(seeded)
    registered = ledger.db.read(
        lambda c: c.execute(
            text("SELECT phone_sealed, name_sealed FROM members WHERE member_id = :m"),
            {"m": seeded.member},
        ).one()
    )
    plate_sealed = ledger.db.read(
        lambda c: c.execute(
            text("SELECT plate_sealed FROM plates WHERE member_id = :m"), {"m": seeded.member}
        ).scalar_one()
    )
    secrets = [
        registered[0],
        registered[1],
        plate_sealed,
        blind_index(keys, "phone", "+8613800138000"),
        blind_index(keys, "plate", PLATE),
    ]
    assert all(s in before_dump for s in secrets)
    done = ledger.db.transact(
        lambda c: erase_member(ledger.db, c, seeded.member, actor="root", now=LATER)
    )
    assert done["plates_removed"] == 1 and done["events_scrubbed"] == 2
    after = _raw_dump(seeded)
    for secret in secrets:
        assert secret not in after
    assert "13800138000" not in after and NAME not in after
    assert ledger.totals() == before_totals
    assert ledger.ledger_problems() == []
    view = ledger.member(seeded.member, LATER)
    assert view is not None and view["phone_masked"] == ERASED_MARK
    assert view["plates"] == [] and view["name"] is None and view["points"] == 50
    assert ledger.find_member(phone=PHONE, now=LATER) is None
    assert ledger.find_member(plate=PLATE, now=LATER) is None
    other = ledger.member(seeded.other, LATER)
    assert other is not None and other["plates"] == ["粤BD12345"]  # the neighbour untouched
    page = ledger.changes("S002", cursor, 1000, LATER)
    delta = {m.member_id: m for m in page.members}[seeded.member]
    assert delta.status == "erased" and delta.phone_index is None and delta.plates == []
    with pytest.raises(LedgerError, match="erased already"):
        ledger.db.transact(
            lambda c: erase_member(ledger.db, c, seeded.member, actor="r", now=LATER)
        )
    # A station's later event about the member still books (the points are the member's).
    seeded.s1.sale(seeded.member, "5.00", LATER)
    ledger.push("S001", seeded.s1.request(), LATER)
    assert ledger.ledger_problems() == []
    rows = ledger.db.read(lambda c: c.execute(text("SELECT action FROM hq_audit")).all())
    assert [r[0] for r in rows] == ["member.pipl_erase"]
