"""POST/GET /m/api/v1/me/invoices: a 数电发票 request for one of the member's own sales, once
per sale under retries and concurrency, the buyer's data sealed, the list paged."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cloud_sync.cloud.ledger.schema_app import invoice_requests
from tests.browser import serve_in_thread
from tests.cloud.ledger.fake_station import member_id

from .activity_support import member_sales, sale_of
from .conftest import MemberApp

pytestmark = pytest.mark.usefixtures("cloud_db_url")

URL = "/m/api/v1/me/invoices"
TENCENT = "9144030071526726XG"


def ask(sale_id: str, **change: Any) -> dict[str, Any]:
    return {
        "sale_id": sale_id,
        "buyer_name": "腾讯科技（深圳）有限公司",
        "tax_id": TENCENT,
        "email": "fapiao@example.com",
    } | change


def post(mapp: MemberApp, member: str, body: dict[str, Any]) -> httpx.Response:
    answer = mapp.client.post(URL, json=body, headers=mapp.auth(member))
    assert isinstance(answer, httpx.Response)
    return answer


def stored_rows(mapp: MemberApp) -> list[Any]:
    return mapp.ledger.db.read(lambda conn: list(conn.execute(select(invoice_requests))))


def test_a_company_invoice_for_the_members_sale_with_its_amount_and_grade(
    mapp: MemberApp,
) -> None:
    member = mapp.seeded.members[1]
    sale = sale_of(mapp, member)  # 30.00 L of 95 at 7.50 yuan
    answer = post(mapp, member, ask(sale.sale_id, tax_id=" 9144 0300-7152 6726xg "))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["buyer_kind"] == "company" and body["tax_id"] == TENCENT
    assert (body["amount_fen"], body["status"], body["station_id"]) == (22500, "requested", "S001")
    assert body["lines"] == [
        {"grade": "95", "grade_name": "95#汽油", "litres": "30.00", "amount_fen": 22500}
    ]
    (row,) = stored_rows(mapp)
    sealed = " ".join(str(v) for v in row._mapping.values())
    for clear in ("腾讯", TENCENT, "fapiao@"):
        assert clear not in sealed  # sealed under the chain's keys, never in clear


def test_no_tax_id_is_a_personal_invoice(mapp: MemberApp) -> None:
    member = mapp.seeded.members[1]
    first, second = [s for s in member_sales(mapp, member) if s.status == "recorded"][:2]
    answer = post(mapp, member, ask(first.sale_id, buyer_name="张三", tax_id=None))
    assert (answer.json()["buyer_kind"], answer.json()["tax_id"]) == ("personal", None)
    answer = post(mapp, member, ask(second.sale_id, buyer_name="张三", tax_id="  "))
    assert answer.json()["buyer_kind"] == "personal"


def test_a_retry_answers_the_stored_request_and_other_details_are_refused(
    mapp: MemberApp,
) -> None:
    member = mapp.seeded.members[1]
    sale = sale_of(mapp, member)
    first = post(mapp, member, ask(sale.sale_id))
    assert first.status_code == 201
    again = post(
        mapp, member, ask(sale.sale_id, email=" FaPiao@Example.com ", tax_id=TENCENT.lower())
    )
    assert again.status_code == 200
    assert again.json() == first.json()
    other = post(mapp, member, ask(sale.sale_id, email="other@example.com"))
    assert other.status_code == 409
    assert other.json()["error"] == "member_app.invoice_exists"
    assert other.json()["invoice"]["request_id"] == first.json()["request_id"]
    assert len(stored_rows(mapp)) == 1


def test_another_members_sale_is_no_sale_and_a_reversed_sale_is_refused(
    mapp: MemberApp,
) -> None:
    owner, other = mapp.seeded.members[1], mapp.seeded.members[2]
    theirs = post(mapp, other, ask(sale_of(mapp, owner).sale_id))
    missing = post(mapp, other, ask("00000000-0000-4000-8000-000000000000"))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json() == {"error": "not_found", "detail": "no such sale"}
    reversed_sale = sale_of(mapp, owner, status="reversed")
    refused = post(mapp, owner, ask(reversed_sale.sale_id))
    assert (refused.status_code, refused.json()["error"]) == (409, "member_app.sale_reversed")
    assert stored_rows(mapp) == []


def test_a_merged_id_asks_as_its_survivor(mapp: MemberApp) -> None:
    survivor, merged = mapp.seeded.members[0], member_id(9)  # one phone, registered twice
    sale = [s for s in member_sales(mapp, survivor) if s.station_id == "S002"][-1]
    answer = post(mapp, merged, ask(sale.sale_id))
    assert answer.status_code == 201, answer.text
    assert answer.json()["station_id"] == "S002"
    listed = mapp.client.get(URL, headers=mapp.auth(survivor)).json()["invoices"]
    assert [i["request_id"] for i in listed] == [answer.json()["request_id"]]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"tax_id": "9144030071526726XH"}, "member_app.tax_id"),  # check character
        ({"tax_id": "12345"}, "member_app.tax_id"),
        ({"email": "not-an-address"}, "member_app.email"),
        ({"email": "a@b"}, "member_app.email"),
        ({"email": "x" * 250 + "@example.com"}, "member_app.email"),
        ({"buyer_name": "   "}, "member_app.buyer_name"),
        ({"buyer_name": "名" * 101}, "member_app.buyer_name"),
        ({"buyer_name": "a\x00b"}, "member_app.buyer_name"),
        ({"buyer_name": "名" * 401}, "invalid"),
        ({"sale_id": "x" * 65}, "invalid"),
        ({"member_id": "someone-else"}, "invalid"),  # the member is the token's, never the body's
    ],
)
def test_bad_details_are_refused_with_the_field(
    mapp: MemberApp, change: dict[str, Any], code: str
) -> None:
    member = mapp.seeded.members[1]
    answer = post(mapp, member, ask(sale_of(mapp, member).sale_id) | change)
    assert answer.status_code == 422
    assert answer.json()["error"] == code
    assert stored_rows(mapp) == []


def test_the_list_is_the_members_own_newest_first_and_paged(mapp: MemberApp) -> None:
    member = mapp.seeded.members[1]
    sale_ids = [s.sale_id for s in member_sales(mapp, member) if s.status == "recorded"]
    made = []
    for sale_id in sale_ids:
        made.append(post(mapp, member, ask(sale_id)).json()["request_id"])
        mapp.clock.advance(minutes=1)
    headers = mapp.auth(member)
    first = mapp.client.get(URL, params={"limit": 1}, headers=headers).json()
    assert [i["request_id"] for i in first["invoices"]] == [made[-1]]
    assert first["next"] and first["as_of"] and first["freshness"]
    rest = mapp.client.get(URL, params={"limit": 1, "before": first["next"]}, headers=headers)
    assert [i["request_id"] for i in rest.json()["invoices"]] == [made[-2]]
    assert rest.json()["next"] is None
    others = mapp.client.get(URL, headers=mapp.auth(mapp.seeded.members[2])).json()
    assert others["invoices"] == []
    bad = mapp.client.get(URL, params={"before": "yesterday"}, headers=headers)
    assert (bad.status_code, bad.json()["error"]) == (422, "member_app.cursor")
    assert mapp.client.get(URL, params={"limit": 101}, headers=headers).status_code == 422


def test_once_per_sale_under_concurrent_retries_and_rivals(mapp: MemberApp) -> None:
    member = mapp.seeded.members[1]
    same, rival = [s.sale_id for s in member_sales(mapp, member) if s.status == "recorded"][:2]
    headers = mapp.auth(member)
    with (
        serve_in_thread(mapp.app) as url,
        httpx.Client(base_url=url, timeout=30) as client,
        ThreadPoolExecutor(max_workers=20) as pool,
    ):
        retries = list(
            pool.map(lambda _: client.post(URL, json=ask(same), headers=headers), range(20))
        )
        rivals = list(
            pool.map(
                lambda n: client.post(
                    URL, json=ask(rival, email=f"n{n}@example.com"), headers=headers
                ),
                range(10),
            )
        )
    assert sorted(a.status_code for a in retries) == [200] * 19 + [201]
    assert len({a.json()["request_id"] for a in retries}) == 1
    assert sorted(a.status_code for a in rivals) == [201] + [409] * 9
    assert len(stored_rows(mapp)) == 2
