"""Signing in to the HQ console in a real browser (Debian's chromium, headless): the form,
the who-box, the users and audit screens, signing out. Screenshots at 1366x768 go to
test-artifacts/hq-screens/ to be looked at."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import browser, serve_in_thread  # noqa: F401 - the shared chromium fixture

from .support import PASSWORDS, console

SHOTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "hq-screens"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """The console served by uvicorn on a free port, over a SQLite ledger."""
    with (
        console(tmp_path, f"sqlite:///{tmp_path / 'cloud.sqlite3'}") as hq,
        serve_in_thread(hq.app, lifespan="auto", start_s=20) as url,
    ):
        yield url


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def test_sign_in_see_who_you_are_manage_users_and_sign_out(
    site: str,
    browser: Browser,  # noqa: F811 - the fixture imported above
) -> None:
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
