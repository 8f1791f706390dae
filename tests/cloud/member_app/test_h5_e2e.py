"""The member page end to end (issue 17), in Debian's chromium at 375x667 against a real
`loyalpump cloud run` on SQLite and PostgreSQL, fed by a station over HTTP: a new phone signs
up with consent; a member who filled up signs in with the code the `log` gateway wrote, sees
the balance, the points expiring in 60/90 days and the tier progress, checks in twice (the
second refused with a clear message), reads the sale's points receipt, asks for an invoice,
keeps plates, finds the station, rates a visit, reads the page in English, downloads their
data and deletes the account. Every screen is checked (tap targets, width, contrast) and
photographed into test-artifacts/member-screens/e2e-<backend>-<screen>.png."""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from cloud_sync.core.privacy import MemberKeys
from tests.browser import browser  # noqa: F401 - the shared chromium fixture
from tests.cloud.chain import CloudProcess
from tests.cloud.hq.e2e_support import StationLink
from tests.cloud.ledger.fake_station import FakeStation
from tests.support import RULESETS

from .h5_support import PHONE, shoot

MEMBER = "13900000001"
NEWCOMER = "13900000009"
TAX_ID = "91350100M000100Y43"
CHECKIN = {"points": 5, "streak": [{"days": 7, "bonus": 20}], "daily_cap": 1}


@dataclass
class Filled:
    """What the station sold the member: an old sale whose points expire in 60 days or
    less, and yesterday's."""

    old_points: int
    new_points: int
    station_name: str = "蓝海一站"


def _messages(cloud: CloudProcess) -> Path:
    return cloud.home / "data" / "member_messages.log"


def _code_for(cloud: CloudProcess, phone: str, after: int) -> str:
    """The newest code the `log` gateway wrote for `phone`, once there are more than `after`
    lines (the page's "send code" answers before the test reads the file)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        path = _messages(cloud)
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        if len(lines) > after:
            for line in reversed(lines):
                sent = json.loads(line)
                if str(sent["phone"]).endswith(phone):
                    found = re.search(r"(\d{6})", sent["text"])
                    assert found is not None, sent
                    return found.group(1)
        time.sleep(0.05)
    raise AssertionError(f"no code for {phone} in {_messages(cloud)}")


def _lines(cloud: CloudProcess) -> int:
    path = _messages(cloud)
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


def _set_up(cloud: CloudProcess, tmp_path: Path) -> Filled:
    """The sample rules with a check-in section, one station enrolled through the CLI, then
    the station registers the member and pushes two sales over HTTP."""
    cloud.write_config()
    rules = json.loads((RULESETS / "sample.json").read_text(encoding="utf-8"))
    rules["checkin"] = CHECKIN
    ruleset = tmp_path / "rules.json"
    ruleset.write_text(json.dumps(rules, ensure_ascii=False), encoding="utf-8")
    cloud.publish(ruleset)
    filled = Filled(0, 0)
    out = cloud.cli("station", "add", "--id", "S001", "--name", filled.station_name, "--json")
    token = str(json.loads(out)["token"])
    cloud.start()
    enrolled = httpx.post(
        f"{cloud.url}/api/v1/sync/enrol",
        json={"station_id": "S001", "station_keys": []},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert enrolled.status_code == 200, enrolled.text
    keys = enrolled.json()["member_keys"]
    member_keys = MemberKeys(
        keys["key_id"],
        base64.b64decode(keys["encryption_key"]),
        base64.b64decode(keys["index_key"]),
    )
    link = StationLink(cloud.url, token, FakeStation("S001", member_keys))
    now = datetime.now(UTC).replace(microsecond=0)
    old = now - timedelta(days=320)  # 12 months' expiry: these points go in about 45 days
    if old.weekday() == 1:  # never Tuesday's double points: the sums stay plain
        old -= timedelta(days=1)
    yesterday = now - timedelta(days=1)
    if yesterday.weekday() == 1:
        yesterday -= timedelta(days=1)
    mid = link.station.register(MEMBER, old)
    link.station.sale(mid, "40.00", old + timedelta(minutes=5), grade="92")
    filled.old_points = int(link.station.events[-1]["payload"]["points"])
    link.station.sale(mid, "25.50", yesterday, grade="95")
    filled.new_points = int(link.station.events[-1]["payload"]["points"])
    assert set(link.push()) == {"applied"}
    cloud.cli(
        "station", "locate", "--id", "S001", "--lat", "31.230416", "--lng", "121.473701",
        "--address", "上海市黄浦区人民大道 1 号",
    )  # fmt: skip
    return filled


def _sign_in(page: Page, cloud: CloudProcess, phone: str) -> None:
    """Through the form, as a person does: the number, "send code", the code from the log."""
    before = _lines(cloud)
    page.get_by_test_id("phone").fill(phone)
    page.get_by_test_id("send-code").click()
    expect(page.get_by_test_id("send-code")).to_be_disabled()
    expect(page.get_by_test_id("send-code")).to_contain_text("秒后重发")  # the 60 s countdown
    page.get_by_test_id("code").fill(_code_for(cloud, phone, before))
    page.get_by_test_id("sign-in").click()


def _newcomer(page: Page, cloud: CloudProcess, shot: Shots) -> None:
    page.goto("/m/")
    shot("login")
    _sign_in(page, cloud, NEWCOMER)
    expect(page.get_by_test_id("consent-box")).to_be_visible()
    expect(page.get_by_test_id("login-msg")).to_contain_text("还不是会员")
    page.get_by_test_id("sign-in").click()  # without the tick: asked again, nothing sent
    expect(page.get_by_test_id("login-msg")).to_have_text("注册前请阅读并勾选同意")
    shot("consent")
    page.get_by_test_id("consent").check()
    page.get_by_test_id("sign-in").click()
    expect(page.get_by_test_id("balance")).to_contain_text("0")
    expect(page.get_by_test_id("tier")).to_have_text("银卡")  # the sample rules' trial tier
    expect(page.locator(".tier-row")).to_contain_text("体验至")
    shot("home-newcomer")
    page.get_by_test_id("tab-me").click()
    page.get_by_test_id("sign-out").click()
    expect(page.get_by_test_id("login-msg")).to_have_text("已退出登录")
    assert page.evaluate("localStorage.getItem('lp.member.refresh')") is None


def _home_and_checkin(page: Page, cloud: CloudProcess, filled: Filled, shot: Shots) -> int:
    _sign_in(page, cloud, MEMBER)
    total = filled.old_points + filled.new_points
    expect(page.get_by_test_id("balance")).to_contain_text(f"{total:,}")
    expect(page.get_by_test_id("worth")).to_contain_text("¥")
    expect(page.get_by_test_id("expiring-30")).to_contain_text("0")
    expect(page.get_by_test_id("expiring-60")).to_contain_text(f"{filled.old_points:,}")
    expect(page.get_by_test_id("expiring-90")).to_contain_text(f"{filled.old_points:,}")
    expect(page.get_by_test_id("expiring-date")).to_have_count(1)
    expect(page.get_by_test_id("tier")).to_have_text("普通会员")
    # 25.50 of the 300 litres silver asks for in 90 days (the old sale is out of the window)
    expect(page.get_by_test_id("tier-progress")).to_have_text(
        "近 90 天内再加油274.50 升即可升级为银卡"
    )
    expect(page.get_by_test_id("freshness")).to_contain_text("几分钟内同步")
    shot("home")

    page.get_by_test_id("checkin").click()
    expect(page.get_by_test_id("toast")).to_have_text("签到成功，+5 积分")
    expect(page.get_by_test_id("balance")).to_contain_text(f"{total + 5:,}")
    page.get_by_test_id("checkin").click()
    expect(page.get_by_test_id("streak")).to_have_text("今天已经签到过了，明天再来")
    expect(page.get_by_test_id("checkin")).to_have_text("今日已签到")
    expect(page.get_by_test_id("balance")).to_contain_text(f"{total + 5:,}")
    shot("checkin-twice")
    return total + 5


def _sales_and_invoice(page: Page, filled: Filled, shot: Shots) -> None:
    page.get_by_test_id("tab-sales").click()
    sales = page.get_by_test_id("sale")
    expect(sales).to_have_count(2)
    expect(sales.first).to_contain_text(filled.station_name)
    expect(sales.first).to_contain_text("25.50 升")
    expect(sales.first).to_contain_text("95#")
    expect(sales.first).to_contain_text(f"+{filled.new_points:,}")
    sales.first.click()
    receipt = page.get_by_test_id("receipt").first
    expect(receipt).to_be_visible()
    expect(receipt).to_contain_text(f"{filled.new_points:,}")
    expect(receipt).to_contain_text("基础积分（95# 25.50 升）")
    shot("sales-receipt")

    page.get_by_test_id("request-invoice").first.click()
    page.get_by_test_id("buyer-name").fill("蓝海物流有限公司")
    page.get_by_test_id("tax-id").fill(TAX_ID[:-1] + "0")  # one character wrong
    page.get_by_test_id("email").fill("ap@example.com")
    page.get_by_test_id("invoice-submit").click()
    expect(page.get_by_test_id("invoice-msg")).to_contain_text("18 位统一社会信用代码")
    shot("invoice-check")
    page.get_by_test_id("tax-id").fill(TAX_ID.lower())  # the page takes lower case too
    page.get_by_test_id("invoice-submit").click()
    # Back on the list, read afresh: the sale shows its request, no second button.
    expect(page.get_by_test_id("screen-sales")).to_be_visible()
    expect(page.get_by_test_id("invoice-badge")).to_have_count(1)
    expect(sales.first.locator("xpath=..")).to_contain_text("发票已申请")
    expect(page.get_by_test_id("request-invoice")).to_have_count(1)  # the older sale's
    shot("sales-invoice-badge")
    page.get_by_test_id("to-invoices").click()
    expect(page.get_by_test_id("invoice")).to_have_count(1)
    expect(page.get_by_test_id("invoice-status")).to_have_text("已申请")
    expect(page.get_by_test_id("invoice").first).to_contain_text("蓝海物流有限公司")
    shot("invoices")


def _coupons_plates_stations(page: Page, shot: Shots) -> None:
    page.get_by_test_id("tab-me").click()
    shot("me")
    page.get_by_test_id("to-coupons").click()
    expect(page.get_by_test_id("coupons-empty")).to_have_text("暂无优惠券。优惠券会随活动发放。")
    shot("coupons")

    page.goto("/m/#/plates")
    page.get_by_test_id("plate-input").fill("京A1234")
    page.get_by_test_id("plate-add").click()
    expect(page.get_by_test_id("plate-msg")).to_contain_text("车牌号格式不正确")
    page.get_by_test_id("plate-input").fill("京a12345")
    page.get_by_test_id("plate-add").click()
    expect(page.get_by_test_id("plate")).to_have_count(1)
    expect(page.get_by_test_id("plate")).to_contain_text("京A12345")
    shot("plates")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_test_id("plate-remove").click()
    expect(page.get_by_test_id("plate")).to_have_count(1)  # cancelled: kept
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("plate-remove").click()
    expect(page.get_by_test_id("plate")).to_have_count(0)

    page.get_by_test_id("tab-stations").click()
    expect(page.get_by_test_id("stations-where")).to_have_text("按距离排序")
    expect(page.get_by_test_id("station")).to_have_count(1)
    expect(page.get_by_test_id("station")).to_contain_text("蓝海一站")
    expect(page.get_by_test_id("station")).to_contain_text("米")  # metres from the phone
    shot("stations")
    page.get_by_test_id("rate-station").click()
    page.locator("label").filter(has=page.get_by_test_id("star-4")).click()
    page.get_by_test_id("comment").fill("加油快，服务好")
    shot("feedback")
    page.get_by_test_id("feedback-submit").click()
    expect(page.get_by_test_id("toast")).to_have_text("感谢您的评价")


def _english(page: Page, balance: int, shot: Shots) -> None:
    """A new page load: the refresh token signs the member in again, in English."""
    page.goto("/m/?lang=en#/home")
    expect(page.get_by_test_id("balance")).to_contain_text(f"{balance:,}")
    expect(page.locator(".hero")).to_contain_text("My points")
    expect(page.get_by_test_id("expiring")).to_contain_text("in 90 days")
    shot("home-en")
    page.goto("/m/?lang=zh-CN#/data")


def _my_data(page: Page, cloud: CloudProcess, tmp_path: Path, shot: Shots) -> None:
    expect(page.get_by_test_id("export")).to_be_visible()
    with page.expect_download() as got:
        page.get_by_test_id("export").click()
    saved = tmp_path / got.value.suggested_filename
    got.value.save_as(saved)
    held = saved.read_text(encoding="utf-8")
    assert saved.suffix == ".json" and MEMBER in held and "25.50" in held, held[:400]
    page.get_by_test_id("marketing").check()
    expect(page.get_by_test_id("toast")).to_have_text("已同意接收活动信息")
    shot("data")

    page.get_by_test_id("delete-confirm").fill("删除")
    expect(page.get_by_test_id("delete-account")).to_be_disabled()
    page.get_by_test_id("delete-confirm").fill("注销")
    page.get_by_test_id("delete-account").click()
    expect(page.get_by_test_id("login-msg")).to_have_text("账户已注销")
    assert page.evaluate("localStorage.getItem('lp.member.refresh')") is None
    shot("deleted")
    # The phone is nobody's now: signing in again is a newcomer's signup.
    _sign_in(page, cloud, MEMBER)
    expect(page.get_by_test_id("consent-box")).to_be_visible()


class Shots:
    def __init__(self, page: Page, backend: str) -> None:
        self.page, self.backend = page, backend

    def __call__(self, screen: str) -> None:
        self.page.wait_for_load_state("networkidle")
        self.page.evaluate("window.scrollTo(0, 0)")
        shoot(self.page, f"e2e-{self.backend}-{screen}")


@pytest.mark.slow
def test_member_page_end_to_end(
    browser: Browser,  # noqa: F811
    cloud_db_url: str,
    tmp_path: Path,
) -> None:
    backend = "sqlite" if cloud_db_url.startswith("sqlite") else "pg"
    cloud = CloudProcess(tmp_path / "cloud", cloud_db_url)
    try:
        filled = _set_up(cloud, tmp_path)
        context = browser.new_context(
            viewport=PHONE,
            base_url=cloud.url,
            locale="zh-CN",
            has_touch=True,
            accept_downloads=True,
            geolocation={"latitude": 31.2304, "longitude": 121.4737},
            permissions=["geolocation"],
        )
        page = context.new_page()
        shot = Shots(page, backend)
        _newcomer(page, cloud, shot)
        balance = _home_and_checkin(page, cloud, filled, shot)
        _sales_and_invoice(page, filled, shot)
        _coupons_plates_stations(page, shot)
        _english(page, balance, shot)
        _my_data(page, cloud, tmp_path, shot)
        context.close()
    finally:
        cloud.stop()
