"""The member page in Debian's chromium at 375x667, served by the cloud app on a real server:
the sign-in works from the HTML alone, a revisit fetches none of the page's files, the
page works on a throttled Fast 3G link, the form checks what is typed in both languages, and
every brand colour stays readable. The timed figure is benchmarks/member_h5.py's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from benchmarks.member_h5 import FAST_3G, static_requests
from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.cloud.server.app import build_cloud_app
from cloud_sync.cloud.server.settings import CloudSettings
from cloud_sync.core.privacy import MemberKeys
from cloud_sync.core.signing import generate_signing_key
from tests.browser import browser, serve_in_thread  # noqa: F401 - the shared chromium fixture

from .h5_support import PHONE, shoot
from .sign_in_support import last_code

READY = "() => document.documentElement.dataset.ready === '1'"
SIGN_IN_LIVE = """() => document.documentElement.dataset.signin === "1"
    && !document.querySelector("[data-testid=send-code]").disabled"""
NEWCOMER = "13900000077"
LONG_NAME = "壳牌加油站会员中心华东区域超长名称"  # 18 of the 40 characters allowed


def _served(tmp_path: Path, **member_app: Any) -> Iterator[str]:
    keys = MemberKeys.generate("chain-h5-browser")
    settings = CloudSettings.model_validate(
        {
            "cloud": {
                "data_dir": str(tmp_path / "cloud"),
                "admin_token": "h5-browser-token-0123456",
            },
            "member_app": member_app,
        }
    )
    ledger = CloudLedger.open(f"sqlite:///{tmp_path}/cloud.sqlite3", chain_keys=keys)
    signing_key = generate_signing_key()
    app = build_cloud_app(settings, ledger=ledger, signing_key=signing_key, chain_keys=keys)
    try:
        with serve_in_thread(app) as url:
            yield url
    finally:
        ledger.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    yield from _served(tmp_path)


def _page(browser: Browser, url: str, locale: str = "zh-CN") -> Page:  # noqa: F811
    context = browser.new_context(viewport=PHONE, base_url=url, locale=locale, has_touch=True)
    return context.new_page()


def test_the_sign_in_works_before_any_file_has_arrived(
    browser: Browser,  # noqa: F811
    site: str,
    tmp_path: Path,
) -> None:
    """The HTML alone signs a member in (files refused); a returning member whose screens
    arrive late sees "loading", then home as soon as they are in."""
    page = _page(browser, site)
    page.route("**/m/static/**", lambda route: route.abort())  # no file at all
    page.goto("/m/")
    page.wait_for_function(SIGN_IN_LIVE)
    expect(page.get_by_test_id("brand-name")).to_have_text("加油会员")
    page.get_by_test_id("phone").fill(NEWCOMER)
    page.get_by_test_id("send-code").click()
    expect(page.get_by_test_id("login-msg")).to_have_text("验证码已发送，5 分钟内有效")
    expect(page.get_by_test_id("code")).to_be_focused()
    shoot(page, "login-html-only")
    page.get_by_test_id("code").fill(last_code(tmp_path / "cloud", NEWCOMER))
    page.get_by_test_id("sign-in").click()
    page.get_by_test_id("consent").check()  # a newcomer: the consent, then the sign-up
    page.get_by_test_id("sign-in").click()
    expect(page.get_by_test_id("app-missing")).to_contain_text("页面没有完整载入")
    assert page.evaluate("document.documentElement.dataset.ready") is None

    page.unroute("**/m/static/**")
    held: list[Route] = []

    def hold(route: Route) -> None:  # (not `held.append`: playwright marks its handlers)
        held.append(route)

    page.route("**/m/static/**", hold)  # the files on their way, for now
    page.goto("/m/", wait_until="commit")
    expect(page.get_by_test_id("app-loading")).to_be_visible()  # signed in by the refresh
    assert held, "the deferred files were asked for"
    for route in held:
        route.continue_()
    expect(page.get_by_test_id("balance")).to_contain_text("0")
    assert page.url.endswith("/m/#/home")
    page.context.close()


def test_a_revisit_fetches_none_of_the_page_s_files_even_on_fast_3g(
    browser: Browser,  # noqa: F811
    site: str,
) -> None:
    page = _page(browser, site)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", dict(FAST_3G))
    page.goto("/m/")
    page.wait_for_function(READY, timeout=30_000)
    expect(page.get_by_test_id("send-code")).to_be_enabled()
    page.wait_for_load_state("load")
    first = static_requests(site)
    assert first >= 4  # two scripts, the style and the logo
    page.goto("about:blank")
    page.goto("/m/")
    page.wait_for_function(READY, timeout=30_000)
    page.wait_for_load_state("load")
    assert static_requests(site) == first
    page.context.close()


def test_the_form_checks_the_phone_and_code_before_asking(browser: Browser, site: str) -> None:  # noqa: F811
    page = _page(browser, site)
    page.goto("/m/")
    page.wait_for_function(READY)
    page.get_by_test_id("phone").fill("1234")
    page.get_by_test_id("send-code").click()
    expect(page.get_by_test_id("login-msg")).to_have_text("请输入 11 位手机号")
    expect(page.get_by_test_id("phone")).to_be_focused()
    page.get_by_test_id("phone").fill("139 0000 0001")
    page.get_by_test_id("code").fill("12")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("login-msg")).to_have_text("请输入 6 位验证码")
    shoot(page, "login-check")
    page.context.close()

    english = _page(browser, site, locale="en-US")  # the browser's language
    english.goto("/m/")
    english.wait_for_function(READY)
    expect(english.get_by_test_id("sign-in")).to_have_text("Sign in / sign up")
    english.get_by_test_id("send-code").click()
    expect(english.get_by_test_id("login-msg")).to_have_text("Enter your 11-digit mobile number")
    shoot(english, "login-en")
    english.get_by_test_id("lang").click()
    expect(english.locator("html")).to_have_attribute("lang", "zh-CN")
    english.context.close()


@pytest.mark.parametrize(
    ("brand", "shot"),
    [
        ({}, "login-default"),
        ({"brand_name": LONG_NAME, "brand_colour": "#FFD100"}, "login-yellow"),
        ({"brand_name": "Blue Sea Energy", "brand_colour": "#0057B8"}, "login-blue"),
    ],
)
def test_every_brand_keeps_the_screen_readable(
    browser: Browser,  # noqa: F811
    tmp_path: Path,
    brand: dict[str, str],
    shot: str,
) -> None:
    for url in _served(tmp_path, **brand):
        page = _page(browser, url)
        page.goto("/m/")
        page.wait_for_function(READY)
        expect(page.get_by_test_id("brand-logo")).to_have_js_property("complete", True)
        assert page.get_by_test_id("brand-logo").evaluate("img => img.naturalWidth") > 0
        shoot(page, shot)  # tap targets, width and contrast checked first
        page.context.close()


USCC = [  # (code, valid): real codes' shape, one character changed, wrong letters
    ("91350100M000100Y43", True),
    ("91110000600037341L", True),
    ("91350100M000100Y44", False),
    ("91110000600037341I", False),
    ("9135010OM000100Y43", False),
    ("91350100M000100Y4", False),
]


def test_the_tax_id_check_in_the_page(browser: Browser, site: str) -> None:  # noqa: F811
    page = _page(browser, site)
    page.goto("/m/")
    page.wait_for_function(READY)
    seen = page.evaluate("codes => codes.map(window.lpMember.usccValid)", [c for c, _ in USCC])
    assert seen == [valid for _, valid in USCC]
    page.context.close()
