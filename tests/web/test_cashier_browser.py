"""The cashier page in a real browser (Debian's chromium driven by Playwright).

Real processes end to end: `loyalpump sim fdc` plays the forecourt, `loyalpump edge run`
records its sales and serves the page, and the browser does what a cashier does: log in,
watch a sale arrive live, find a member by plate, attach them, sign up a new member,
redeem, switch language and log out; a cashier cannot reach the manager's page. Every
screen is saved under test-output/screenshots/ to be looked at.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support import PROJECT_ROOT, RULESETS, free_port

LOYALPUMP = str(Path(sys.executable).with_name("loyalpump"))
SHOTS = PROJECT_ROOT / "test-output" / "screenshots"
pytestmark = pytest.mark.slow


def _cli(config: Path, *args: str) -> None:
    subprocess.run([LOYALPUMP, *args, "-c", str(config)], check=True, timeout=60)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A station with two users, a member with points and a simulated FDC; yields its URL."""
    work = tmp_path_factory.mktemp("site")
    fdc_port, web_port = free_port(), free_port()
    config = work / "station.toml"
    config.write_text(
        '[station]\nid = "S001"\ndata_dir = "data"\ntimezone = "Asia/Shanghai"\n\n'
        f'[web]\nhost = "127.0.0.1"\nport = {web_port}\n\n'
        f'[[drivers]]\nkind = "ifsf-fdc"\nname = "fdc"\nhost = "127.0.0.1"\nport = {fdc_port}\n'
        'products = { 1 = "92", 2 = "95", 3 = "0" }\n',
        encoding="utf-8",
    )
    _cli(config, "edge", "init")
    _cli(config, "edge", "rules", "load", str(RULESETS / "field-examples.json"))
    _cli(config, "edge", "user", "add", "--name", "wang", "--role", "cashier", "--pin", "2580")
    _cli(config, "edge", "user", "add", "--name", "zhao", "--role", "manager", "--pin", "1357")
    _cli(
        config,
        "edge",
        "member",
        "add",
        "--phone",
        "13800138000",
        "--plate",
        "京A12345",
        "--name",
        "<b>张三</b>",
    )
    _cli(
        config,
        "edge",
        "adjust",
        "--phone",
        "13800138000",
        "--points",
        "500",
        "--reason",
        "opening balance",
    )
    agent = subprocess.Popen(
        [LOYALPUMP, "edge", "run", "-c", str(config)],
        stdout=(work / "agent.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    sim = subprocess.Popen(
        [
            LOYALPUMP,
            "sim",
            "fdc",
            "--port",
            str(fdc_port),
            "--pumps",
            "2",
            "--sales",
            "6",
            "--interval",
            "3",
            "--seed",
            "3",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{web_port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                break
        except OSError:
            if time.monotonic() > deadline or agent.poll() is not None:
                raise AssertionError((work / "agent.log").read_text(errors="replace")) from None
            time.sleep(0.3)
    yield url
    sim.terminate()
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=15) == 0
    sim.wait(timeout=15)


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _login(page: Page, site: str, name: str, pin: str) -> None:
    page.goto(f"{site}/login")
    page.get_by_test_id("login-name").fill(name)
    page.get_by_test_id("login-pin").fill(pin)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("whoami")).to_contain_text(name)


def test_a_cashier_serves_a_member_end_to_end(site: str, browser: Browser) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{site}/login")
    expect(page.get_by_test_id("login-submit")).to_be_visible()
    _shot(page, "01-login")
    _login(page, site, "wang", "2580")
    expect(page.get_by_test_id("manager-link")).to_have_count(0)

    board = page.get_by_test_id("sales-list")
    sale_row = board.locator("[data-testid^='sale-']").first
    expect(sale_row).to_be_visible(timeout=20_000)  # arrives live, no reload
    _shot(page, "02-pumps-board")
    sale_test_id = sale_row.get_attribute("data-testid")
    assert sale_test_id is not None
    sale_id = sale_test_id.removeprefix("sale-")

    page.get_by_test_id("search-q").fill("京a·12345")
    page.get_by_test_id("search-q").press("Enter")
    card = page.get_by_test_id("member-card")
    expect(card).to_be_visible()
    expect(card).to_contain_text("<b>张三</b>")  # markup in a name is shown as text
    expect(page.get_by_test_id("member-plates")).to_contain_text("京A12345")
    _shot(page, "03-member-card")

    page.get_by_test_id(f"attach-{sale_id}").click()
    receipt = page.get_by_test_id("receipt")
    expect(receipt).to_be_visible()
    assert re.fullmatch(r"\d+", page.get_by_test_id("receipt-points").inner_text().strip())
    expect(page.get_by_test_id("receipt-step").first).to_be_visible()
    _shot(page, "04-receipt")

    page.get_by_test_id("search-q").fill("13800138000")
    page.get_by_test_id("search-q").press("Enter")
    expect(page.get_by_test_id("member-card")).to_be_visible()
    page.get_by_test_id("redeem-points").fill("100")
    page.get_by_test_id("redeem-preview").click()
    expect(page.get_by_test_id("redeem-value")).to_contain_text("1.00")
    page.get_by_test_id("redeem-confirm").click()
    expect(page.get_by_test_id("redeem-result")).to_be_visible()
    _shot(page, "05-redeemed")
    page.get_by_test_id("redeem-points").fill("999999")
    page.get_by_test_id("redeem-preview").click()  # beyond the balance: refused with the reason
    expect(page.get_by_test_id("redeem-error")).to_be_visible()

    page.get_by_test_id("search-q").fill("13912345678")
    page.get_by_test_id("search-q").press("Enter")
    expect(page.get_by_test_id("not-member")).to_be_visible()
    page.get_by_test_id("signup-link").click()
    page.get_by_test_id("signup-phone").fill("1391234567x")
    page.get_by_test_id("signup-consent").check()
    page.get_by_test_id("signup-submit").click()
    expect(page.get_by_test_id("error-phone")).to_be_visible()
    _shot(page, "06-signup-error")
    page.get_by_test_id("signup-phone").fill("139 1234 5678")
    page.get_by_test_id("signup-plate").fill("粤BD12345")
    page.get_by_test_id("signup-name").fill("李四")
    if not page.get_by_test_id("signup-consent").is_checked():
        page.get_by_test_id("signup-consent").check()
    page.get_by_test_id("signup-submit").click()
    expect(page.get_by_test_id("member-card")).to_contain_text("139****5678")
    _shot(page, "07-signed-up")

    page.get_by_test_id("lang-switch").click()
    expect(page.get_by_test_id("logout")).to_contain_text(re.compile("log ?out", re.IGNORECASE))
    _shot(page, "08-english")
    page.get_by_test_id("lang-switch").click()

    response = page.goto(f"{site}/manager")
    assert response is not None
    assert response.status == 403
    expect(page.get_by_test_id("forbidden")).to_be_visible()
    page.goto(f"{site}/")
    page.get_by_test_id("logout").click()
    expect(page.get_by_test_id("login-submit")).to_be_visible()
    page.close()


def test_a_manager_reaches_manual_entry(site: str, browser: Browser) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _login(page, site, "zhao", "1357")
    page.get_by_test_id("manager-link").click()
    expect(page.get_by_test_id("manager-page")).to_be_visible()
    expect(page.get_by_test_id("manual-submit")).to_be_visible()
    expect(page.get_by_test_id("reverse-submit")).to_be_visible()
    _shot(page, "09-manager")
    page.close()
