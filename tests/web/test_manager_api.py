"""The manager's tools and redemption against the bill over the JSON API (web/api_manager.py).

Every refusal is the service's, with its values: the English message is the very line the
CLI prints for the same values, the Chinese one the page shows.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from edge_agent.services.members import MemberView
from edge_agent.services.sales import attach_member
from edge_agent.services.station import Station
from tests.support import FakeClock
from tests.web.conftest import MakeSale, refused

VALID = {"pump": 2, "nozzle": 1, "grade": "92", "litres": "40.00", "amount": "300.00"}


def sales_count(client: TestClient) -> int:
    return len(client.get("/api/v1/sales", params={"limit": 500}).json()["sales"])


def test_the_grades_in_force_with_their_price_bands(
    cashier: TestClient, make_sale: MakeSale
) -> None:
    make_sale(litres="40.00", amount="300.00")  # 92 at 7.50 at a pump
    answer = cashier.get("/api/v1/grades").json()
    assert answer["ruleset_version"] == 1
    by_code = {g["code"]: g for g in answer["grades"]}
    assert sorted(by_code) == ["0", "92", "95"]
    assert by_code["92"]["price"] == {
        "low": "5.25",
        "high": "9.75",
        "basis": "recent",
        "recent": "7.50",
    }
    assert by_code["95"]["price"]["basis"] == "station"


def test_the_manual_sale_form_is_the_managers(
    manager: TestClient, cashier: TestClient, station: Station
) -> None:
    form = manager.get("/api/v1/sale-limits").json()
    assert form["max_litres"] == 200 and form["price_tolerance_pct"] == 30
    assert form["ended_at"]["default"] == station.now().isoformat()
    assert form["ended_at"]["earliest"] == (station.now() - timedelta(days=7)).isoformat()
    refused(cashier.get("/api/v1/sale-limits"), 403, "auth.forbidden")
    refused(cashier.post("/api/v1/sales", json=VALID), 403, "auth.forbidden")


@pytest.mark.parametrize(
    ("change", "code", "english"),
    [
        ({"grade": "98"}, "sale.grade_unknown", "grade 98 is not in the rule set in force"),
        ({"litres": "0", "amount": "1"}, "sale.litres_range", "at most 200 L per sale, got 0"),
        ({"litres": "5000", "amount": "1"}, "sale.litres_range", "got 5000"),
        ({"litres": "100000", "amount": "1"}, "sale.litres_range", "got 100000"),
        ({"amount": "1"}, "sale.price_band", "unit price 0.03 yuan/L is outside 1.00-20.00"),
        (
            {"amount": "310.00", "unit_price": "7.50"},
            "sale.amount_mismatch",
            "amount 310.00 yuan differs from litres x price (40 x 7.50 = 300.00 yuan)",
        ),
        ({"pump": 100}, "sale.pump_range", "pump must be 1 to 99, got 100"),
        ({"ended_at": "2026-11-16T08:59:59"}, "sale.ended_old", "more than 7 days ago"),
        ({"ended_at": "2026-11-23T09:05:01+08:00"}, "sale.ended_future", "in the future"),
        ({"litres": "1.2345"}, "sale.litres", "at most 3 decimal places, got 1.2345"),
    ],
)
def test_absurd_manual_sales_are_refused_with_the_reason(
    manager: TestClient, change: dict[str, Any], code: str, english: str
) -> None:
    before = sales_count(manager)
    body = {**VALID, **change}
    text = refused(manager.post("/api/v1/sales", params={"lang": "en"}, json=body), 422, code)
    assert english in text
    chinese = refused(manager.post("/api/v1/sales", params={"lang": "zh-CN"}, json=body), 422, code)
    assert chinese != text and "…" not in chinese and "{" not in chinese
    assert sales_count(manager) == before


def test_a_manual_sale_keyed_after_an_outage_earns_for_its_member(
    manager: TestClient, member: MemberView, station: Station
) -> None:
    body = {**VALID, "ended_at": "2026-11-20T18:30:00", "q": "京A12345", "sale_key": "k-0000001"}
    first = manager.post("/api/v1/sales", json=body)
    assert first.status_code == 201, first.text
    sale = first.json()["sale"]
    assert sale["ended_at"] == "2026-11-20T18:30:00+08:00"  # station time
    assert (sale["member_id"], sale["points"], sale["source"]) == (member.member_id, 40, "manual")
    again = manager.post("/api/v1/sales", json=body)
    assert again.status_code == 201 and again.json()["created"] is False
    assert again.json()["sale"]["sale_id"] == sale["sale_id"]
    other = {**body, "litres": "41.00", "amount": "307.50"}
    refused(manager.post("/api/v1/sales", json=other), 409, "sale.key_conflict")
    refused(manager.post("/api/v1/sales", json={**VALID, "colour": 1}), 422, "request.invalid")


def test_a_reversal_names_what_it_takes_back(
    manager: TestClient,
    cashier: TestClient,
    rich_member: MemberView,
    make_sale: MakeSale,
    station: Station,
) -> None:
    sale = make_sale(litres="40.00", amount="300.00")
    attach_member(station, sale.sale_id, rich_member.member_id, actor="t")
    path = f"/api/v1/sales/{sale.sale_id}/reversal"
    preview = manager.get(path).json()
    assert preview["member"] == {"member_id": rich_member.member_id, "phone_masked": "138****8000"}
    assert (preview["take_back"], preview["reversible"]) == (40, True)  # silver: x1
    refused(cashier.get(path), 403, "auth.forbidden")
    long = manager.post(path, json={"reason": "长" * 201})
    refused(long, 422, "reason.too_long")
    assert manager.post(path, json={"reason": "测试加油"}).json()["sale"]["status"] == "reversed"
    assert manager.get(path).json()["reversible"] is False
    refused(manager.get("/api/v1/sales/nope/reversal"), 404, "sale.not_found")


def test_an_adjustment_with_a_reason_is_booked_once(
    manager: TestClient, cashier: TestClient, member: MemberView
) -> None:
    path = f"/api/v1/members/{member.member_id}/adjustments"
    body = {"points": 150, "reason": "补录漏记的交易", "adjustment_id": "adj-20261123-1"}
    first = manager.post(path, json=body)
    assert first.status_code == 201, first.text
    assert first.json() == {
        "adjustment": {
            "adjustment_id": "adj-20261123-1",
            "member_id": member.member_id,
            "points": 150,
            "balance_after": 150,
        },
        "created": True,
    }
    again = manager.post(path, json=body).json()
    assert again["created"] is False and again["adjustment"]["balance_after"] == 150
    refused(manager.post(path, json={**body, "points": 151}), 409, "adjust.conflict")
    refused(manager.post(path, json={"points": 5, "reason": " "}), 422, "reason.required")
    text = refused(
        manager.post(path, params={"lang": "en"}, json={"points": 5, "reason": "x" * 201}),
        422,
        "reason.too_long",
    )
    assert text == "a reason is at most 200 characters"
    refused(manager.post(path, json={"points": -500, "reason": "x"}), 409, "points.insufficient")
    refused(cashier.post(path, json=body), 403, "auth.forbidden")
    nobody = {**body, "adjustment_id": "adj-20261123-2"}
    refused(
        manager.post("/api/v1/members/nobody/adjustments", json=nobody), 404, "member.not_found"
    )


def test_redemption_against_a_sale_shows_and_books_the_amount_to_collect(
    cashier: TestClient, rich_member: MemberView, make_sale: MakeSale, clock: FakeClock
) -> None:
    clock.advance(minutes=2)  # the 400 L sale made the member silver from its end on
    sale = make_sale(litres="20.00", amount="150.00")
    query = {"member_id": rich_member.member_id, "sale_id": sale.sale_id}
    quote = cashier.get("/api/v1/redemptions/quote", params=query).json()["quote"]
    assert {
        k: quote[k] for k in ("points_per_yuan", "min_points", "balance", "discount", "due")
    } == {
        "points_per_yuan": 100,
        "min_points": 100,
        "balance": 400,
        "discount": "2.00",  # silver: 0.10 a litre
        "due": "148.00",
    }
    assert (quote["max_points"], quote["all_points"], quote["all_fits"]) == (400, 400, True)
    priced = cashier.get("/api/v1/redemptions/quote", params={**query, "points": 300}).json()
    assert (priced["quote"]["value"], priced["quote"]["collect"]) == ("3.00", "145.00")
    body = {"member_id": rich_member.member_id, "points": 300, "sale_id": sale.sale_id}
    booked = cashier.post("/api/v1/redemptions", json={**body, "redemption_id": "till-0000001"})
    assert booked.status_code == 201, booked.text
    redemption = booked.json()["redemption"]
    assert (redemption["value"], redemption["balance_after"]) == ("3.00", 100)
    assert (redemption["bill"]["due"], redemption["bill"]["collect"]) == ("148.00", "145.00")
    after = cashier.get("/api/v1/redemptions/quote", params=query).json()["quote"]
    assert (after["due"], after["max_points"]) == ("145.00", 100)


def test_a_bill_smaller_than_the_points_refuses_the_excess(
    cashier: TestClient, rich_member: MemberView, make_sale: MakeSale, station: Station
) -> None:
    sale = make_sale(litres="0.40", amount="3.00")
    body = {"member_id": rich_member.member_id, "points": 400, "sale_id": sale.sale_id}
    quote = cashier.get(
        "/api/v1/redemptions/quote",
        params={"member_id": rich_member.member_id, "sale_id": sale.sale_id, "points": 400},
    ).json()["quote"]
    assert quote["refused"] == "redeem.over_bill" and quote["max_points"] == 300
    assert quote["all_fits"] is False
    text = refused(
        cashier.post("/api/v1/redemptions", params={"lang": "en"}, json=body),
        409,
        "redeem.over_bill",
    )
    assert (
        text
        == "400 points are worth ¥4.00, more than the ¥3.00 due on this bill; at most 300 points"
    )
    typed = {"member_id": rich_member.member_id, "points": 100, "bill": "0.50"}
    refused(cashier.post("/api/v1/redemptions", json=typed), 409, "redeem.over_bill")
    both = {**body, "bill": "3.00"}
    refused(cashier.post("/api/v1/redemptions", json=both), 422, "bill.one_source")
    refused(
        cashier.get(
            "/api/v1/redemptions/quote", params={"member_id": rich_member.member_id, "bill": "0"}
        ),
        422,
        "bill.amount",
    )


def test_the_minimum_and_the_rate_are_in_the_refusal(
    cashier: TestClient, rich_member: MemberView
) -> None:
    body = {"member_id": rich_member.member_id, "points": 50}
    text = refused(cashier.post("/api/v1/redemptions", json=body), 422, "redeem.min_points")
    assert text == "单次兑换至少 100 积分（100 积分抵 1 元）"
