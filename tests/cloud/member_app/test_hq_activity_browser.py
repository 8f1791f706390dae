"""The invoice queue and the feedback screen in Debian's chromium, signed in through the form
as an admin: file the waiting requests, issue one by keyboard, reject one; read feedback per
station. Screenshots under test-artifacts/hq-screens/ (1366×768, zh-CN and English)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from cloud_sync.cloud.ledger.tax_platform import outbox_of
from tests.browser import browser, serve_in_thread  # noqa: F401 - the shared chromium fixture
from tests.cloud.hq.support import add_user

from .conftest import MemberApp
from .test_hq_invoices_feedback import _feedback, _requests

SCREENS = Path(__file__).resolve().parents[3] / "test-artifacts" / "hq-screens"
PASSWORD = "alice-password-1"

pytestmark = pytest.mark.usefixtures("cloud_db_url")


def _log_in(page: Page, path: str) -> None:
    page.goto(f"/hq/login?next={path}")
    page.get_by_test_id("login-name").fill("alice")
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"**{path}")


def test_the_invoice_queue_and_feedback_screens(
    browser: Browser,  # noqa: F811 - the fixture imported above
    mapp: MemberApp,
    cloud_db_url: str,
) -> None:
    backend = "pg" if cloud_db_url.startswith("postgresql") else "sqlite"
    SCREENS.mkdir(parents=True, exist_ok=True)
    company, person = _requests(mapp)
    _feedback(mapp)
    add_user(mapp.ledger, "alice", "admin", PASSWORD)
    with serve_in_thread(mapp.app) as url:
        context = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=url)
        page = context.new_page()
        _log_in(page, "/hq/invoices")
        expect(page.get_by_test_id("nav-invoices")).to_have_attribute("aria-current", "page")
        expect(page.get_by_test_id("count-requested")).to_contain_text("2")
        expect(page.get_by_test_id("count-unfiled")).to_contain_text("2")
        page.screenshot(path=str(SCREENS / f"invoices-1366-{backend}.png"), full_page=True)

        page.get_by_test_id("file-invoices").click()
        expect(page.get_by_test_id("invoices-notice")).to_contain_text("已交税务平台 2 张")
        assert len(list(outbox_of(mapp.settings.data_dir).glob("*.json"))) == 2

        row = page.get_by_test_id(f"issue-{company['sale_id']}")
        number = row.locator("input[name=invoice_no]")
        number.focus()
        page.keyboard.type("26442000000123456789")
        page.keyboard.press("Enter")  # the form submits from the keyboard
        expect(page.get_by_test_id("invoices-notice")).to_contain_text("已开具")
        expect(page.get_by_test_id(f"invoice-{company['sale_id']}")).to_contain_text(
            "26442000000123456789"
        )
        reject = page.get_by_test_id(f"reject-{person['sale_id']}")
        reject.locator("input[name=reason]").fill("个人抬头请填写全名")
        reject.locator("button").click()
        expect(page.get_by_test_id(f"invoice-{person['sale_id']}")).to_contain_text("已驳回")
        expect(page.get_by_test_id("count-requested")).to_contain_text("0")
        page.screenshot(path=str(SCREENS / f"invoices-decided-1366-{backend}.png"), full_page=True)
        page.goto("/hq/invoices?lang=en")
        expect(page.get_by_test_id("count-issued")).to_contain_text("Issued")
        page.screenshot(path=str(SCREENS / f"invoices-en-1366-{backend}.png"), full_page=True)

        page.goto("/hq/feedback?lang=zh-CN")
        expect(page.get_by_test_id("feedback-station-S002")).to_contain_text("4.50")
        page.get_by_test_id("feedback-station-S001").get_by_role("link").click()
        expect(page.get_by_test_id("table-feedback")).to_contain_text("排队太久")
        expect(page.get_by_test_id("table-feedback")).not_to_contain_text("很好")
        page.goto("/hq/feedback")
        page.screenshot(path=str(SCREENS / f"feedback-1366-{backend}.png"), full_page=True)
        context.close()
