"""Signing in to the HQ console in a real browser (Debian's chromium, headless): the form,
the who-box, the users and audit screens, signing out. Screenshots at 1366x768 go to
test-artifacts/hq-screens/ to be looked at."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support import free_port

from .support import PASSWORDS, console

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "hq-screens"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "install Debian's chromium (.ci/run does)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield launched
        launched.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """The console served by uvicorn on a free port, over a SQLite ledger."""
    with console(tmp_path, f"sqlite:///{tmp_path / 'cloud.sqlite3'}") as hq:
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(hq.app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "the console did not start"
            time.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def test_sign_in_see_who_you_are_manage_users_and_sign_out(site: str, browser: Browser) -> None:
    page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    page.goto(f"{site}/hq/users")
    expect(page).to_have_url(f"{site}/hq/login?next=%2Fhq%2Fusers")
    expect(page.get_by_role("heading", name="总部控制台登录")).to_be_visible()
    page.get_by_label("用户名").fill("alice")
    page.get_by_label("密码").fill("not-her-password")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("login-message")).to_have_text("用户名或密码错误。")
    _shot(page, "login")
    page.get_by_label("用户名").fill("alice")
    page.get_by_label("密码").fill(PASSWORDS["alice"][1])
    page.get_by_test_id("login-submit").click()
    expect(page).to_have_url(f"{site}/hq/users")
    expect(page.get_by_test_id("who")).to_have_text("alice · 管理员")
    expect(page.get_by_test_id("nav-users")).to_have_attribute("aria-current", "page")
    page.locator('[data-testid="user-add"] input[name="name"]').fill("newcomer")
    page.locator('[data-testid="user-add"] select[name="role"]').select_option("marketer")
    page.locator('[data-testid="user-add"] button').click()
    expect(page.get_by_test_id("users-notice")).to_contain_text("已添加 newcomer")
    expect(page.get_by_test_id("user-newcomer")).to_contain_text("市场")
    _shot(page, "users")
    page.get_by_test_id("nav-audit").click()
    expect(page).to_have_url(f"{site}/hq/audit")
    expect(page.get_by_test_id("table-audit")).to_contain_text("user.add")
    expect(page.get_by_test_id("table-audit")).to_contain_text("newcomer")
    _shot(page, "audit")
    page.get_by_test_id("logout").click()
    expect(page).to_have_url(f"{site}/hq/login")
    page.goto(f"{site}/hq/audit")
    expect(page).to_have_url(f"{site}/hq/login?next=%2Fhq%2Faudit")
    page.close()
