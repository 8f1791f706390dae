"""A chain in a test: a real cloud process, real station stores, and a reference model.

`CloudProcess` runs `loyalpump cloud run` as a child process on SQLite or PostgreSQL and can
be killed (-9), restarted, backed up and restored. `reference_balances` computes what the
chain ledger must say from nothing but the stations' outboxes, in plain Python.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.cloud.server.keyfiles import load_chain_keys
from edge_agent.services.members import register_member
from edge_agent.services.rules import install_ruleset
from edge_agent.services.sales import SaleInput, record_sale
from edge_agent.services.station import Station, open_station
from edge_agent.settings import StationSettings
from tests.support import RULESETS, SHANGHAI, FakeClock, free_port

LOYALPUMP = str(Path(sys.executable).with_name("loyalpump"))
ADMIN_TOKEN = "hq-admin-token-chain-tests-0123456789"


@dataclass
class CloudProcess:
    """`loyalpump cloud run` in a child process; `url` is where stations reach it."""

    home: Path
    database_url: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] | None = None  # the child's environment (None: this process's)
    args: tuple[str, ...] = ()  # more options for `cloud run`, e.g. ("--workers", "2")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        return self.home / "cloud.toml"

    def write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            "[cloud]\n"
            f'data_dir = "{self.home / "data"}"\n'
            f'database_url = "{self.database_url}"\n'
            'host = "127.0.0.1"\n'
            f"port = {self.port}\n"
            f'admin_token = "{ADMIN_TOKEN}"\n',
            encoding="utf-8",
        )

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [LOYALPUMP, "cloud", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=self.env,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def add_station(self, station_id: str) -> str:
        self.write_config()
        return str(json.loads(self.cli("station", "add", "--id", station_id, "--json"))["token"])

    def publish(self, ruleset: Path) -> None:
        self.cli("rules", "publish", str(ruleset))

    def start(self) -> None:
        self.write_config()
        with (self.home / "cloud.log").open("ab") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [LOYALPUMP, "cloud", "run", "--config", str(self.config), *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.home / "cloud.log").read_text()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("the cloud never answered /healthz")

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(20)
        self.process = None
        return code

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill(signal.SIGTERM)
        self.process = None

    def worker_pids(self) -> set[int]:
        """The worker processes of a `--workers N` cloud: its children started by spawn."""
        if self.process is None:
            return set()
        found = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                    spawned = b"spawn_main" in (entry / "cmdline").read_bytes()
                    if ppid == self.process.pid and spawned:
                        found.add(int(entry.name))
        return found

    def open_ledger(self) -> CloudLedger:
        return CloudLedger.open(self.database_url, chain_keys=load_chain_keys(self.home / "data"))

    # Backups of the whole database, taken and restored while the cloud is stopped.
    def backup(self, name: str) -> None:
        assert self.process is None
        if self.database_url.startswith("sqlite"):
            source = Path(self.database_url.removeprefix("sqlite:///"))
            shutil.copyfile(source, self.home / f"{name}.sqlite3")
            return
        live = _pg_name(self.database_url)
        with psycopg.connect(_pg_admin(self.database_url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{live}_{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{live}_{name}" TEMPLATE "{live}"')

    def restore(self, name: str) -> None:
        assert self.process is None
        if self.database_url.startswith("sqlite"):
            target = Path(self.database_url.removeprefix("sqlite:///"))
            for suffix in ("-wal", "-shm"):
                Path(f"{target}{suffix}").unlink(missing_ok=True)
            shutil.copyfile(self.home / f"{name}.sqlite3", target)
            return
        live = _pg_name(self.database_url)
        with psycopg.connect(_pg_admin(self.database_url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{live}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{live}" TEMPLATE "{live}_{name}"')
            admin.execute(f'DROP DATABASE "{live}_{name}" WITH (FORCE)')


def _pg_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _pg_admin(url: str) -> str:
    base = url.rsplit("/", 1)[0].replace("postgresql+psycopg://", "postgresql://", 1)
    return f"{base}/postgres"


def station_settings(data_dir: Path, station_id: str, url: str, token: str) -> StationSettings:
    return StationSettings.model_validate(
        {
            "station": {"id": station_id, "data_dir": str(data_dir), "timezone": "Asia/Shanghai"},
            "cloud": {"url": url, "token": token, "sync_interval_s": 1},
        }
    )


def open_chain_station(
    data_dir: Path,
    station_id: str,
    url: str,
    token: str,
    clock: FakeClock | None = None,
    *,
    local_rules: bool = True,
) -> Station:
    """A station with the field-example rules loaded locally, as before its first contact."""
    settings = station_settings(data_dir, station_id, url, token)
    station = open_station(settings, clock=clock, create=True)
    if local_rules:
        install_ruleset(station, (RULESETS / "field-examples.json").read_bytes(), actor="test")
    return station


def fill_station(station: Station, *, members: int, sales: int, phone_base: int) -> list[str]:
    """Members and a run of sales (most with a member) through the station's own services."""
    ids = [
        register_member(
            station, phone=f"139{phone_base + n:08d}", consent_channel="cli", actor="test"
        ).member_id
        for n in range(members)
    ]
    start = station.now()
    for n in range(sales):
        litres = Decimal(10 + n % 37) + Decimal(n % 100) / 100
        record_sale(
            station,
            SaleInput(
                source="manual",
                pump=1 + n % 4,
                grade=("92", "95", "0")[n % 3],
                litres=litres,
                amount=(litres * Decimal("7.50")).quantize(Decimal("0.01")),
                ended_at=start.astimezone(SHANGHAI),
                member_id=None if n % 5 == 4 else ids[n % len(ids)],
                actor="test",
            ),
        )
    return ids


def outbox_events(station: Station) -> list[dict[str, Any]]:
    """Every event the station ever queued, straight from its store file."""
    return store_outbox(station.settings.store_path)


def store_outbox(store_path: Path) -> list[dict[str, Any]]:
    """Every event queued in the station store at `store_path` (read-only, so it may run)."""
    with sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=10) as conn:
        rows = conn.execute(
            "SELECT event_id, seq, kind, payload, acked_at FROM outbox ORDER BY seq"
        ).fetchall()
    return [
        {"event_id": e, "seq": s, "kind": k, "payload": json.loads(p), "acked_at": a}
        for e, s, k, p, a in rows
    ]


def reference_balances(events: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Each member's points by the plain arithmetic of the events (no expiry, no merges)."""
    balance: dict[str, int] = defaultdict(int)
    for event in events:
        payload, kind = event["payload"], event["kind"]
        if kind in {"sale.recorded", "sale.member_attached", "sale.reversed", "sale.detached"}:
            if payload.get("member_id"):
                balance[payload["member_id"]] += sum(e["points"] for e in payload["ledger"])
        elif kind == "points.redeemed":
            balance[payload["member_id"]] -= payload["points"]
        elif kind == "points.adjusted":
            balance[payload["member_id"]] += payload["points"]
        elif kind == "member.registered":
            balance[payload["member_id"]] += 0
    return dict(balance)


def assert_cloud_matches(
    ledger: CloudLedger, stations: Iterable[Station], now: datetime
) -> dict[str, int]:
    """The cloud holds every station event once and every member as the model says."""
    events = [event for station in stations for event in outbox_events(station)]
    assert all(event["acked_at"] is not None for event in events), "a backlog remains"
    totals = ledger.totals()
    assert totals["events_applied"] + totals["events_rejected"] == len(events)
    assert totals["events_rejected"] == 0, ledger.quarantined()
    for member_id, points in reference_balances(events).items():
        member = ledger.member(member_id, now)
        assert member is not None, member_id
        assert member["points"] == points, (member_id, member["points"], points)
    assert ledger.ledger_problems() == []
    return totals


def kill_tree(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
