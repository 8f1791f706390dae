"""Cross-site requests in a real browser (issue 13): a page served from another origin (another
port of the same PC, which is the likeliest attacker: any local web page) posts the
station's login form and calls its API; the station refuses both (403) before counting
anything, while its own page still logs in.

Real processes: `loyalpump edge run`, a second tiny HTTP server, Debian's chromium.
"""

from __future__ import annotations

import http.server
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

from tests.support import free_port

LOYALPUMP = str(Path(sys.executable).with_name("loyalpump"))
pytestmark = pytest.mark.slow

EVIL_PAGE = """<!doctype html><html><body>
<form id="lockout" method="post" action="{station}/login">
  <input name="name" value="alice"><input name="pin" value="0000">
</form>
<script>
async function attack() {{
  const seen = [];
  for (let i = 0; i < 6; i++) {{
    for (const type of ["text/plain", "application/x-www-form-urlencoded"]) {{
      try {{
        await fetch("{station}/api/v1/login", {{
          method: "POST", mode: "no-cors", credentials: "include",
          headers: {{"Content-Type": type}},
          body: JSON.stringify({{name: "alice", pin: "000" + i}}),
        }});
        seen.push("sent");
      }} catch (e) {{ seen.push("error"); }}
    }}
  }}
  window.attacked = seen;
}}
</script>
</body></html>"""


def _cli(config: Path, *args: str) -> None:
    subprocess.run([LOYALPUMP, *args, "-c", str(config)], check=True, timeout=60)


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("cross-site")
    port = free_port()
    config = work / "station.toml"
    config.write_text(
        f'[station]\nid = "S001"\ndata_dir = "data"\n[web]\nhost = "127.0.0.1"\nport = {port}\n',
        encoding="utf-8",
    )
    _cli(config, "edge", "init")
    _cli(config, "edge", "user", "add", "--name", "alice", "--role", "cashier", "--pin", "2468")
    agent = subprocess.Popen(
        [LOYALPUMP, "edge", "run", "-c", str(config), "--log-format", "text"],
        stdout=(work / "agent.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/healthz", timeout=2)
            break
        except httpx.HTTPError:
            assert agent.poll() is None and time.monotonic() < deadline, (
                work / "agent.log"
            ).read_text()
            time.sleep(0.2)
    yield url
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=15) == 0


@pytest.fixture(scope="module")
def evil(station: str) -> Iterator[str]:
    """Another origin on the same PC: 127.0.0.1 on another port, serving the attack page."""
    page = EVIL_PAGE.format(station=station).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(5)


def test_a_foreign_page_cannot_post_the_login_form_or_call_the_api(
    browser: Browser, station: str, evil: str
) -> None:
    context = browser.new_context()
    page = context.new_page()
    answers: list[tuple[str, str, int]] = []
    page.on("response", lambda r: answers.append((r.request.method, r.url, r.status)))
    page.goto(evil)
    page.evaluate("attack()")
    page.wait_for_function("window.attacked && window.attacked.length === 12", timeout=15_000)
    with page.expect_navigation(url=f"{station}/login", timeout=15_000) as landed:
        page.evaluate("document.getElementById('lockout').submit()")
    response = landed.value
    assert response is not None
    assert response.status == 403
    assert "拒绝来自其他网站的请求" in page.content()
    posts = [(url, status) for method, url, status in answers if method == "POST"]
    assert len(posts) == 13, answers  # twelve API calls and the form all reached the station
    assert {status for _, status in posts} == {403}, posts
    context.close()

    # Nothing was counted: thirteen wrong PINs, yet alice logs in at once.
    answer = httpx.post(f"{station}/api/v1/login", json={"name": "alice", "pin": "2468"})
    assert answer.status_code == 200, answer.text


def test_the_stations_own_page_still_logs_in(browser: Browser, station: str) -> None:
    """The page's own form posts carry its own Origin (Referrer-Policy: same-origin)."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{station}/login")
    page.get_by_test_id("login-name").fill("alice")
    page.get_by_test_id("login-pin").fill("2468")
    with page.expect_navigation(url=f"{station}/", timeout=15_000):
        page.get_by_test_id("login-submit").click()
    assert page.url == f"{station}/"
    context.close()
