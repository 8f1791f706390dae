"""PIPL in the app: the member downloads everything held on them, gives or withdraws
marketing consent, and deletes the account (anonymised as HQ's erasure, ledger sums kept,
signed out everywhere); each audited as the member. SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from cloud_sync.cloud.ledger.database import serials
from cloud_sync.cloud.ledger.member_invoices import EMAIL_FIELD, NAME_FIELD
from cloud_sync.cloud.ledger.reports_hq import outstanding
from cloud_sync.cloud.ledger.schema import hq_audit, members
from cloud_sync.cloud.ledger.schema_app import checkins, feedback, invoice_requests
from cloud_sync.core.privacy import encrypt_field
from tests.cloud.hq.seed_chain import NOW
from tests.cloud.ledger.fake_station import member_id

from .conftest import MemberApp

pytestmark = pytest.mark.usefixtures("cloud_db_url")


def _audit(mapp: MemberApp, action: str) -> list[tuple[str, str]]:
    rows = mapp.ledger.db.read(
        lambda conn: conn.execute(
            select(hq_audit.c.actor, hq_audit.c.target)
            .where(hq_audit.c.action == action)
            .order_by(hq_audit.c.audit_id)
        ).all()
    )
    return [(row.actor, row.target) for row in rows]


def _sums(mapp: MemberApp, member: str) -> dict[str, Any]:
    """The ledger's totals but the allowances (a changes page grants those), the points
    outstanding chain-wide, and the member's own balance."""
    totals = {k: v for k, v in mapp.ledger.totals().items() if not k.startswith("allowances")}
    owed = mapp.ledger.db.read(lambda conn: outstanding(conn, NOW)["points"])
    held = mapp.ledger.member(member, NOW)
    assert held is not None
    return {**totals, "outstanding": owed, "member_points": held["points"]}


def _app_rows(mapp: MemberApp, member: str, other: str) -> None:
    keys = mapp.ledger.chain_keys

    def work(conn: Any) -> None:
        for who, sale in ((member, "sale-a"), (other, "sale-b")):
            conn.execute(
                insert(checkins).values(
                    member_id=who, day="2026-03-01", streak=1, points=5, bonus=0, at=NOW.isoformat()
                )
            )
            conn.execute(
                insert(invoice_requests).values(
                    request_id=f"req-{sale}",
                    sale_id=sale,
                    member_id=who,
                    station_id="S001",
                    buyer_kind="personal",
                    buyer_name_sealed=encrypt_field(keys, NAME_FIELD, f"买方{sale}"),
                    tax_id_sealed=None,
                    email_sealed=encrypt_field(keys, EMAIL_FIELD, f"{sale}@example.cn"),
                    amount_fen=1000,
                    lines="[]",
                    status="requested",
                    requested_at=NOW.isoformat(),
                    requested_ms=1,
                )
            )
            conn.execute(
                insert(feedback).values(
                    member_id=who,
                    station_id="S001",
                    rating=4,
                    comment=f"好 {sale}",
                    at=NOW.isoformat(),
                    at_ms=1,
                    # SQLite cannot number a column of a composite key (schema 5)
                    **{c: n[0] for c, n in serials(conn, feedback, 1).items()},
                )
            )

    mapp.ledger.db.transact(work)


def test_the_export_holds_the_ledger_and_the_apps_data_of_the_member_only(
    mapp: MemberApp,
) -> None:
    member, other = mapp.seeded.members[0], mapp.seeded.members[1]
    _app_rows(mapp, member, other)
    headers = mapp.auth(member)
    answer = mapp.client.get("/m/api/v1/me/export", headers=headers)
    assert answer.status_code == 200, answer.text
    assert "attachment" in answer.headers["content-disposition"]
    assert answer.headers["cache-control"] == "no-store"
    doc = answer.json()
    assert doc["member_id"] == member and doc["merged_ids"] == [member_id(9)]
    assert doc["profile"]["phone"] == "+8613800138001"
    assert len(doc["sales"]) == 4 and doc["lots"]
    app = doc["member_app"]
    assert app["sessions"]["total"] >= 1 and app["sessions"]["live"] >= 1
    assert [row["member_id"] for row in app["checkins"]] == [member]
    (request,) = app["invoice_requests"]
    assert (request["buyer_name"], request["email"]) == ("买方sale-a", "sale-a@example.cn")
    assert not any(key.endswith("_sealed") for key in request)
    assert [row["comment"] for row in app["feedback"]] == ["好 sale-a"]
    assert doc["consent"]["marketing_at"] is None and doc["wallet"] is None
    assert "sale-b" not in answer.text and "13800138002" not in answer.text
    assert _audit(mapp, "member.pipl_export") == [(f"member:{member}", member)]


def test_one_export_a_minute(mapp: MemberApp) -> None:
    headers = mapp.auth(mapp.seeded.members[2])
    assert mapp.client.get("/m/api/v1/me/export", headers=headers).status_code == 200
    again = mapp.client.get("/m/api/v1/me/export", headers=headers)
    assert (again.status_code, again.json()["error"]) == (429, "member_app.export_throttled")
    assert 0 < int(again.headers["retry-after"]) <= 60
    other = mapp.client.get("/m/api/v1/me/export", headers=mapp.auth(mapp.seeded.members[1]))
    assert other.status_code == 200  # one member's limit is not another's
    mapp.clock.advance(seconds=61)
    assert mapp.client.get("/m/api/v1/me/export", headers=headers).status_code == 200


def test_marketing_consent_given_kept_and_withdrawn(mapp: MemberApp) -> None:
    member = mapp.seeded.members[1]
    headers = mapp.auth(member)
    given = mapp.client.post("/m/api/v1/me/consent", headers=headers, json={"marketing": True})
    assert given.json() == {"marketing": True, "at": NOW.isoformat(), "changed": True}
    mapp.clock.advance(minutes=5)
    again = mapp.client.post("/m/api/v1/me/consent", headers=headers, json={"marketing": True})
    assert again.json() == {"marketing": True, "at": NOW.isoformat(), "changed": False}
    home = mapp.client.get("/m/api/v1/me", headers=headers).json()
    assert home["marketing"] == {"consent": True, "at": NOW.isoformat()}
    gone = mapp.client.post("/m/api/v1/me/consent", headers=headers, json={"marketing": False})
    assert gone.json() == {"marketing": False, "at": None, "changed": True}
    stored = mapp.ledger.db.read(
        lambda conn: conn.execute(
            select(members.c.marketing_at).where(members.c.member_id == member)
        ).scalar_one()
    )
    assert stored is None
    assert _audit(mapp, "member.marketing_consent") == [(f"member:{member}", member)] * 2
    for bad in ({"marketing": "yes"}, {"marketing": 1}, {}, {"marketing": True, "member_id": "x"}):
        refused = mapp.client.post("/m/api/v1/me/consent", headers=headers, json=bad)
        assert (refused.status_code, refused.json()["error"]) == (422, "invalid"), bad


def test_deleting_the_account_anonymises_keeps_the_sums_and_signs_out(mapp: MemberApp) -> None:
    survivor = mapp.seeded.members[0]
    before = _sums(mapp, survivor)
    mapp.client.post("/m/api/v1/me/plates", headers=mapp.auth(survivor), json={"plate": "京A12345"})
    since = mapp.ledger.changes("S001", 0, 500, NOW).next_cursor
    other_phone = mapp.auth(survivor)
    merged_token = mapp.auth(member_id(9))  # signed in before the merge: the same person
    answer = mapp.client.delete("/m/api/v1/me", headers=merged_token)
    assert answer.status_code == 200, answer.text
    done = answer.json()
    assert done["deleted"] is True and done["member_id"] == survivor
    assert sorted(done["erased_ids"]) == sorted([survivor, member_id(9)])
    assert done["plates_removed"] == 1 and done["sales_kept"] == 4
    assert done["sessions_ended"] >= 3
    for headers in (merged_token, other_phone):
        assert mapp.client.get("/m/api/v1/me", headers=headers).status_code == 401
    assert mapp.client.delete("/m/api/v1/me", headers=merged_token).status_code == 401
    row = mapp.ledger.db.read(
        lambda conn: conn.execute(select(members).where(members.c.member_id == survivor)).one()
    )
    assert (row.phone_index, row.phone_sealed, row.name_sealed) == (None, None, None)
    assert row.phone_masked == "已注销"
    assert _sums(mapp, survivor) == before  # points, lots, journals: every sum as it was
    assert mapp.ledger.ledger_problems() == []
    page = mapp.ledger.changes("S001", since, 500, NOW + timedelta(seconds=1))
    statuses = {delta.member_id: delta.status for delta in page.members}
    assert statuses[survivor] == "erased"
    assert _audit(mapp, "member.pipl_erase") == [(f"member:{survivor}", survivor)]


def test_parallel_deletions_erase_once(mapp: MemberApp) -> None:
    member = mapp.seeded.members[2]
    headers = mapp.auth(member)

    def delete(_: int) -> int:
        return int(mapp.client.delete("/m/api/v1/me", headers=headers).status_code)

    with ThreadPoolExecutor(6) as pool:
        statuses = sorted(pool.map(delete, range(6)))
    assert statuses.count(200) == 1 and set(statuses) <= {200, 401, 409}, statuses
    assert _audit(mapp, "member.pipl_erase") == [(f"member:{member}", member)]


def test_parallel_consents_change_and_audit_once(mapp: MemberApp) -> None:
    member = mapp.seeded.members[1]
    headers = mapp.auth(member)

    def give(_: int) -> bool:
        answer = mapp.client.post("/m/api/v1/me/consent", headers=headers, json={"marketing": True})
        assert answer.status_code == 200
        return bool(answer.json()["changed"])

    with ThreadPoolExecutor(6) as pool:
        changed = list(pool.map(give, range(6)))
    assert changed.count(True) == 1
    assert _audit(mapp, "member.marketing_consent") == [(f"member:{member}", member)]
