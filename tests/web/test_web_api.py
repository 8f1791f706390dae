"""The cashier page over HTTP against a real station store: auth, CSRF, API, pages, SSE."""

from __future__ import annotations

import asyncio
import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from edge_agent.services.members import MemberView, register_member
from edge_agent.services.station import Station
from edge_agent.web.app import build_app
from edge_agent.web.live import LiveBoard
from tests.web.conftest import MakeSale, SignIn, context_of, pump, refused, shows

LOOKUP = "/api/v1/members/lookup"

# --------------------------------------------------------------------------- probes, 401


def test_healthz_and_metrics_need_no_session(anon: TestClient, make_sale: MakeSale) -> None:
    make_sale()
    health = anon.get("/healthz").json()
    assert (health["status"], health["store"]["writable"]) == ("ok", True)
    anon.get("/api/v1/pumps")
    text = anon.get("/metrics").text
    assert "loyalpump_sales_total 1" in text
    assert re.search(r"^loyalpump_outbox_backlog \d+(\.0)?$", text, re.M)
    assert 'route="/api/v1/*",status="401"} 1' in text
    assert 'route="/healthz",status="200"} 1' in text


@pytest.mark.parametrize(
    "call",
    [
        "GET /api/v1/pumps",
        "GET /api/v1/sales",
        "GET /api/v1/members/lookup?q=13800138000",
        "GET /api/v1/status",
        "GET /api/v1/events",
        "POST /api/v1/logout",
        "POST /api/v1/members",
        "POST /api/v1/sales/x/member",
        "POST /api/v1/redemptions",
        "POST /api/v1/sales",
        "POST /api/v1/sales/x/reversal",
        "GET /api/v1/no-such-thing",
    ],
)
def test_api_without_session_is_401(anon: TestClient, call: str) -> None:
    method, path = call.split()
    refused(anon.request(method, path, json={}), 401, "auth.required")


def test_pages_without_session_redirect_to_login(anon: TestClient) -> None:
    for path in ("/", "/members/new", "/manager"):
        assert anon.get(path).headers["location"] == "/login"
    fragment = anon.get("/ui/pumps")
    assert (fragment.status_code, fragment.headers["HX-Redirect"]) == (401, "/login")


# --------------------------------------------------------------------------- login, sessions


def test_login_sets_a_strict_httponly_cookie_and_answers_csrf(anon: TestClient) -> None:
    answer = anon.post("/api/v1/login", json={"name": "alice", "pin": "2468"})
    body = answer.json()
    assert (body["user"], body["role"], len(body["csrf_token"]) >= 32) == ("alice", "cashier", True)
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert anon.get("/api/v1/pumps").status_code == 200
    assert anon.post("/api/v1/logout", headers={"X-CSRF-Token": body["csrf_token"]}).is_success
    assert anon.get("/api/v1/pumps").status_code == 401


def test_login_form_redirects_home_and_shows_errors(anon: TestClient) -> None:
    page = shows(anon.get("/login"), 200, "login-name", "login-pin", "login-submit")
    assert 'type="password" data-testid="login-pin"' in page
    wrong = shows(anon.post("/login", data={"name": "alice", "pin": "0000"}), 401, "login-error")
    assert "用户名或密码错误" in wrong
    assert anon.post("/login", data={"name": "alice", "pin": "2468"}).headers["location"] == "/"
    assert anon.get("/").status_code == 200


def test_login_rate_limit_answers_429_with_a_reason(anon: TestClient, app: FastAPI) -> None:
    for _ in range(5):
        refused(
            anon.post("/api/v1/login", json={"name": "bob", "pin": "0000"}), 401, "login.failed"
        )
    limited = anon.post("/api/v1/login", json={"name": "bob", "pin": "1357"})
    assert "分钟" in refused(limited, 429, "login.rate_limited")
    assert "Retry-After" in limited.headers
    shows(anon.post("/login", data={"name": "bob", "pin": "1357"}), 429, "login-error")
    limiter = context_of(app).limiter
    now = limiter.clock()
    limiter.clock = lambda: now + 301
    assert anon.post("/api/v1/login", json={"name": "bob", "pin": "1357"}).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"name": "alice"},
        {"name": "alice", "pin": "2468", "role": "manager"},
        {"name": "a" * 10_000, "pin": "2468"},
        {"name": ["alice"], "pin": "2468"},
        {"name": "alice\x00", "pin": 2468},
    ],
)
def test_hostile_login_bodies_are_422(anon: TestClient, body: object) -> None:
    refused(anon.post("/api/v1/login", json=body), 422, "request.invalid")


def test_malformed_and_oversized_bodies_are_refused(anon: TestClient) -> None:
    json_type = {"content-type": "application/json"}
    broken = anon.post("/api/v1/login", content=b"{not json", headers=json_type)
    refused(broken, 422, "request.invalid")
    refused(anon.post("/api/v1/login", content=b"x" * 100_000), 413, "request.too_large")


def test_idle_session_expires_and_passive_refresh_does_not_extend(
    app: FastAPI, cashier: TestClient
) -> None:
    sessions = context_of(app).sessions
    now = [1000.0]
    sessions.clock = lambda: now[0]
    assert sessions.get(cashier.cookies.get("lp_session")) is not None  # active at t=1000
    now[0] += 600
    assert cashier.get("/api/v1/pumps").status_code == 200  # a board refresh is not activity
    now[0] += 301
    refused(cashier.get("/api/v1/sales"), 401, "auth.required")
    # The page says why: the session timed out (the cookie is still there, the session not).
    assert cashier.get("/").headers["location"] == "/login?expired=1"
    assert cashier.get("/ui/sales").headers["HX-Redirect"] == "/login?expired=1"
    shows(cashier.get("/login?expired=1"), 200, "session-expired")
    cashier.cookies.clear()
    assert cashier.get("/").headers["location"] == "/login"  # never logged in: no banner
    assert 'data-testid="session-expired"' not in cashier.get("/login").text


def test_idle_timeout_is_settable(station: Station) -> None:
    app = build_app(station, idle_timeout_s=0.1)
    client = TestClient(app, base_url="http://127.0.0.1")
    sessions = context_of(app).sessions
    client.cookies.set("lp_session", sessions.create("alice", "cashier").token)
    now = sessions.clock()
    sessions.clock = lambda: now + 0.5
    assert client.get("/api/v1/pumps").status_code == 401


# --------------------------------------------------------------------------- CSRF and roles


def test_state_changes_need_the_csrf_token(cashier: TestClient) -> None:
    body = {"phone": "13900139000", "consent": True}
    token = cashier.headers.pop("X-CSRF-Token")
    refused(cashier.post("/api/v1/members", json=body), 403, "csrf.invalid")
    wrong = cashier.post("/api/v1/members", json=body, headers={"X-CSRF-Token": "x" * 43})
    refused(wrong, 403, "csrf.invalid")
    form = cashier.post("/members/new", data={"phone": "13900139000", "consent": "on"})
    assert form.status_code == 403
    ok = cashier.post("/api/v1/members", json=body, headers={"X-CSRF-Token": token})
    assert ok.status_code == 201


def test_cashier_is_refused_manager_actions(cashier: TestClient, make_sale: MakeSale) -> None:
    sale = make_sale()
    manual = {"pump": 1, "grade": "92", "litres": "10", "amount": "75"}
    refused(cashier.post("/api/v1/sales", json=manual), 403, "auth.forbidden")
    reversal = cashier.post(f"/api/v1/sales/{sale.sale_id}/reversal", json={"reason": "x"})
    refused(reversal, 403, "auth.forbidden")
    shows(cashier.get("/manager"), 403, "forbidden")
    assert 'data-testid="manager-link"' not in cashier.get("/").text


def test_manager_records_and_reverses_with_a_reason(
    manager: TestClient, member: MemberView
) -> None:
    shows(manager.get("/"), 200, "manager-link")
    page = shows(manager.get("/manager"), 200, "manager-page", "manager-tools", "manager-to-till")
    assert "<form" not in page.split('data-testid="manager-page"')[1]  # the tools are on the till
    manual = {"pump": 2, "nozzle": 1, "grade": "92", "litres": "20.00", "amount": "150.00"}
    created = manager.post("/api/v1/sales", json=manual)
    assert created.status_code == 201
    sale_id = created.json()["sale"]["sale_id"]
    attached = manager.post(f"/api/v1/sales/{sale_id}/member", json={"q": "京A12345"})
    assert attached.json()["sale"]["points"] == 20
    reverse = f"/api/v1/sales/{sale_id}/reversal"
    refused(manager.post(reverse, json={"reason": ""}), 422, "reason.required")
    assert (
        manager.post(reverse, json={"reason": "test pump"}).json()["sale"]["status"] == "reversed"
    )
    refused(manager.post(reverse, json={"reason": "again"}), 409, "sale.reversed")
    assert manager.get(LOOKUP, params={"q": "13800138000"}).json()["member"]["points"] == 0


def test_the_old_manager_forms_are_gone(manager: TestClient, make_sale: MakeSale) -> None:
    """Manual entry and reversal live on the till only (its manual form has a retry key)."""
    sale = make_sale()
    form = {"pump": "3", "nozzle": "", "grade": "95", "litres": "10.5", "amount": "88.20"}
    assert manager.post("/manager/sale", data=form).status_code in (404, 405)
    done = {"sale_id": sale.sale_id, "reason": "测试"}
    assert manager.post("/manager/reverse", data=done).status_code in (404, 405)
    assert manager.get("/api/v1/sales").json()["sales"][0]["status"] == "recorded"


# --------------------------------------------------------------------------- pumps, sales, status


def test_pumps_and_board_follow_the_live_board(
    cashier: TestClient, live: LiveBoard, make_sale: MakeSale
) -> None:
    live.update_pump(pump(3, "filling"))
    pumps = cashier.get("/api/v1/pumps").json()["pumps"]
    assert [(p["fuelling_point"], p["state"]) for p in pumps] == [(3, "filling")]
    sale = make_sale(pump=1, litres="3.5", amount="25")
    board = shows(cashier.get("/ui/pumps"), 200, "pumps-board", "pump-3", "pump-1")
    assert "加油中" in board
    sales = shows(cashier.get("/ui/sales"), 200, f"sale-{sale.sale_id}", f"attach-{sale.sale_id}")
    assert "3.50 L" in sales  # quantities and yuan with two decimals
    assert "¥25.00" in sales


def test_sales_list_and_limit_validation(cashier: TestClient, make_sale: MakeSale) -> None:
    first, second = make_sale(), make_sale()
    assert len(cashier.get("/api/v1/sales", params={"limit": 1}).json()["sales"]) == 1
    ids = {s["sale_id"] for s in cashier.get("/api/v1/sales").json()["sales"]}
    assert ids == {first.sale_id, second.sale_id}
    for limit in ("0", "abc", "100000"):
        refused(cashier.get("/api/v1/sales", params={"limit": limit}), 422, "request.invalid")


def test_status_and_sync_indicator_say_offline_without_a_cloud(cashier: TestClient) -> None:
    status = cashier.get("/api/v1/status").json()
    assert status["online"] is False
    assert status["sync"]["backlog"] >= 0
    assert "离线" in shows(cashier.get("/ui/status"), 200, "sync-indicator")


# --------------------------------------------------------------------------- members


def test_lookup_found_not_found_and_invalid(cashier: TestClient, member: MemberView) -> None:
    card = cashier.get(LOOKUP, params={"q": "京a12345"}).json()["member"]
    assert (card["member_id"], card["phone_masked"]) == (member.member_id, "138****8000")
    assert (card["tier"], card["points"]) == ("standard", 0)
    refused(cashier.get(LOOKUP, params={"q": "13900139000"}), 404, "member.not_found")
    assert "11 位" in refused(cashier.get(LOOKUP, params={"q": "12345"}), 422, "phone.length")
    english = cashier.get(LOOKUP, params={"q": "12345", "lang": "en"})
    assert "11 digits" in refused(english, 422, "phone.length")
    refused(cashier.get(LOOKUP, params={"q": "1" * 200}), 422, "request.invalid")


def test_search_fragments(cashier: TestClient, member: MemberView) -> None:
    testids = ("member-card", "member-points", "member-tier", "member-plates", "member-expiring")
    assert "京A12345" in shows(
        cashier.get("/ui/lookup", params={"q": "13800138000"}), 200, *testids
    )
    unknown = cashier.get("/ui/lookup", params={"q": "京B54321"})
    assert "/ui/signup?plate=" in shows(unknown, 404, "not-member", "signup-link")
    bad = cashier.get("/ui/lookup", params={"q": "京AI2345"})
    assert "I 和 O" in shows(bad, 422, "search-error")


def test_register_member_api(cashier: TestClient) -> None:
    body = {"phone": "139 0013 9000", "plate": "粤BD12345", "name": "李四", "consent": True}
    created = cashier.post("/api/v1/members", json=body)
    assert created.status_code == 201
    assert created.json()["member"]["plates"] == ["粤BD12345"]
    refused(cashier.post("/api/v1/members", json=body), 409, "member.exists")
    no_consent = {"phone": "13700137000", "consent": False}
    refused(cashier.post("/api/v1/members", json=no_consent), 422, "consent.required")
    bad_phone = {"phone": "12345678901", "consent": True}
    refused(cashier.post("/api/v1/members", json=bad_phone), 422, "phone.invalid")
    bad_plate = {"phone": "13700137000", "plate": "京A1234", "consent": True}
    refused(cashier.post("/api/v1/members", json=bad_plate), 422, "plate.format")


@pytest.mark.parametrize(
    "body",
    [
        {"phone": "13700137000"},
        {"phone": "13700137000", "consent": True, "admin": True},
        {"phone": "1" * 5000, "consent": True},
        {"phone": "13700137000", "name": "x" * 65, "consent": True},
        {"phone": "13700137000", "plate": "<b>" * 20, "consent": True},
        {"phone": None, "consent": True},
        [1, 2, 3],
    ],
)
def test_hostile_member_bodies_are_422(cashier: TestClient, body: object) -> None:
    refused(cashier.post("/api/v1/members", json=body), 422, "request.invalid")


def test_signup_form_validates_next_to_the_field(cashier: TestClient) -> None:
    testids = ("signup-phone", "signup-plate", "signup-name", "signup-consent", "signup-submit")
    page = shows(cashier.get("/members/new", params={"phone": "13700137000"}), 200, *testids)
    assert 'value="13700137000"' in page
    bad = cashier.post("/members/new", data={"phone": "1370013", "plate": "XX123"})
    assert "11 位" in shows(bad, 422, "error-phone", "error-plate", "error-consent")
    assert "11 digits" in cashier.post("/members/new?lang=en", data={"phone": "1370013"}).text
    ok = cashier.post("/members/new", data={"phone": "13700137000", "consent": "on"})
    assert "137****7000" in shows(cashier.get(ok.headers["location"]), 200, "member-card")
    again = cashier.post("/members/new", data={"phone": "13700137000", "consent": "on"})
    shows(again, 409, "error-phone")


def test_member_name_with_markup_is_escaped(cashier: TestClient, station: Station) -> None:
    name = "<script>alert(1)</script>"
    register_member(station, phone="13600136000", name=name, consent_channel="web", actor="t")
    for html in (
        cashier.get("/ui/lookup", params={"q": "13600136000"}).text,
        cashier.get("/", params={"q": "13600136000"}).text,
    ):
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<script>alert(1)" not in html
    bad = cashier.post("/members/new", data={"phone": "<img src=x>", "name": "<i>x</i>"})
    assert "<img src=x>" not in bad.text
    assert "&lt;i&gt;x&lt;/i&gt;" in bad.text


# --------------------------------------------------------------------------- attach


def test_attach_by_phone_answers_the_receipt(
    cashier: TestClient, member: MemberView, make_sale: MakeSale
) -> None:
    sale = make_sale(litres="40.00")
    body = cashier.post(f"/api/v1/sales/{sale.sale_id}/member", json={"q": "13800138000"}).json()
    assert body["sale"]["member_id"] == member.member_id
    assert (body["receipt"]["points"], body["member"]["points"]) == (40, 40)
    assert body["receipt"]["steps"][0]["code"] == "base"
    unknown = cashier.post("/api/v1/sales/nope/member", json={"q": "13800138000"})
    refused(unknown, 404, "sale.not_found")
    stranger = cashier.post(f"/api/v1/sales/{sale.sale_id}/member", json={"q": "13900139000"})
    refused(stranger, 404, "member.not_found")
    hostile = cashier.post(f"/api/v1/sales/{sale.sale_id}/member", json={"q": "1", "x": 1})
    refused(hostile, 422, "request.invalid")


def test_two_cashiers_attach_the_same_sale_one_wins(
    sign_in: SignIn, station: Station, member: MemberView, make_sale: MakeSale
) -> None:
    other = register_member(station, phone="13500135000", consent_channel="web", actor="t")
    sale = make_sale()
    alice, bob = sign_in("alice"), sign_in("bob")
    first = alice.post(f"/api/v1/sales/{sale.sale_id}/member", json={"q": "13800138000"})
    assert first.status_code == 200
    second = bob.post(f"/api/v1/sales/{sale.sale_id}/member", json={"q": "13500135000"})
    assert "收银员" in refused(second, 409, "sale.already_attached")
    # the same race on the page: the loser sees the reason in the attach-error slot
    sale2 = make_sale()
    won = alice.post(f"/ui/sales/{sale2.sale_id}/attach", data={"member_id": member.member_id})
    won_html = shows(won, 200, "receipt", "receipt-points", "receipt-step", "receipt-discount")
    assert won_html.count('data-testid="receipt-step"') == 4
    assert 'hx-swap-oob="outerHTML"' in won_html  # the card and the row update with it
    lost = bob.post(f"/ui/sales/{sale2.sale_id}/attach", data={"member_id": other.member_id})
    assert f'data-testid="attach-{sale2.sale_id}"' not in shows(lost, 409, "attach-error")
    listed = shows(bob.get("/ui/sales"), 200, f"sale-{sale2.sale_id}")
    assert f'data-testid="attach-{sale2.sale_id}"' not in listed


def test_attach_without_a_member_card_is_explained(
    cashier: TestClient, make_sale: MakeSale
) -> None:
    sale = make_sale()
    shows(cashier.post(f"/ui/sales/{sale.sale_id}/attach", data={}), 422, "attach-error")


# --------------------------------------------------------------------------- redeem


def test_redeem_api_books_once_and_refuses_beyond_balance(
    cashier: TestClient, rich_member: MemberView
) -> None:
    body = {"member_id": rich_member.member_id, "points": 300, "redemption_id": "r-0000001"}
    done = cashier.post("/api/v1/redemptions", json=body)
    assert done.status_code == 201
    assert done.json()["redemption"]["value"] == "3.00"
    assert done.json()["redemption"]["balance_after"] == 100
    assert cashier.post("/api/v1/redemptions", json=body).json()["created"] is False  # a retry
    too_much = {"member_id": rich_member.member_id, "points": 200}
    refused(cashier.post("/api/v1/redemptions", json=too_much), 409, "points.insufficient")
    for points in (0, -5, "100", 1.5, True):
        bad = {"member_id": rich_member.member_id, "points": points}
        refused(cashier.post("/api/v1/redemptions", json=bad), 422, "request.invalid")


def test_redeem_preview_then_confirm_on_the_card(
    cashier: TestClient, rich_member: MemberView
) -> None:
    mid = rich_member.member_id
    beyond = cashier.post("/ui/redeem/preview", data={"member_id": mid, "points": "500"})
    assert "可用 400" in shows(beyond, 409, "redeem-error")
    preview = cashier.post("/ui/redeem/preview", data={"member_id": mid, "points": "200"})
    assert re.search(r'data-testid="redeem-value">2\.00<', shows(preview, 200, "redeem-confirm"))
    rid = re.search(r'name="redemption_id" value="([^"]+)"', preview.text)
    assert rid is not None
    form = {"member_id": mid, "points": "200", "redemption_id": rid.group(1)}
    confirmed = shows(cashier.post("/ui/redeem/confirm", data=form), 200, "redeem-result")
    assert re.search(r'data-testid="member-points">200<', confirmed)
    twice = cashier.post("/ui/redeem/confirm", data=form)  # a double click books once
    assert re.search(r'data-testid="member-points">200<', twice.text)
    garbage = cashier.post("/ui/redeem/preview", data={"member_id": mid, "points": "abc"})
    shows(garbage, 422, "redeem-error")


# --------------------------------------------------------------------------- language, page


def test_language_switch_renders_english_and_sticks(cashier: TestClient) -> None:
    chinese = cashier.get("/").text
    assert 'lang="zh-CN"' in chinese
    assert "退出" in chinese
    assert "会员查询" in chinese
    assert 'data-testid="lang-switch" href="/?lang=en"' in chinese
    english = cashier.get("/", params={"lang": "en"})
    assert "Log out" in english.text
    assert "Member search" in english.text
    assert "lang=en" in english.headers["set-cookie"]
    assert "Log out" in cashier.get("/").text  # the cookie keeps it
    assert "退出" in cashier.get("/", params={"lang": "zh-CN"}).text


def test_cashier_screen_contract_and_local_assets(cashier: TestClient) -> None:
    home = cashier.get("/")
    testids = ("whoami", "sync-indicator", "lang-switch", "logout", "pumps-board", "sales-list")
    html = shows(home, 200, *testids)
    assert re.search(r'<input name="q" data-testid="search-q"[^>]*autofocus', html)
    assert "alice · 收银员" in html
    assert "http://" not in html
    assert "https://" not in html
    assert "script-src 'self'" in home.headers["content-security-policy"]
    for asset in ("/static/htmx-2.0.11.min.js", "/static/app.js", "/static/app.css"):
        assert cashier.get(asset).status_code == 200
    assert "Noto Sans CJK SC" in cashier.get("/static/app.css").text
    assert "EventSource" in cashier.get("/static/app.js").text


def test_logout_form_ends_the_session(cashier: TestClient) -> None:
    token = cashier.headers.pop("X-CSRF-Token")
    assert cashier.post("/logout", data={"csrf_token": token}).headers["location"] == "/login"
    assert cashier.get("/api/v1/pumps").status_code == 401


# --------------------------------------------------------------------------- events


def test_events_stream_sends_board_changes(
    app: FastAPI, cashier: TestClient, live: LiveBoard
) -> None:
    context_of(app).sse_keepalive_s = 0.05
    seen: list[str] = []
    with cashier.stream("GET", "/api/v1/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("event:"):
                seen.append(line.split(":", 1)[1].strip())
                if seen == ["ready"]:
                    live.update_pump(pump(1, "calling"))
                else:
                    break
    assert seen == ["ready", "pumps"]


def test_live_board_coalesces_and_closes() -> None:
    async def scenario() -> list[str]:
        board = LiveBoard()
        got: list[str] = []

        async def listen() -> None:
            async for name in board.subscribe():
                got.append(name)

        task = asyncio.create_task(listen())
        await asyncio.sleep(0)
        for state in ("calling", "filling", "completed"):
            board.update_pump(pump(1, state))
        board.sale_recorded("s1")
        await asyncio.sleep(0.01)
        assert board.pumps()[0].state == "completed"
        board.close()
        await asyncio.wait_for(task, 1)
        assert board.subscriber_count() == 0
        return got

    assert asyncio.run(scenario()) == ["pumps", "sale"]
