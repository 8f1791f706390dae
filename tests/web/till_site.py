"""A real station for the till's browser tests: `loyalpump edge run` serving the page,
`loyalpump sim fdc` playing a busy forecourt (4 pumps, a sale every 0.4 s: 2.5 sales/s),
the field-example rules, two cashiers, a manager and four members (two with points).

The store is prepared in-process through the services (no CLI start-up per member), then
the agent and the simulator run as their own processes, as at a station. Below it, what
the browser tests do again and again: save a screen, check that an answer is inside the
window, log in, search, act as another till, end a session from outside.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Locator, Page, expect

from edge_agent.services.members import register_member
from edge_agent.services.points import adjust_points
from edge_agent.services.rules import install_ruleset
from edge_agent.services.station import open_station
from edge_agent.services.users import add_user
from edge_agent.settings import load_settings
from tests.support import PROJECT_ROOT, RULESETS, free_port

__all__ = [
    "SHOTS",
    "Site",
    "answered",
    "api_client",
    "end_session",
    "fits",
    "in_view",
    "login",
    "running_site",
    "sale_ids",
    "sale_of",
    "search",
    "shot",
    "shots_dir",
]

LOYALPUMP = str(Path(sys.executable).with_name("loyalpump"))
SHOTS = PROJECT_ROOT / "test-output" / "screenshots" / "till"
SALE_INTERVAL_S = 0.4  # 2.5 sales a second
PUMPS = 4


@dataclass(frozen=True)
class Site:
    url: str
    config: Path


def _prepare(config: Path) -> None:
    subprocess.run([LOYALPUMP, "edge", "init", "-c", str(config)], check=True, timeout=60)
    with open_station(load_settings(config)) as station:
        install_ruleset(station, (RULESETS / "field-examples.json").read_bytes(), actor="test")
        add_user(station, name="wang", role="cashier", pin="2580", actor="test")
        add_user(station, name="zhao", role="manager", pin="1357", actor="test")
        add_user(station, name="chen", role="cashier", pin="4680", actor="test")
        rich = register_member(
            station,
            phone="13800138000",
            plates=["京A12345"],
            name="<b>张三</b>",
            consent_channel="test",
            actor="test",
        )
        adjust_points(station, rich.member_id, 560, actor="test", reason="opening balance")
        register_member(
            station,
            phone="13912345678",
            plates=["粤B54321"],
            name="李四",
            consent_channel="test",
            actor="test",
        )
        register_member(
            station, phone="13700137000", plates=[], name="", consent_channel="test", actor="test"
        )
        regular = register_member(
            station,
            phone="13600136000",
            plates=["沪C88888"],
            name="王五",
            consent_channel="test",
            actor="test",
        )
        adjust_points(station, regular.member_id, 2000, actor="test", reason="opening balance")


@contextmanager
def running_site(work: Path) -> Iterator[Site]:
    fdc_port, web_port = free_port(), free_port()
    config = work / "station.toml"
    config.write_text(
        '[station]\nid = "S001"\ndata_dir = "data"\ntimezone = "Asia/Shanghai"\n\n'
        f'[web]\nhost = "127.0.0.1"\nport = {web_port}\n\n'
        f'[[drivers]]\nkind = "ifsf-fdc"\nname = "fdc"\nhost = "127.0.0.1"\nport = {fdc_port}\n'
        'products = { 1 = "92", 2 = "95", 3 = "0" }\n',
        encoding="utf-8",
    )
    _prepare(config)
    log = work / "agent.log"
    agent = subprocess.Popen(
        [LOYALPUMP, "edge", "run", "-c", str(config)],
        stdout=log.open("wb"),
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
            str(PUMPS),
            "--interval",
            str(SALE_INTERVAL_S),
            "--seed",
            "7",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{web_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or agent.poll() is not None:
                    raise AssertionError(log.read_text(errors="replace")) from None
                time.sleep(0.3)
        yield Site(url, config)
    finally:
        sim.terminate()
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=15)
        finally:
            sim.wait(timeout=15)


# --------------------------------------------------------------------------- in the browser


def shots_dir() -> Path:
    """This process's screenshot folder: `SHOTS`, or under pytest-xdist one per worker
    (`SHOTS/gw0`, ...), so a worker clearing its old screens never deletes another's."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return SHOTS / worker if worker else SHOTS


def shot(page: Page, name: str) -> None:
    folder = shots_dir()
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"))


def fits(page: Page) -> None:
    """The page never scrolls: everything that grows scrolls inside its own box."""
    heights = page.evaluate("[document.documentElement.scrollHeight, window.innerHeight]")
    assert heights[0] <= heights[1], heights
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths


def in_view(page: Page, locator: Locator) -> None:
    size = page.viewport_size
    assert size is not None
    box = locator.bounding_box()
    assert box is not None, "not rendered"
    assert box["x"] >= 0, box
    assert box["y"] >= 0, box
    assert box["x"] + box["width"] <= size["width"] + 0.5, box
    assert box["y"] + box["height"] <= size["height"] + 0.5, box


def answered(page: Page, testid: str, name: str) -> Locator:
    """The answer is visible inside the screen, the search box too; the screen is saved."""
    answer = page.get_by_test_id(testid)
    expect(answer).to_be_visible()
    in_view(page, answer)
    in_view(page, page.get_by_test_id("search-q"))
    fits(page)
    shot(page, name)
    return answer


def login(browser: Browser, site: Site, who: tuple[str, str], **size: int) -> Page:
    page = browser.new_page(
        viewport={"width": size.get("width", 1366), "height": size.get("height", 768)}
    )
    page.goto(f"{site.url}/login")
    page.get_by_test_id("login-name").fill(who[0])
    page.get_by_test_id("login-pin").fill(who[1])
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("whoami")).to_contain_text(who[0])
    expect(page.locator("#sales-rows [data-row]").first).to_be_visible(timeout=20_000)
    return page


def search(page: Page, q: str) -> None:
    box = page.get_by_test_id("search-q")
    box.fill(q)
    box.press("Enter")


def sale_of(row: Locator) -> str:
    testid = row.get_attribute("data-testid")
    assert testid is not None
    return testid.removeprefix("attach-")


def sale_ids(page: Page, site: Site) -> set[str]:
    """The ids of the station's latest 500 sales, read with the page's own session."""
    answer = page.request.get(f"{site.url}/api/v1/sales?limit=500")
    assert answer.ok, answer.status
    return {sale["sale_id"] for sale in answer.json()["sales"]}


@contextmanager
def api_client(site: Site, who: tuple[str, str]) -> Iterator[httpx.Client]:
    """Another till on the same station, through the JSON API."""
    with httpx.Client(base_url=site.url, timeout=10) as client:
        answer = client.post("/api/v1/login", json={"name": who[0], "pin": who[1]})
        assert answer.status_code == 200, answer.text
        client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
        yield client


def end_session(site: Site, page: Page) -> None:
    """Log the page's session out from another client, leaving the browser's cookie."""
    token = page.evaluate("JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']")
    cookie = next(c for c in page.context.cookies() if c["name"] == "lp_session")
    with httpx.Client(base_url=site.url, timeout=10) as client:
        client.cookies.set("lp_session", cookie["value"])
        assert client.post("/logout", data={"csrf_token": token}).status_code == 303
