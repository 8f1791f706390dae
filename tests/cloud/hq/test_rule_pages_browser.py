"""The rule-set editor in Debian's chromium against a real `loyalpump cloud run`: change an
earn rate in the form and see the JSON follow, see a bad value's fault beside its field,
save, run a backtest and watch its progress reach done. Screenshots (1366x768) go to
test-artifacts/hq-screens/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.cloud.server.keyfiles import load_or_create_chain_keys
from tests.browser import browser  # noqa: F401 - the shared chromium fixture
from tests.cloud.chain import ADMIN_TOKEN, CloudProcess

from .seed import seed_month

SCREENS = Path(__file__).resolve().parents[3] / "test-artifacts" / "hq-screens"


@pytest.fixture
def cloud(tmp_path: Path, cloud_db_url: str) -> Iterator[CloudProcess]:
    process = CloudProcess(tmp_path / "cloud", cloud_db_url)
    process.write_config()
    keys = load_or_create_chain_keys(process.home / "data")
    ledger = CloudLedger.open(cloud_db_url, chain_keys=keys)
    try:
        seed_month(ledger, keys, sales=300)
    finally:
        ledger.close()
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def page(browser: Browser, cloud: CloudProcess) -> Iterator[Page]:  # noqa: F811
    context = browser.new_context(
        viewport={"width": 1366, "height": 768},
        base_url=cloud.url,
        extra_http_headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "X-HQ-Actor": "mia"},
    )
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()


def _shot(page: Page, name: str, backend: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / f"rules-{name}-{backend}.png"), full_page=True)


def test_edit_validate_save_and_backtest_in_the_browser(page: Page, cloud_db_url: str) -> None:
    backend = "sqlite" if cloud_db_url.startswith("sqlite") else "pg"
    page.goto("/hq/rules/new")
    expect(page.get_by_test_id("validity")).to_have_text("有效")
    rate = page.get_by_test_id("field-$.earn[0].points_per_litre")
    rate.fill("2")
    expect(page.get_by_test_id("rule-json")).to_have_value(
        # the JSON view follows the form
        re.compile(r'"grade": "92",\s*"points_per_litre": "2"')
    )
    rate.fill("abc")
    fault = page.locator('label[data-path="$.earn[0].points_per_litre"] .fault')
    expect(fault).not_to_be_empty()
    expect(page.get_by_test_id("faults")).to_contain_text("$.earn[0].points_per_litre")
    _shot(page, "editor-fault", backend)
    rate.fill("2")
    expect(page.get_by_test_id("validity")).to_have_text("有效")
    page.get_by_test_id("save").click()
    page.wait_for_url("**/hq/rules/drafts/*")
    expect(page.get_by_test_id("diff")).to_contain_text("$.earn[0].points_per_litre")
    page.get_by_test_id("bt-from").fill("2026-02-01")
    page.get_by_test_id("bt-to").fill("2026-03-01")
    page.get_by_test_id("bt-start").click()
    expect(page.get_by_test_id("bt-summary")).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("approve-why")).to_have_text("这是您起草的，须由另一位管理员审批")
    expect(page.locator("#fig-bt-grade [data-drawn]")).to_have_count(1)
    _shot(page, "draft-backtest", backend)
    page.goto(page.url + "?lang=en")
    expect(page.get_by_test_id("approve-why")).to_have_text(
        "you drafted this: another admin approves it"
    )
    _shot(page, "draft-backtest-en", backend)
    page.get_by_test_id("backtest-panel").screenshot(
        path=str(SCREENS / f"rules-backtest-panel-en-{backend}.png")
    )
    page.goto("/hq/rules")
    expect(page.get_by_test_id("drafts")).to_contain_text("done")
    _shot(page, "list", backend)
