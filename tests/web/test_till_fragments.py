"""The till's fragments in process (a real store, the real app): what each answer shows
and refuses. The browser tests (test_till_browser.py) check where the answers land."""

from __future__ import annotations

import html
import re
from datetime import datetime
from decimal import Decimal

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from drivers.events import PumpStatus
from edge_agent.errors import ServiceError
from edge_agent.receipts.printer import TcpPrinter
from edge_agent.services.members import MemberView, member_view, register_member
from edge_agent.services.sales import SaleInput, attach_member, record_sale
from edge_agent.services.station import Station
from edge_agent.web.auth import COOKIE_NAME
from edge_agent.web.live import LiveBoard
from tests.fake_printer import FakeTcpPrinter
from tests.support import SHANGHAI, FakeClock
from tests.web.conftest import MakeSale, context_of, shows


def test_a_filling_pump_shows_its_running_litres_and_yuan(
    cashier: TestClient, live: LiveBoard, make_sale: MakeSale
) -> None:
    at = datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)
    live.update_pump(PumpStatus("dart", 3, "filling", 1, at, Decimal("23.45"), Decimal("175.88")))
    make_sale(pump=2)
    make_sale(pump=2)
    board = shows(cashier.get("/ui/pumps", params={"pump": 2}), 200, "pump-live-3", "pump-2")
    assert re.search(r"<b>23\.45</b> L · <b>¥175\.88</b>", board)
    assert "加油中" in board
    assert "待关联 2 笔" in board  # pump 2's sales still waiting for a member
    assert re.search(r'data-testid="pump-2" aria-pressed="true"', board)


def test_choosing_a_pump_lists_its_sales_still_waiting_for_a_member(
    cashier: TestClient, station: Station, member: MemberView, make_sale: MakeSale
) -> None:
    waiting = make_sale(pump=2)
    taken = make_sale(pump=2)
    other = make_sale(pump=1)
    attach_member(station, taken.sale_id, member.member_id, actor="test")
    listed = shows(cashier.get("/ui/sales", params={"pump": 2}), 200, f"attach-{waiting.sale_id}")
    assert taken.sale_id not in listed
    assert other.sale_id not in listed
    assert "2 号油机 · 待关联交易" in listed
    every = cashier.get("/ui/sales").text
    assert re.search(r'class="c-time">08:59:00<', every)  # seconds on every row
    assert f"#{waiting.sale_id.replace('-', '')[-6:].upper()}" in every  # the short number
    assert 'data-testid="sale-member-' + taken.sale_id + '">138****8000<' in every


def test_attach_asks_first_naming_the_member_and_the_sale(
    cashier: TestClient, station: Station, member: MemberView, make_sale: MakeSale
) -> None:
    sale = make_sale(litres="40.00", amount="300.00", pump=4)
    url = f"/ui/sales/{sale.sale_id}/confirm"
    ask = shows(cashier.get(url, params={"member_id": member.member_id}), 200, "attach-confirm")
    for shown in ("138****8000", "京A12345", "4 号油机", "08:59:00", "40.00 L", "¥300.00"):
        assert shown in ask, shown
    assert station.store is not None
    assert member_view(station, member.member_id).points == 0  # asking attaches nothing
    shows(cashier.get(url), 422, "attach-error")  # no member found yet: find one first


def test_the_attach_answer_collects_after_the_tier_discount_and_can_be_undone(
    cashier: TestClient, station: Station, member: MemberView, make_sale: MakeSale
) -> None:
    sale = make_sale(litres="40.00", amount="300.00")
    done = cashier.post(f"/ui/sales/{sale.sale_id}/attach", data={"member_id": member.member_id})
    receipt = shows(done, 200, "receipt", "receipt-due", "receipt-undo", "slip")
    assert re.search(r'data-testid="receipt-due">¥300\.00<', receipt)  # standard: no discount
    assert member_view(station, member.member_id).points == 40
    question = cashier.get(f"/ui/sales/{sale.sale_id}/detach")  # from the list: asks first
    assert "将收回 40 积分" in shows(question, 200, "detach-ask", "detach-confirm")
    undo = {"member_id": member.member_id, "attach_no": "1"}
    first = cashier.post(f"/ui/sales/{sale.sale_id}/detach", data=undo)
    assert "收回 40 积分" in shows(first, 200, "detach-result", f"attach-{sale.sale_id}")
    again = cashier.post(f"/ui/sales/{sale.sale_id}/detach", data=undo)  # a double click
    assert again.status_code == 200
    assert member_view(station, member.member_id).points == 0  # taken back once


def test_four_digits_give_a_pick_list_and_a_pick_opens_the_member(
    cashier: TestClient, station: Station, member: MemberView
) -> None:
    register_member(
        station, phone="13900008000", plates=["粤B12345"], consent_channel="t", actor="t"
    )
    picks = shows(cashier.get("/ui/lookup", params={"q": "8000"}), 200, "pick-1", "pick-2")
    assert "138****8000" in picks
    assert "139****8000" in picks
    assert "粤B12345" in picks
    chosen = cashier.get(f"/ui/pick/{member.member_id}")
    assert "138****8000" in shows(chosen, 200, "found", "member-card")


def test_redemption_against_the_bill_states_the_terms_and_what_to_collect(
    cashier: TestClient, rich_member: MemberView
) -> None:
    mid = rich_member.member_id  # 400 points; 100 points buy one yuan, at least 100 at once

    def preview(**form: str) -> str:
        answer = cashier.post("/ui/redeem/preview", data={"member_id": mid, **form})
        return shows(answer, 200, "redeem-confirm")

    most = preview(use="max", bill="3.00")
    assert re.search(r'name="points" value="300"', most)  # the bill caps it
    assert re.search(r'data-testid="redeem-to-collect">¥0\.00<', most)
    assert re.search(r'name="points" value="400"', preview(use="all"))
    over = cashier.post(
        "/ui/redeem/preview", data={"member_id": mid, "points": "300", "bill": "2.50"}
    )
    assert "最多可用 250 积分" in shows(over, 409, "redeem-error")
    below = cashier.post("/ui/redeem/preview", data={"member_id": mid, "points": "50"})
    assert "单次兑换至少 100 积分" in shows(below, 422, "redeem-error", "redeem-error-terms")
    bad_bill = cashier.post(
        "/ui/redeem/preview", data={"member_id": mid, "points": "100", "bill": "1e3"}
    )
    shows(bad_bill, 422, "redeem-error")
    collect = preview(points="150", bill="200")
    assert re.search(r'data-testid="redeem-to-collect">¥198\.50<', collect)
    assert "100 积分抵 ¥1 · 单次至少 100 积分" in collect


def test_manager_tools_refuse_a_cashier(cashier: TestClient, make_sale: MakeSale) -> None:
    sale = make_sale()
    shows(cashier.get("/ui/manual"), 403, "ui-error")
    shows(cashier.get(f"/ui/sales/{sale.sale_id}/reverse"), 403, "ui-error")
    shows(cashier.post("/ui/manual", data={"pump": "1"}), 403, "ui-error")
    assert 'data-testid="reverse-' not in cashier.get("/ui/sales").text


def test_a_refused_manual_sale_keeps_every_field(manager: TestClient) -> None:
    form = {"pump": "3", "grade": "95", "litres": "lots", "amount": "100", "member": "京A1"}
    refused = shows(manager.post("/ui/manual", data=form), 422, "manual-error", "manual-form")
    for value in ('value="3"', 'value="lots"', 'value="100"', 'value="京A1"'):
        assert value in refused
    assert re.search(r'<option value="95" selected>', refused)
    late = {**form, "litres": "20", "ended_at": "yesterday"}
    assert "结束时间" in shows(manager.post("/ui/manual", data=late), 422, "manual-error")
    done = manager.post("/ui/manual", data={**form, "litres": "20.00", "member": ""})
    assert re.search(r"已录入交易 #[0-9A-F]{6}", shows(done, 200, "manual-result"))


def test_pages_that_do_not_exist_or_fail_answer_in_chinese(
    app: FastAPI, cashier: TestClient
) -> None:
    missing = cashier.get("/no-such-page")
    assert missing.status_code == 404
    assert "找不到这个页面" in shows(missing, 404, "page-error", "page-home")
    assert "There is no such page" in cashier.get("/no-such-page", params={"lang": "en"}).text
    assert cashier.get("/api/v1/no-such-thing").json()["error"] == "http.404"

    def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    app.add_api_route("/api/v1/boom", boom)
    session = context_of(app).sessions.create("alice", "cashier")
    client = TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False)
    client.cookies.set(COOKIE_NAME, session.token)
    page = client.get("/boom", params={"lang": "zh-CN"})
    assert page.status_code == 500
    assert "服务器出错了" in page.text
    assert "a bug" not in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert client.get("/api/v1/boom").json()["error"] == "internal"


@pytest.mark.parametrize(
    ("field", "typed"),
    [
        ("grade", {"grade": "98"}),  # not in the rules in force
        ("litres", {"litres": "0"}),
        ("litres", {"litres": "5000", "amount": "37500.00"}),  # above a car's 200 L
        ("unit_price", {"amount": "1.00"}),  # 20 L for one yuan: the price is absurd
        ("amount", {"unit_price": "7.50", "amount": "160.00"}),  # 20 x 7.50 is 150, not 160
        ("ended_at", {"ended_at": "2026-11-15T09:00:00"}),  # 8 days before the clock
        ("ended_at", {"ended_at": "2026-11-23T10:00:00"}),  # an hour ahead of it
    ],
)
def test_the_page_refuses_absurd_manual_sales_with_the_services_line(
    manager: TestClient, station: Station, field: str, typed: dict[str, str]
) -> None:
    form = {"pump": "2", "grade": "92", "litres": "20.00", "amount": "150.00", **typed}
    ended = form.get("ended_at")
    sale = SaleInput(
        source="manual",
        pump=2,
        grade=form["grade"],
        litres=Decimal(form["litres"]),
        amount=Decimal(form["amount"]),
        unit_price=Decimal(form["unit_price"]) if "unit_price" in form else None,
        ended_at=station.now()
        if ended is None
        else datetime.fromisoformat(ended).replace(tzinfo=SHANGHAI),
        actor="user:mia",
    )
    with pytest.raises(ServiceError) as refused:  # what `edge sale add` prints
        record_sale(station, sale)
    answer = manager.post("/ui/manual", data=form, params={"lang": "en"})
    page = shows(answer, 422, "manual-error", "manual-form")
    assert html.escape(str(refused.value), quote=False) in page
    assert re.search(
        rf'<label class="field bad">[^<]*<[^>]*data-testid="manual-{field.replace("_", "-")}"', page
    )
    assert 'value="' + form.get("litres", "") + '"' in page  # every field as typed


def test_a_receipt_prints_on_the_stations_printer_from_the_answer_area(
    app: FastAPI, cashier: TestClient, member: MemberView, make_sale: MakeSale
) -> None:
    sale = make_sale()
    done = cashier.post(f"/ui/sales/{sale.sale_id}/attach", data={"member_id": member.member_id})
    assert f'hx-post="/ui/receipts/sale/{sale.sale_id}/print"' in done.text
    assert "has-printer" not in cashier.get("/").text  # no [printer]: the button stays hidden
    url = f"/ui/receipts/sale/{sale.sale_id}/print"
    assert "未配置小票打印机" in shows(cashier.post(url), 409, "print-error")
    with FakeTcpPrinter() as fake:
        app.state.till_printer = TcpPrinter("127.0.0.1", fake.port, 2.0)
        shows(cashier.post(url), 200, "printed")
        [job] = fake.wait_for(1)
        assert job.startswith(b"\x1b@")  # ESC/POS: initialise,
        assert job.endswith(b"\x1dV\x01")  # print, feed and cut
        assert sale.sale_id.replace("-", "")[-6:].upper().encode() in job  # the short number
    app.state.till_printer = TcpPrinter("127.0.0.1", fake.port, 1.0)  # now closed
    assert "无法连接" in shows(cashier.post(url), 503, "print-error")


def test_the_receipt_collects_the_bill_less_the_tier_discount(
    cashier: TestClient, clock: FakeClock, rich_member: MemberView, make_sale: MakeSale
) -> None:
    # 400 litres in the last 90 days make the member silver: ¥0.10 off a litre from now on
    clock.advance(minutes=5)
    sale = make_sale(litres="40.00", amount="300.00")
    data = {"member_id": rich_member.member_id}
    receipt = shows(cashier.post(f"/ui/sales/{sale.sale_id}/attach", data=data), 200, "receipt")
    assert re.search(r'data-testid="receipt-due">¥296\.00<', receipt)
    assert "¥300.00 − 等级优惠 ¥4.00（每升 ¥0.10）" in receipt
    assert "银卡" in receipt
    assert "tier-rank-1" in receipt  # the silver badge's colour
    assert "账单：交易 #" in receipt  # the customer panel now bills this sale
    # 440 points (¥4.40) against the ¥296.00 still due
    most = cashier.post("/ui/redeem/preview", data={**data, "use": "max", "sale_id": sale.sale_id})
    assert re.search(r'data-testid="redeem-to-collect">¥291\.60<', shows(most, 200, "redeem-ask"))
