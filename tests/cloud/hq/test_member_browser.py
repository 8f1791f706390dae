"""The members screen in Debian's chromium against a real `loyalpump cloud run`: search a
member with the keyboard, open the page, adjust points, dry-run an import with bad rows.
Screenshots (1366×768) go to test-artifacts/hq-screens/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser import browser  # noqa: F401 - the shared chromium fixture
from tests.cloud.chain import ADMIN_TOKEN, CloudProcess

from .members_seed import PHONE, seed

SCREENS = Path(__file__).resolve().parents[3] / "test-artifacts" / "hq-screens"
BAD_SHEET = (
    "手机号,车牌,姓名,期初积分\r\n"
    "13900000001,京B11111,王五,10\r\n"
    "12345,,坏号码,0\r\n"
    "13900000003,京AI2345,坏车牌,0\r\n"
    "13900000001,,重复,0\r\n"
)


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[CloudProcess, str]]:
    process = CloudProcess(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    process.start()
    try:
        ledger = process.open_ledger()
        try:
            seeded = seed(ledger, ledger.chain_keys)
        finally:
            ledger.close()
        yield process, seeded.member
    finally:
        process.stop()


def test_search_open_adjust_and_dry_run_an_import(
    browser: Browser,  # noqa: F811 - the fixture imported above
    cloud: tuple[CloudProcess, str],
    tmp_path: Path,
) -> None:
    process, member = cloud
    SCREENS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(
        viewport={"width": 1366, "height": 768},
        extra_http_headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "X-HQ-Actor": "alice"},
    )
    page = context.new_page()
    page.goto(f"{process.url}/hq/members")
    page.keyboard.press("/")  # the search box takes the focus
    expect(page.get_by_test_id("member-q")).to_be_focused()
    page.keyboard.type(PHONE)
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("member-link")).to_have_text(member)
    page.screenshot(path=str(SCREENS / "members-search.png"))

    page.get_by_test_id("member-link").click()
    expect(page.get_by_test_id("balance")).to_have_text("50")
    expect(page.get_by_test_id("plates")).to_have_text("京A12345")
    page.get_by_test_id("adjust-points").fill("250")
    page.get_by_test_id("adjust-reason").fill("客诉补偿")
    page.get_by_test_id("adjust-submit").click()
    expect(page.get_by_test_id("balance")).to_have_text("300")
    expect(page.get_by_test_id("table-adjustments")).to_contain_text("客诉补偿")
    page.screenshot(path=str(SCREENS / "member-page.png"))
    page.get_by_test_id("adjust-form").scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENS / "member-page-actions.png"))

    sheet = tmp_path / "members.csv"
    sheet.write_text(BAD_SHEET, encoding="utf-8")
    page.goto(f"{process.url}/hq/members/import")
    page.get_by_test_id("import-file").set_input_files(str(sheet))
    page.get_by_test_id("import-dry-run").click()
    problems = page.get_by_test_id("import-problems").locator("li")
    expect(problems).to_have_count(3)
    expect(problems.nth(0)).to_contain_text("row 3: phone")
    expect(problems.nth(1)).to_contain_text("row 4: plate 1")
    expect(problems.nth(2)).to_have_text("row 5: the same phone is on row 2")
    expect(page.get_by_test_id("import-apply")).to_be_disabled()
    page.screenshot(path=str(SCREENS / "member-import.png"))
    context.close()
