"""The end-to-end console test's chain: a real `loyalpump cloud run` set up through the CLI
(users, stations, the sample rules) and fed over HTTP with station tokens, as stations do."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from cloud_sync.core.privacy import MemberKeys
from tests.cloud.chain import CloudProcess
from tests.cloud.ledger.fake_station import FakeStation
from tests.support import RULESETS

__all__ = ["SCREENS", "Chain", "StationLink", "log_in", "log_out", "set_up_chain"]

SCREENS = Path(__file__).resolve().parents[3] / "test-artifacts" / "hq-screens"

USERS = {  # name: (role, password)
    "ada": ("admin", "ada-password-0001"),
    "bo": ("admin", "bo-password-00002"),
    "mia": ("marketer", "mia-password-0003"),
    "audrey": ("auditor", "audrey-password-4"),
}


@dataclass
class StationLink:
    """One station's side of the wire: its token, its paper outbox, its changes cursor."""

    url: str
    token: str
    station: FakeStation
    cursor: int = 0

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def push(self) -> list[str]:
        body = self.station.request().model_dump(mode="json")
        answer = httpx.post(f"{self.url}/api/v1/sync/events", json=body, headers=self.headers)
        assert answer.status_code == 200, answer.text
        return [r["status"] for r in answer.json()["results"]]

    def pull(self) -> dict[str, Any]:
        """One page of changes from the cursor the station holds; the station keeps the next."""
        answer = httpx.get(
            f"{self.url}/api/v1/sync/changes",
            params={"since": self.cursor},
            headers=self.headers,
        )
        assert answer.status_code == 200, answer.text
        page: dict[str, Any] = answer.json()
        self.cursor = int(page["next_cursor"])
        return page


@dataclass
class Chain:
    cloud: CloudProcess
    links: dict[str, StationLink]
    members: list[str] = field(default_factory=list)
    litres_ml: int = 0
    amount_fen: int = 0
    points: int = 0  # issued to members


def _enrol(url: str, station_id: str, token: str) -> MemberKeys:
    answer = httpx.post(
        f"{url}/api/v1/sync/enrol",
        json={"station_id": station_id, "station_keys": []},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.text
    keys = answer.json()["member_keys"]
    return MemberKeys(
        keys["key_id"],
        base64.b64decode(keys["encryption_key"]),
        base64.b64decode(keys["index_key"]),
    )


def set_up_chain(cloud: CloudProcess) -> Chain:
    """Users, stations and the sample rules through the CLI; the process started; then two
    stations enrol, register members and push sales over HTTP."""
    cloud.write_config()
    cloud.publish(RULESETS / "sample.json")  # first, alone: it makes the schema
    commands: list[tuple[str, ...]] = [
        ("station", "add", "--id", s, "--json") for s in ("S001", "S002")
    ]
    for name, (role, password) in USERS.items():
        secret = cloud.home / f"{name}.password"
        secret.write_text(password + "\n", encoding="utf-8")
        commands.append(
            ("user", "add", "--name", name, "--role", role, "--password-file", str(secret))
        )
    with ThreadPoolExecutor(max_workers=3) as pool:  # each command is a whole process
        outputs = list(pool.map(lambda args: cloud.cli(*args), commands))
    tokens = {
        sid: str(json.loads(out)["token"])
        for sid, out in zip(("S001", "S002"), outputs[:2], strict=True)
    }
    cloud.start()
    links = {
        sid: StationLink(cloud.url, token, FakeStation(sid, _enrol(cloud.url, sid, token)))
        for sid, token in tokens.items()
    }
    chain = Chain(cloud, links)
    # Yesterday at 10:00 in Shanghai (never a Tuesday's double points: the sums stay plain).
    day = datetime.now(UTC).replace(hour=2, minute=0, second=0, microsecond=0) - timedelta(days=1)
    if day.weekday() == 1:
        day -= timedelta(days=1)
    sales: dict[str, list[tuple[str | None, str, str]]] = {
        "S001": [
            ("13900000001", "40.00", "92"),
            ("13900000002", "25.50", "95"),
            (None, "30.00", "92"),
        ],
        "S002": [("13900000003", "50.00", "92")],
    }
    for sid, rows in sales.items():
        station = links[sid].station
        for n, (phone, litres, grade) in enumerate(rows):
            at = day + timedelta(minutes=10 * n)
            mid = None if phone is None else station.register(phone, at)
            if mid is not None:
                chain.members.append(mid)
            station.sale(mid, litres, at, grade=grade)
            event = station.events[-1]["payload"]
            chain.litres_ml += int(Decimal(litres) * 1000)
            chain.amount_fen += int(Decimal(str(event["amount"])) * 100)
            chain.points += int(event["points"])
        assert set(links[sid].push()) == {"applied"}
        links[sid].pull()  # the station's first pull: the rules it runs on
    return chain


def log_in(page: Page, name: str, path: str = "/hq/") -> None:
    """Through the login form, as a person does; lands on `path`."""
    page.goto(f"/hq/login?next={path}")
    page.get_by_test_id("login-name").fill(name)
    page.get_by_test_id("login-password").fill(USERS[name][1])
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"**{path}")
    expect(page.get_by_test_id("who")).to_contain_text(name)


def log_out(page: Page) -> None:
    page.get_by_test_id("logout").click()
    page.wait_for_url("**/hq/login")
