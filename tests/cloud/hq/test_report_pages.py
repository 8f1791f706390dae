"""The dashboard and report pages in Debian's chromium over a seeded chain: every chart is
drawn from its table, the tables show the seeded figures, screenshots at two sizes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect

from tests.cloud.ledger.fake_station import FakeStation
from tests.support import PROJECT_ROOT, free_port
from tests.web.conftest import browser

from .conftest import ADMIN, Hq
from .seed_chain import NOW

__all__ = ["browser"]

SHOTS = PROJECT_ROOT / "test-artifacts" / "hq-screens"
SIZES = ((1366, 768), (1920, 1080))


@pytest.fixture
def served(hq: Hq) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(hq.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _shoot(page: Page, name: str, backend: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(150)  # the charts' resize
        page.screenshot(path=str(SHOTS / f"{name}-{width}x{height}-{backend}.png"), full_page=True)


def _charts_drawn(page: Page) -> None:
    charts = page.locator("[data-chart]")
    expect(charts.first).to_have_attribute("data-drawn", "1")
    assert charts.count() == page.locator('[data-chart][data-drawn="1"]').count()
    assert page.locator("[data-chart] svg").count() == charts.count()


def test_report_pages_render_the_seeded_chain(
    served: str, browser: Browser, hq: Hq, cloud_db_url: str
) -> None:
    backend = "pg" if cloud_db_url.startswith("postgresql") else "sqlite"
    context = browser.new_context(
        extra_http_headers=ADMIN, viewport={"width": 1366, "height": 768}, locale="zh-CN"
    )
    page = context.new_page()
    outside: list[str] = []
    page.on(
        "request",
        lambda r: outside.append(r.url) if not r.url.startswith(served) else None,
    )

    page.goto(f"{served}/hq/?range=30d")
    _charts_drawn(page)
    expect(page.get_by_test_id("kpi-litres")).to_contain_text("192 L")
    expect(page.get_by_test_id("kpi-amount")).to_contain_text("¥1,443.75")
    expect(page.get_by_test_id("kpi-outstanding")).to_contain_text("189")
    expect(page.get_by_test_id("stations-late")).to_contain_text("1")
    expect(
        page.get_by_test_id("table-amount").locator("tr", has_text="2026-03-01")
    ).to_contain_text("341")
    _shoot(page, "dashboard", backend)

    page.goto(f"{served}/hq/liability?range=custom&from=2025-03-02&to=2026-03-02")
    _charts_drawn(page)
    table = page.get_by_test_id("table-rollforward")
    expect(table).to_contain_text("合计")
    expect(table.locator("tr", has_text="2026-03").filter(has_text="合计")).to_contain_text("189")
    expect(table.locator("tr", has_text="2026-03").filter(has_text="S001")).to_contain_text(
        "-1,000"
    )
    _shoot(page, "liability", backend)

    page.goto(f"{served}/hq/sales?range=custom&from=2026-01-01&to=2026-03-02")
    _charts_drawn(page)
    sales = page.get_by_test_id("table-sales")
    expect(sales.locator("tr", has_text="2026-02-28")).to_contain_text("60.00")
    expect(sales).to_contain_text("¥450.00")
    _shoot(page, "sales", backend)

    mover = FakeStation("S002", hq.ledger.chain_keys)
    mover.epoch = 9  # a fresh outbox for S002
    at = NOW - timedelta(days=3)
    payload = {"member_id": hq.seeded.members[2], "tier": "gold", "previous_tier": "standard"}
    mover.emit("member.tier_changed", payload | {"at": at.isoformat()}, at)
    hq.ledger.push("S002", mover.request(), at)
    page.goto(f"{served}/hq/reports/members?lang=en&range=custom&from=2026-01-01&to=2026-03-02")
    _charts_drawn(page)
    expect(page.get_by_test_id("table-activity")).to_contain_text("Active in 30 days")
    expect(page.get_by_test_id("table-tiers")).to_contain_text("standard")
    expect(
        page.get_by_test_id("table-tier-moves").locator("tr", has_text="2026-02")
    ).to_contain_text("1")
    expect(page.get_by_test_id("table-tier-pairs")).to_contain_text("Up")
    expect(page.locator("#rfm-as-of")).to_contain_text("2026-03-02T10:00:00+08:00")
    _shoot(page, "member-reports", backend)

    page.select_option("[data-testid=station]", "S002")
    page.get_by_test_id("apply").click()
    page.wait_for_url("**station=S002**")
    _charts_drawn(page)
    assert outside == []
    context.close()
