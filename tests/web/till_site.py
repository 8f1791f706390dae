"""A real station for the till's browser tests: `loyalpump edge run` serving the page,
`loyalpump sim fdc` playing a busy forecourt (4 pumps, a sale every 0.4 s: 2.5 sales/s),
the field-example rules, two cashiers, a manager and four members (two with points).

The store is prepared in-process through the services (no CLI start-up per member), then
the agent and the simulator run as their own processes, as at a station.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edge_agent.services.members import register_member
from edge_agent.services.points import adjust_points
from edge_agent.services.rules import install_ruleset
from edge_agent.services.station import open_station
from edge_agent.services.users import add_user
from edge_agent.settings import load_settings
from tests.support import PROJECT_ROOT, RULESETS, free_port

__all__ = ["SHOTS", "Site", "running_site"]

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
