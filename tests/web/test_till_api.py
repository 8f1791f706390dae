"""The till's JSON routes over HTTP against a real station store: pump-first attach, undo
attach (double clicks and parallel presses), the last-4 pick list and its limit, receipts
and printing to a fake network printer."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from edge_agent.receipts.escpos import encode_receipt
from edge_agent.receipts.printer import TcpPrinter
from edge_agent.services.members import MemberView, register_member
from edge_agent.services.receipts import make_receipt
from edge_agent.services.station import Station
from tests.fake_printer import FakeTcpPrinter
from tests.support import FakeClock
from tests.web.conftest import MakeSale, SignIn, refused


@pytest.mark.parametrize(
    "call",
    [
        "GET /api/v1/till/sales",
        "GET /api/v1/till/pumps/1/sales",
        "GET /api/v1/till/unattached",
        "GET /api/v1/till/search?q=8000",
        "POST /api/v1/sales/x/member/undo",
        "GET /api/v1/receipts/sale/x",
        "POST /api/v1/receipts/sale/x/print",
    ],
)
def test_the_till_routes_need_a_session(anon: TestClient, call: str) -> None:
    method, path = call.split()
    refused(anon.request(method, path, json={}), 401, "auth.required")


def test_pump_first_lists_the_pumps_open_sales_with_short_numbers(
    cashier: TestClient, make_sale: MakeSale
) -> None:
    on_two = make_sale(pump=2)
    make_sale(pump=1)
    answer = cashier.get("/api/v1/till/pumps/2/sales").json()
    assert [s["sale_id"] for s in answer["sales"]] == [on_two.sale_id]
    sale = answer["sales"][0]
    assert sale["sale_no"] == on_two.sale_id.replace("-", "")[-6:].upper()
    assert (sale["can_attach"], sale["can_undo"], sale["attach_no"]) == (True, False, 1)
    board = cashier.get("/api/v1/till/unattached?per_pump=1").json()["pumps"]
    assert [(p["pump"], len(p["sales"])) for p in board] == [(1, 1), (2, 1)]
    refused(cashier.get("/api/v1/till/pumps/0/sales"), 422, "request.invalid")
    refused(cashier.get("/api/v1/till/pumps/1/sales?limit=21"), 422, "request.invalid")


def test_undo_gives_the_points_back_once_and_the_sale_takes_the_right_member(
    cashier: TestClient, make_sale: MakeSale, member: MemberView, station: Station
) -> None:
    right = register_member(station, phone="13900139000", consent_channel="web", actor="t")
    sale = make_sale()
    attached = cashier.post(f"/api/v1/sales/{sale.sale_id}/member", json={"q": "京A12345"})
    assert attached.json()["sale"]["points"] == 40
    (row,) = cashier.get("/api/v1/till/sales").json()["sales"]
    assert (row["can_undo"], row["attach_no"]) == (True, 1)

    body = {"member_id": member.member_id, "attach_no": 1, "reason": "认错车"}
    first = cashier.post(f"/api/v1/sales/{sale.sale_id}/member/undo", json=body)
    again = cashier.post(f"/api/v1/sales/{sale.sale_id}/member/undo", json=body)
    assert first.status_code == again.status_code == 200, first.text
    assert (first.json()["created"], again.json()["created"]) == (True, False)
    assert first.json()["member"]["points"] == 0 and first.json()["taken_back"] == 40
    assert first.json()["sale"]["member_id"] is None

    attach_right = cashier.post(f"/api/v1/sales/{sale.sale_id}/member", json={"q": "13900139000"})
    assert attach_right.json()["member"]["points"] == 40
    late_retry = cashier.post(f"/api/v1/sales/{sale.sale_id}/member/undo", json=body)
    assert late_retry.json()["created"] is False  # the right member keeps the sale
    assert late_retry.json()["sale"]["member_id"] == right.member_id
    other = {"member_id": member.member_id}
    refused(
        cashier.post(f"/api/v1/sales/{sale.sale_id}/member/undo", json=other | {"attach_no": 2}),
        409,
        "detach.member_changed",
    )


def test_parallel_undo_presses_undo_once(
    sign_in: SignIn, make_sale: MakeSale, member: MemberView, station: Station
) -> None:
    tills = [sign_in("alice"), sign_in("mia")]  # the cashier who attached, and a manager
    sale = make_sale()
    tills[0].post(f"/api/v1/sales/{sale.sale_id}/member", json={"q": "13800138000"})
    body = {"member_id": member.member_id, "attach_no": 1, "reason": "认错车"}
    with ThreadPoolExecutor(6) as pool:
        answers = list(
            pool.map(
                lambda n: tills[n % 2].post(f"/api/v1/sales/{sale.sale_id}/member/undo", json=body),
                range(6),
            )
        )
    assert [a.status_code for a in answers] == [200] * 6
    assert sorted(a.json()["created"] for a in answers) == [False] * 5 + [True]


def test_undo_refusals(
    cashier: TestClient, make_sale: MakeSale, member: MemberView, clock: FakeClock
) -> None:
    sale = make_sale()
    path = f"/api/v1/sales/{sale.sale_id}/member/undo"
    first = {"member_id": member.member_id, "attach_no": 1}
    refused(cashier.post(path, json=first), 409, "detach.not_attached")
    refused(
        cashier.post("/api/v1/sales/nope/member/undo", json={"member_id": "m", "attach_no": 1}),
        404,
        "sale.not_found",
    )
    refused(cashier.post(path, json=first | {"reason": "x" * 201}), 422, "request.invalid")
    refused(cashier.post(path, json=first | {"attach_no": "1"}), 422, "request.invalid")
    missing = cashier.post(path, json={"member_id": member.member_id})
    refused(missing, 422, "request.invalid")  # required: a retry never undoes a later attach
    assert [f["loc"] for f in missing.json()["fields"]] == [["body", "attach_no"]]
    cashier.post(f"/api/v1/sales/{sale.sale_id}/member", json={"q": "13800138000"})
    clock.advance(minutes=31)
    refused(cashier.post(path, json=first), 409, "detach.window")
    no_csrf = cashier.post(path, json=first, headers={"X-CSRF-Token": ""})
    refused(no_csrf, 403, "csrf.invalid")


def test_the_last_four_digits_answer_a_pick_list_and_are_limited(
    cashier: TestClient, sign_in: SignIn, member: MemberView, station: Station, app: FastAPI
) -> None:
    register_member(
        station, phone="13900008000", plates=["粤BD12345"], consent_channel="web", actor="t"
    )
    pick = cashier.get("/api/v1/till/search?q=8000").json()
    assert pick["kind"] == "pick" and pick["member"] is None
    assert [p["phone_masked"] for p in pick["pick"]] == ["138****8000", "139****8000"]
    assert pick["pick"][0]["plates"] == ["京A12345"]
    one = cashier.get("/api/v1/till/search?q=京A12345").json()
    assert one["kind"] == "member" and one["member"]["member_id"] == member.member_id
    refused(cashier.get("/api/v1/till/search?q=4321"), 404, "member.not_found")
    refused(cashier.get("/api/v1/till/search?q=12"), 422, "phone.length")

    for _ in range(28):  # 30 in 5 minutes per login, 2 used above
        assert cashier.get("/api/v1/till/search?q=0000").status_code == 404
    message = refused(cashier.get("/api/v1/till/search?q=8000"), 429, "search.rate_limited")
    assert "完整手机号" in message
    assert sign_in("bob").get("/api/v1/till/search?q=8000").status_code == 200  # bob's own


def test_more_than_ten_matches_are_refused(cashier: TestClient, station: Station) -> None:
    for n in range(11):
        register_member(station, phone=f"138{n:04d}1234", consent_channel="web", actor="t")
    refused(cashier.get("/api/v1/till/search?q=1234"), 422, "search.too_many")


def test_receipts_as_json_and_printed_on_the_stations_printer(
    cashier: TestClient, make_sale: MakeSale, member: MemberView, station: Station, app: FastAPI
) -> None:
    sale = make_sale()
    refused(cashier.get(f"/api/v1/receipts/sale/{sale.sale_id}"), 409, "receipt.no_member")
    cashier.post(f"/api/v1/sales/{sale.sale_id}/member", json={"q": "13800138000"})
    shown = cashier.get(f"/api/v1/receipts/sale/{sale.sale_id}").json()["receipt"]
    assert shown["points_earned"] == 40 and shown["fuel"]["collect"] == "300.00"
    refused(cashier.get("/api/v1/receipts/coupon/x"), 422, "request.invalid")
    refused(cashier.post(f"/api/v1/receipts/sale/{sale.sale_id}/print"), 409, "printer.none")

    with FakeTcpPrinter() as fake:
        app.state.till_printer = TcpPrinter("127.0.0.1", fake.port, 2.0)
        printed = cashier.post(f"/api/v1/receipts/sale/{sale.sale_id}/print")
        assert printed.status_code == 200, printed.text
        (job,) = fake.wait_for(1)
    assert job == encode_receipt(make_receipt(station, "sale", sale.sale_id))
    assert printed.json()["bytes"] == len(job)
    app.state.till_printer = TcpPrinter("127.0.0.1", fake.port, 1.0)  # now closed
    refused(
        cashier.post(f"/api/v1/receipts/member/{member.member_id}/print"),
        503,
        "printer.unreachable",
    )
