"""The stations screen in Debian's chromium: the list (health badges, counts, sorting, the
enrol form showing the token once) and a station's page with its chart; screenshots at
1366×768 and 1920×1080 under test-artifacts/hq-screens/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser import browser, serve_in_thread  # noqa: F401 - the shared chromium fixture

from .stations_support import ADMIN, HqCloud, hq_cloud, seed_chain

SCREENS = Path(__file__).resolve().parents[3] / "test-artifacts" / "hq-screens"


@pytest.fixture
def served(cloud_db_url: str, tmp_path: Path) -> Iterator[tuple[str, HqCloud]]:
    with hq_cloud(tmp_path, cloud_db_url) as cloud:
        seed_chain(cloud)
        cloud.clock.advance(hours=2)  # S001 late, S002 never
        with serve_in_thread(cloud.app) as url:
            yield url, cloud


def test_the_stations_list_and_a_stations_page(
    browser: Browser,  # noqa: F811 - the fixture imported above
    served: tuple[str, HqCloud],
    cloud_db_url: str,
) -> None:
    base, cloud = served
    backend = "pg" if cloud_db_url.startswith("postgresql") else "sqlite"
    SCREENS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1366, "height": 768}, extra_http_headers=ADMIN)
    page = context.new_page()
    page.goto(f"{base}/hq/stations")
    expect(page.get_by_test_id("count-late")).to_contain_text("1")
    expect(page.get_by_test_id("count-never")).to_contain_text("1")
    expect(page.get_by_test_id("station-S001").locator("[data-health]")).to_have_text("延迟")
    expect(page.get_by_test_id("station-S002").locator("[data-health]")).to_have_text("从未联络")
    page.get_by_test_id("sort-id").click()  # ascending already: the click turns it around
    expect(page.locator("tbody tr").first).to_have_attribute("data-testid", "station-S002")

    page.get_by_test_id("enrol-id").fill("S003")
    page.get_by_test_id("enrol-name").fill("南站")
    page.get_by_test_id("enrol-submit").click()
    expect(page.get_by_test_id("token-out")).to_be_visible()
    token = page.get_by_test_id("token-value").inner_text()
    assert len(token) >= 40 and cloud.sync_changes(token) == 200
    page.screenshot(path=str(SCREENS / f"stations-list-1366-{backend}.png"), full_page=True)
    page.reload()
    expect(page.get_by_test_id("station-S003")).to_be_visible()
    assert token not in page.content()  # shown once

    page.set_viewport_size({"width": 1920, "height": 1080})
    page.goto(f"{base}/hq/stations/S001")
    expect(page.get_by_test_id("station-title")).to_contain_text("东站")
    expect(page.locator("#fig-sales-days [data-chart]")).to_have_attribute("data-drawn", "1")
    page.screenshot(path=str(SCREENS / f"station-detail-1920-{backend}.png"), full_page=True)

    old = cloud.tokens["S002"]
    page.goto(f"{base}/hq/stations/S002")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("revoke").click()
    expect(page.get_by_test_id("revoked")).to_be_visible()
    assert cloud.sync_changes(old) == 401
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{base}/hq/stations?lang=en")
    page.screenshot(path=str(SCREENS / f"stations-list-en-1366-{backend}.png"), full_page=True)
    context.close()
