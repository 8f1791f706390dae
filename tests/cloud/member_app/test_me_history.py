"""The member's history: sales at every station with their points receipts, keyset pages,
redemptions, and the coupons that have not arrived yet; SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from cloud_sync.cloud.ledger.member_admin import family_of
from cloud_sync.cloud.ledger.schema import sales
from cloud_sync.core.events import SaleMemberAttached
from tests.cloud.hq.seed_chain import NOW
from tests.cloud.ledger.fake_station import member_id

from .conftest import MemberApp
from .reads_support import third_station

pytestmark = pytest.mark.usefixtures("cloud_db_url")


def _all_pages(
    mapp: MemberApp, member: str, path: str, key: str, limit: int
) -> list[dict[str, Any]]:
    headers = mapp.auth(member)
    found: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        params = {"limit": limit, **({"before": cursor} if cursor else {})}
        answer = mapp.client.get(f"/m/api/v1{path}", headers=headers, params=params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert len(body[key]) <= limit
        assert body["as_of"] == NOW.isoformat() and "note" in body["freshness"]
        found += body[key]
        cursor = body["next"]
        if cursor is None:
            return found
    raise AssertionError("the pages never ended")


def test_every_sale_of_the_member_and_its_merged_ids_once_newest_first(mapp: MemberApp) -> None:
    member = mapp.seeded.members[0]
    shown = _all_pages(mapp, member, "/me/sales", "sales", limit=2)
    expected = mapp.ledger.db.read(
        lambda conn: list(
            conn.execute(
                select(sales.c.sale_id).where(sales.c.member_id.in_(family_of(conn, member)))
            ).scalars()
        )
    )
    assert sorted(sale["sale_id"] for sale in shown) == sorted(expected)
    assert len(shown) == 4  # a year ago, 35 days ago, today at S002, and member 9 before the merge
    assert [sale["ended_at"] for sale in shown] == sorted(
        (sale["ended_at"] for sale in shown), reverse=True
    )
    newest = shown[0]
    assert newest["station"] == {"id": "S002", "name": "站点2"}
    assert (newest["litres"], newest["amount_fen"], newest["grade"]) == ("25.00", 18750, "92")
    assert (newest["points"], newest["points_booked"], newest["status"]) == (25, 25, "recorded")
    assert newest["expires_at"] == (NOW - timedelta(hours=3) + timedelta(days=365)).isoformat()
    steps = [step["code"] for step in newest["receipt"]["steps"]]
    assert steps == ["base", "tier", "bonus", "rounding"]
    assert newest["receipt"]["points"] == 25


def test_a_reversed_sale_shows_as_reversed(mapp: MemberApp) -> None:
    shown = _all_pages(mapp, mapp.seeded.members[1], "/me/sales", "sales", limit=50)
    assert sorted(sale["status"] for sale in shown) == ["recorded", "recorded", "reversed"]


def test_a_member_attached_after_the_sale_sees_the_attach_receipt(mapp: MemberApp) -> None:
    s3 = third_station(mapp)
    member = s3.register("13900139010", NOW - timedelta(days=100))
    sale_id = s3.station.sale(None, "20.00", NOW - timedelta(hours=5))
    s3.station.attach(sale_id, member, "20.00", NOW - timedelta(hours=4))
    s3.push(NOW - timedelta(hours=1))
    (shown,) = s3.get(member, "/me/sales")["sales"]
    assert shown["sale_id"] == sale_id and shown["points"] == 20
    assert shown["receipt"]["points"] == 20 and shown["receipt"]["tier"] == "standard"
    assert shown["station"] == {"id": "S003", "name": "站点3"}


def test_a_sale_moved_to_another_member_never_shows_the_first_members_receipt(
    mapp: MemberApp,
) -> None:
    s3 = third_station(mapp)
    wrong = s3.register("13900139031", NOW - timedelta(days=100))
    right = s3.register("13900139032", NOW - timedelta(days=100))
    sale_id = s3.station.sale(wrong, "20.00", NOW - timedelta(hours=5))  # A's receipt
    s3.station.detach(sale_id, wrong, 20, NOW - timedelta(hours=4))
    # The right member attached by a till that sent no receipt and no points.
    s3.station.send(
        SaleMemberAttached(sale_id=sale_id, member_id=right, points=0, at=NOW - timedelta(hours=4)),
        NOW - timedelta(hours=4),
    )
    s3.push(NOW - timedelta(hours=1))
    (shown,) = s3.get(right, "/me/sales")["sales"]
    assert (shown["sale_id"], shown["points"], shown["receipt"]) == (sale_id, 0, None)
    assert s3.get(wrong, "/me/sales")["sales"] == []


def test_cursors_and_limits_are_checked(mapp: MemberApp) -> None:
    headers = mapp.auth(mapp.seeded.members[0])
    for params, code in (
        ({"before": "not-a-cursor"}, "member_app.cursor"),
        ({"before": "W10"}, "member_app.cursor"),  # base64 of "[]": not our shape
        ({"before": "x" * 401}, "invalid"),
        ({"limit": 51}, "invalid"),
        ({"limit": 0}, "invalid"),
    ):
        for path in ("/me/sales", "/me/redemptions"):
            answer = mapp.client.get(f"/m/api/v1{path}", headers=headers, params=params)
            assert answer.status_code == 422, (path, params, answer.text)
            assert answer.json()["error"] == code


def test_redemptions_at_every_station(mapp: MemberApp) -> None:
    shown = _all_pages(mapp, mapp.seeded.members[0], "/me/redemptions", "redemptions", limit=1)
    assert len(shown) == 1
    (redemption,) = shown
    assert redemption["points"] == 100 and redemption["value_fen"] == 100
    assert redemption["station"] == {"id": "S001", "name": "站点1"}
    assert _all_pages(mapp, mapp.seeded.members[2], "/me/redemptions", "redemptions", 5) == []


def test_a_page_holds_at_most_the_limit_and_the_next_page_goes_on(mapp: MemberApp) -> None:
    s3 = third_station(mapp)
    member = s3.register("13900139011", NOW - timedelta(days=100))
    at = NOW - timedelta(days=2)
    for n in range(25):  # some share an end time: the sale id orders them
        s3.station.sale(member, "10.00", at + timedelta(minutes=n // 3))
    s3.push(NOW - timedelta(hours=1))
    first = s3.get(member, "/me/sales")
    assert len(first["sales"]) == 20 and first["next"]
    rest = s3.get(member, "/me/sales", before=first["next"])
    assert len(rest["sales"]) == 5 and rest["next"] is None
    ids = [sale["sale_id"] for sale in first["sales"] + rest["sales"]]
    assert len(set(ids)) == 25


def test_coupons_say_honestly_that_none_exist_yet(mapp: MemberApp) -> None:
    answer = mapp.client.get("/m/api/v1/me/coupons", headers=mapp.auth(member_id(1)))
    assert answer.status_code == 200
    body = answer.json()
    assert (body["open"], body["used"], body["expired"], body["available"]) == ([], [], [], False)
    assert "campaigns" in body["note"]
