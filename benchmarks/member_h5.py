"""The member page (`/m/`) on a weak link (issue 17): time to usable on Chrome DevTools' "Fast 3G"
profile, first visit and revisit, in Debian's chromium at 375x667 against a real
`loyalpump cloud run` (SQLite; the page reads no ledger data).

    .venv/bin/python benchmarks/member_h5.py [--runs N] [--quick]

Fast 3G as DevTools defines it: 1.6 Mbit/s down x 0.9 (180,000 B/s), 750 kbit/s up x 0.9
(84,375 B/s), 150 ms RTT x 3.75 = 562.5 ms latency, applied with CDP
Network.emulateNetworkConditions (the latency is added to every request). Three moments of
each load, taken by the page's own clock at the first animation frame they hold:

- "paint": the sign-in form's phone input is visible and enabled;
- "usable": the sign-in works: the send-code button is enabled and wired (the sign-in
  script, inlined in the HTML, marks the page `data-signin` after attaching its handlers);
- "ready": the screens' deferred scripts have run (`data-ready`), what a signed-in member
  needs next.

In-run baseline: an empty page of a few bytes under the same profile, the network's own
floor. Each figure is the median (and the max) of `--runs` fresh browser contexts (a cold
cache each), and the revisit is the same context loading the page again: how many of the
page's files went to the network then is a figure too (the target is none). Ends with one
line `RESULT {json}`.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import CDPSession, Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script


__all__ = [
    "FAST_3G",
    "TARGET_USABLE_MS",
    "measure",
]

TARGET_USABLE_MS = 1000.0
FAST_3G: Mapping[str, Any] = {
    "offline": False,
    "latency": 150 * 3.75,
    "downloadThroughput": 1.6 * 1000 * 1000 / 8 * 0.9,
    "uploadThroughput": 750 * 1000 / 8 * 0.9,
}
CHROMIUM = "/usr/bin/chromium"
_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
MOMENTS = ("paint", "usable", "ready")
# Installed before the page's own scripts (CDP's new-document script, outside the page's CSP):
# each animation frame, the moments that hold now and did not before get the page's clock.
_WATCH = """(() => {
    if (location.pathname !== "/m/") return;
    const seen = (window.__lpMoments = {});
    const root = () => document.documentElement || {dataset: {}};  // none before the parse
    const el = (id) => document.querySelector(`[data-testid=${id}]`);
    const checks = {
        paint: () => {
            const phone = el("phone");
            if (!phone || phone.disabled) return false;
            const box = phone.getBoundingClientRect();
            return box.width > 0 && box.height > 0
                && getComputedStyle(phone).visibility !== "hidden";
        },
        usable: () => root().dataset.signin === "1"
            && !!el("send-code") && !el("send-code").disabled,
        ready: () => root().dataset.ready === "1",
    };
    const frame = () => {
        const now = performance.now();
        for (const [name, holds] of Object.entries(checks)) {
            if (!(name in seen) && holds()) seen[name] = now;
        }
        if (Object.keys(seen).length < 3) requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
})();"""
_ALL_SEEN = "() => !!window.__lpMoments && Object.keys(window.__lpMoments).length === 3"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cloud:
    """`loyalpump cloud run` on a temporary SQLite ledger, as a child process."""

    def __init__(self, home: Path) -> None:
        self.home, self.port = home, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Cloud:
        config = self.home / "cloud.toml"
        config.write_text(
            f'[cloud]\ndata_dir = "{self.home / "data"}"\nport = {self.port}\n'
            'admin_token = "member-h5-benchmark-token-0123456789"\n'
            '[member_app]\nbrand_name = "蓝海能源"\nbrand_colour = "#0057B8"\n',
            encoding="utf-8",
        )
        program = str(Path(sys.executable).with_name("loyalpump"))
        log = (self.home / "cloud.log").open("ab")
        self.process = subprocess.Popen(
            [program, "cloud", "run", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((self.home / "cloud.log").read_text(encoding="utf-8"))
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the cloud never answered /healthz")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)


def static_requests(base_url: str) -> int:
    """How many requests for the page's files (scripts, style, logo) the server answered."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("loyalpump_cloud_http_requests_total")
        and ('route="/m/static/{name}"' in line or 'route="/m/brand/logo"' in line)
    )


def _throttled(page: Page) -> CDPSession:
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", dict(FAST_3G))
    return cdp


def _load(page: Page, url: str, *, until: str) -> float:
    """Navigate and answer the page's own clock (ms since navigation start) when `until`."""
    page.goto(url, wait_until="commit", timeout=60_000)
    return float(page.wait_for_function(until, polling="raf", timeout=60_000).json_value())


def _moments(page: Page, url: str) -> dict[str, float]:
    """Load the member page; each moment by the page's clock (ms since navigation start)."""
    page.goto(url, wait_until="commit", timeout=60_000)
    page.wait_for_function(_ALL_SEEN, timeout=60_000)
    seen = page.evaluate("window.__lpMoments")
    page.wait_for_load_state("load")
    return {name: float(seen[name]) for name in MOMENTS}


def _figures(prefix: str, loads: list[dict[str, float]]) -> dict[str, float]:
    """`<prefix>_<moment>_ms` (the median) and `…_max_ms` of each moment."""
    found: dict[str, float] = {}
    for name in MOMENTS:
        values = [load[name] for load in loads]
        found[f"{prefix}_{name}_ms"] = statistics.median(values)
        found[f"{prefix}_{name}_max_ms"] = max(values)
    return found


def measure(base_url: str, runs: int) -> dict[str, Any]:
    """Cold and warm loads of /m/ under Fast 3G, each in a fresh context, and the floor."""
    cold: list[dict[str, float]] = []
    warm: list[dict[str, float]] = []
    floor: list[float] = []
    first_bytes: list[int] = []
    revisit_network: list[int] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=_FLAGS)
        warm_up = browser.new_page()  # the browser's and the server's first page: not timed
        warm_up.goto(f"{base_url}/m/")
        warm_up.wait_for_function("() => document.documentElement.dataset.ready === '1'")
        warm_up.context.close()
        for _ in range(runs):
            context = browser.new_context(
                viewport={"width": 375, "height": 667}, locale="zh-CN", base_url=base_url
            )
            context.add_init_script(_WATCH)
            page = context.new_page()
            cdp = _throttled(page)
            sizes: dict[str, int] = {}
            cdp.on(
                "Network.loadingFinished",
                lambda e, into=sizes: into.__setitem__(e["requestId"], int(e["encodedDataLength"])),
            )
            cold.append(_moments(page, "/m/"))
            first_bytes.append(sum(sizes.values()))
            page.goto("about:blank")
            before = static_requests(base_url)
            warm.append(_moments(page, "/m/"))
            revisit_network.append(static_requests(base_url) - before)
            floor.append(_load(page, "/healthz", until="() => performance.now()"))
            context.close()
        browser.close()
    return {
        "runs": runs,
        "profile": dict(FAST_3G),
        **_figures("cold", cold),
        **_figures("warm", warm),
        "floor_ms": statistics.median(floor),
        "floor_max_ms": max(floor),
        "first_visit_bytes": statistics.median(first_bytes),
        "revisit_static_fetches": max(revisit_network),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 runs")
    args = parser.parse_args(argv)
    runs = 3 if args.quick else max(1, args.runs)
    with tempfile.TemporaryDirectory(prefix="member-h5-") as folder, Cloud(Path(folder)) as cloud:
        record = measure(cloud.url, runs)
    for visit, prefix in (("first visit", "cold"), ("revisit", "warm")):
        print(
            f"{visit}: "
            + ", ".join(
                f"{name} {record[f'{prefix}_{name}_ms']:.0f} ms "
                f"(max {record[f'{prefix}_{name}_max_ms']:.0f})"
                for name in MOMENTS
            ),
            file=sys.stderr,
        )
    print(
        f"floor {record['floor_ms']:.0f} ms (max {record['floor_max_ms']:.0f}); "
        f"{record['first_visit_bytes']:.0f} B first visit; "
        f"{record['revisit_static_fetches']} files fetched again on revisit",
        file=sys.stderr,
    )
    print("RESULT " + json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
