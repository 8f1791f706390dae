"""The HQ console end to end (issue 16), in Debian's chromium against a real `loyalpump cloud
run` on SQLite and PostgreSQL, set up through the CLI and fed by stations over HTTP:
the auditor reads and downloads but changes nothing; the marketer drafts and backtests; one
admin approves, another publishes (never their own draft); the station pulls the new rules
and the console shows it; the audit names who did what. Every screen is photographed into
test-artifacts/hq-screens/e2e-<backend>-<screen>.png."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from playwright.sync_api import Browser, Page, Response, ViewportSize, expect

from cloud_sync.cloud.console.pages import fen_to_yuan
from tests.cloud.chain import CloudProcess
from tests.web.conftest import browser  # noqa: F401 - the shared chromium fixture

from .e2e_support import SCREENS, Chain, log_in, log_out, set_up_chain

SMALL: ViewportSize = {"width": 1366, "height": 768}
LARGE: ViewportSize = {"width": 1920, "height": 1080}


CHARTS_WITHOUT_TABLE_OR_DOWNLOADS = """() => [...document.querySelectorAll("[data-chart]")]
    .filter(chart => {
        const figure = chart.closest("[data-figure]");
        return !document.getElementById(chart.dataset.table) || !figure
            || !figure.querySelector("a[data-testid^=csv-]")
            || !figure.querySelector("a[data-testid^=xlsx-]");
    })
    .map(chart => chart.dataset.table)"""


class Shots:
    def __init__(self, page: Page, backend: str) -> None:
        self.page, self.backend = page, backend
        SCREENS.mkdir(parents=True, exist_ok=True)

    def __call__(self, screen: str) -> None:
        path = SCREENS / f"e2e-{self.backend}-{screen}.png"
        self.page.evaluate("window.scrollTo(0, 0)")  # the sticky header at the top
        lacking = self.page.evaluate(CHARTS_WITHOUT_TABLE_OR_DOWNLOADS)
        assert lacking == [], (screen, lacking)
        self.page.screenshot(path=str(path), full_page=True)

    def variants(self, screen: str) -> None:
        """The page at 1366x768 in zh-CN, at 1920x1080, and in English."""
        self(screen)
        self.page.set_viewport_size(LARGE)
        self(f"{screen}-1920")
        self.page.set_viewport_size(SMALL)
        self.switch_language("lang=en")
        self(f"{screen}-en")
        self.switch_language("lang=zh-CN")

    def switch_language(self, to: str) -> None:
        """Through the header's link, which keeps the page's query."""
        before = self.page.url
        self.page.get_by_test_id("lang").click()
        self.page.wait_for_url(lambda url: url != before and to in url)
        self.page.wait_for_load_state("networkidle")
        kept = [p for p in urlsplit(before).query.split("&") if p and not p.startswith("lang=")]
        assert all(p in self.page.url for p in kept), (before, self.page.url)


def _changes_offered(page: Page) -> list[str]:
    """The page's ways to change something: enabled buttons outside a GET form (a filter or
    a search only reads) and forms that post."""
    found: list[str] = page.evaluate(
        """() => [...document.querySelectorAll("main button:not([disabled]), main form")]
            .filter(el => el.tagName === "FORM"
                ? el.method === "post"
                : !(el.form && el.form.method === "get"))
            .map(el => el.dataset.testid || el.id || el.textContent.trim())"""
    )
    return found


def _auditor(page: Page, chain: Chain, shot: Shots, tmp_path: Path) -> None:
    page.goto("/hq/")
    page.wait_for_url("**/hq/login?next=%2Fhq%2F")
    shot("login")
    log_in(page, "audrey")
    expect(page.get_by_test_id("kpi-litres")).to_contain_text(f"{chain.litres_ml // 1000:,} L")
    expect(page.get_by_test_id("kpi-amount")).to_contain_text(fen_to_yuan(chain.amount_fen))
    expect(page.get_by_test_id("kpi-issued")).to_contain_text(f"{chain.points:,}")
    expect(page.get_by_test_id("kpi-new")).to_contain_text(str(len(chain.members)))
    expect(page.get_by_test_id("kpi-outstanding")).to_contain_text(f"{chain.points:,}")
    expect(page.locator('[data-drawn="1"]')).to_have_count(5)
    expect(page.get_by_test_id("stations-online")).to_contain_text("2")
    shot.variants("dashboard")

    page.keyboard.press("Tab")  # the keyboard: first a way past the header, then the nav
    expect(page.get_by_test_id("skip")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.get_by_test_id("nav-dashboard")).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_url("**/hq/")
    page.get_by_test_id("nav-liability").click()
    expect(page.get_by_test_id("kpi-outstanding")).to_contain_text(f"{chain.points:,}")
    expect(page.locator('[data-drawn="1"]')).to_have_count(1)
    shot("liability")
    with page.expect_download() as got:
        page.get_by_test_id("csv-rollforward").click()
    text = Path(got.value.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) > 1 and any(str(chain.points) in row for row in rows[1:]), rows
    with page.expect_download() as got:
        page.get_by_test_id("xlsx-rollforward").click()
    saved = tmp_path / got.value.suggested_filename
    got.value.save_as(saved)
    assert saved.suffix == ".xlsx"
    sheet = openpyxl.load_workbook(saved, read_only=True).active
    assert sheet is not None
    cells = list(sheet.iter_rows(values_only=True))
    assert any(chain.points in row for row in cells[1:]), cells  # a number, not text

    seen: dict[str, list[str]] = {}
    for path, screen in [
        ("/hq/sales", "sales"),
        ("/hq/reports/members", "reports-members"),
        ("/hq/stations", "stations"),
        ("/hq/stations/S001", "station-detail"),
        ("/hq/rules", "rules-before"),
        ("/hq/members", "members-auditor"),
        ("/hq/audit", "audit-auditor"),
        ("/hq/liability", "liability"),
        ("/hq/", "dashboard"),
    ]:
        page.goto(path)
        page.wait_for_load_state("networkidle")
        if screen in ("sales", "reports-members", "stations", "station-detail"):
            shot(screen)
        seen[path] = _changes_offered(page)
        if path == "/hq/sales":  # the language switch keeps the page's filters
            page.goto("/hq/sales?station=S001")
            shot.switch_language("lang=en")
            expect(page.get_by_test_id("station")).to_have_value("S001")
            shot.switch_language("lang=zh-CN")
    assert {p: o for p, o in seen.items() if o} == {}
    expect(page.get_by_test_id("nav-users")).to_have_count(0)
    csrf = page.locator("main").get_attribute("data-csrf") or ""
    forged = page.request.post(
        "/api/v1/hq/rules/drafts",
        data={"document": "{}"},
        headers={"X-CSRF-Token": csrf},
    )
    assert forged.status == 403, forged.text()
    log_out(page)


def _backtest_done(answer: Response) -> bool:
    if answer.request.method != "GET" or "/api/v1/hq/rules/backtests/" not in answer.url:
        return False
    state: dict[str, Any] = answer.json()
    return bool(state["status"] == "done" and state["done_sales"] == state["total_sales"] > 0)


def _marketer(page: Page, shot: Shots) -> str:
    log_in(page, "mia", "/hq/rules/new")
    rate = page.get_by_test_id("field-$.earn[0].points_per_litre")
    rate.fill("2")
    now = datetime.now(ZoneInfo("Asia/Shanghai")).replace(microsecond=0)
    page.get_by_test_id("field-$.effective_from").fill(now.isoformat())
    expect(page.get_by_test_id("validity")).to_have_text("有效")
    shot("rule-editor")
    page.get_by_test_id("save").click()
    page.wait_for_url("**/hq/rules/drafts/*")
    draft_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_test_id("diff")).to_contain_text("$.earn[0].points_per_litre")
    with page.expect_response(_backtest_done, timeout=30_000):  # the page's own polling
        page.get_by_test_id("bt-start").click()
    expect(page.get_by_test_id("bt-summary")).to_be_visible()
    expect(page.get_by_test_id("bt-diff")).not_to_have_text(re.compile(r"^\s*[+]?0\s*$"))
    expect(page.get_by_test_id("approve")).to_be_disabled()
    expect(page.get_by_test_id("approve-why")).to_have_text("仅管理员可操作")
    expect(page.get_by_test_id("publish")).to_be_disabled()
    expect(page.get_by_test_id("publish-why")).to_have_text("仅管理员可操作")
    shot.variants("rule-draft")
    log_out(page)
    return draft_id


def _admins(page: Page, draft_id: str, shot: Shots) -> None:
    log_in(page, "ada", f"/hq/rules/drafts/{draft_id}")
    page.get_by_test_id("approve").click()
    expect(page.get_by_test_id("draft-meta")).to_contain_text("审批 ada")
    shot("rule-draft-approved")
    log_out(page)

    log_in(page, "bo", "/hq/rules/new")
    page.get_by_test_id("field-$.earn[1].points_per_litre").fill("3")
    page.get_by_test_id("save").click()
    page.wait_for_url("**/hq/rules/drafts/*")
    expect(page.get_by_test_id("approve")).to_be_disabled()
    expect(page.get_by_test_id("approve-why")).to_have_text("这是您起草的，须由另一位管理员审批")
    shot("rule-draft-own")

    page.goto(f"/hq/rules/drafts/{draft_id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("publish").click()
    expect(page.get_by_test_id("draft-meta")).to_contain_text("已发布为版本 4 (bo)")


def _pulls_and_audit(page: Page, chain: Chain, shot: Shots) -> None:
    page.goto("/hq/rules")
    expect(page.get_by_test_id("pulls-4")).to_contain_text("已获取 0")
    link = chain.links["S001"]
    offered = link.pull()  # from the cursor it held: the new version comes
    assert 4 in [r["version"] for r in offered["rulesets"]]
    link.pull()  # the next page's cursor tells the cloud the station holds it
    page.reload()
    expect(page.get_by_test_id("pulls-4")).to_contain_text("已获取 1")
    expect(page.get_by_test_id("pulls-4")).to_contain_text("未获取 1")
    shot("rules")

    # Alt+1..9, 0 (headless chromium takes no access keys from synthetic key presses)
    keys = page.locator("header nav a").evaluate_all("links => links.map(a => a.accessKey)")
    # the screens added later took 9 and 0, so the keys people learnt stay where they were
    assert keys == ["1", "2", "3", "4", "5", "6", "9", "0", "7", "8"], keys
    page.get_by_test_id("nav-audit").click()
    audit = page.get_by_test_id("table-audit")
    # Who did what, by the actor and action cells (a row's before/after JSON names people too)
    actions = audit.locator("tbody tr").evaluate_all(
        "rows => rows.map(r => [r.cells[2].innerText, r.cells[3].innerText])"
    )
    assert actions.count(["ada", "rules.approve"]) == 1, actions
    assert actions.count(["bo", "rules.publish"]) == 1, actions
    shot("audit")

    page.get_by_test_id("nav-users").click()
    shot("users")
    page.goto("/hq/members?q=13900000001")
    page.get_by_test_id("member-link").first.click()
    page.wait_for_url(f"**/hq/members/{chain.members[0]}")
    shot("member")
    page.goto("/hq/members")
    shot("members")
    page.get_by_test_id("members-import").click()
    shot("member-import")


@pytest.mark.slow
def test_hq_console_end_to_end(
    browser: Browser,  # noqa: F811
    cloud_db_url: str,
    tmp_path: Path,
) -> None:
    backend = "sqlite" if cloud_db_url.startswith("sqlite") else "pg"
    cloud = CloudProcess(tmp_path / "cloud", cloud_db_url)
    try:
        chain = set_up_chain(cloud)
        context = browser.new_context(
            viewport=SMALL, base_url=cloud.url, locale="zh-CN", accept_downloads=True
        )
        page = context.new_page()
        shot = Shots(page, backend)
        _auditor(page, chain, shot, tmp_path)
        draft_id = _marketer(page, shot)
        _admins(page, draft_id, shot)
        _pulls_and_audit(page, chain, shot)
        context.close()
    finally:
        cloud.stop()
