"""Sync catch-up benchmark: a station's queued events into a fresh cloud, end to end.

What it measures, per backend (SQLite, PostgreSQL):

1. A station store with N queued events (default 100,000), written by the station's own
   services: members registered, then sales with members (each a `sale.recorded` event
   carrying its receipt and earning entry). Built once, copied for each backend.
2. `loyalpump cloud run` as a real process on a fresh database, the station enrolled, and
   the station's sync engine pushing everything over real HTTP on loopback (500 events per
   request, one in flight) and pulling the changes feed: events per second end to end.
3. In the same database, right after: a raw batched insert of the same event rows (id,
   station, epoch, seq, kind, payload) into a plain table, 500 rows per transaction, with
   the database's own driver (sqlite3 / psycopg): rows per second, and the ratio
   end-to-end / raw (target >= 0.25), plus the SQLite end-to-end target (>= 5,000/s).

Run from the project root (PostgreSQL at 127.0.0.1:5432, user postgres, trust auth):

    .venv/bin/python benchmarks/sync_catchup.py [--events N] [--backend sqlite|postgresql|both]

The figures are printed as a table, then as one line `RESULT {json}` for run_all.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.members_at_scale import positive_int
from edge_agent.services.members import register_member
from edge_agent.services.rules import install_ruleset
from edge_agent.services.sales import SaleInput, record_sale
from edge_agent.services.station import open_station
from edge_agent.services.sync import StationSyncPort, build_engine
from edge_agent.settings import StationSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RULESET_FILE = PROJECT_ROOT / "config" / "rulesets" / "field-examples.json"
LOYALPUMP = str(Path(sys.executable).with_name("loyalpump"))
PG_ADMIN = os.environ.get("LOYALPUMP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
STATION_ID = "BENCH01"
ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"
RAW_BATCH = 500
TARGET_SQLITE_EVENTS_PER_S = 5_000
TARGET_RATIO = 0.25


@dataclass(frozen=True)
class Options:
    events: int
    members: int
    backends: tuple[str, ...]
    parent: Path
    keep: bool


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def station_settings(
    data_dir: Path, url: str = "", token: str = "", station_id: str = STATION_ID
) -> StationSettings:
    return StationSettings.model_validate(
        {
            "station": {"id": station_id, "data_dir": str(data_dir)},
            "cloud": {"url": url, "token": token},
        }
    )


def build_backlog(
    data_dir: Path,
    events: int,
    members: int,
    *,
    station_id: str = STATION_ID,
    first_phone: int = 0,
) -> int:
    """A station store holding `events` unsent events, made by the station's services.

    Stations of one chain need their own phones (`first_phone`): one phone registered at
    two stations is one person, whom the cloud merges.
    """
    station = open_station(station_settings(data_dir, station_id=station_id), create=True)
    try:
        install_ruleset(station, RULESET_FILE.read_bytes(), actor="bench")
        ids = [
            register_member(
                station, phone=f"139{first_phone + n:08d}", consent_channel="cli", actor="bench"
            ).member_id
            for n in range(members)
        ]
        ended = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
        for n in range(max(0, events - members)):
            litres = Decimal(10 + n % 50) + Decimal(n % 100) / 100
            record_sale(
                station,
                SaleInput(
                    source="ifsf",
                    pump=1 + n % 8,
                    nozzle=1,
                    grade=("92", "95", "0")[n % 3],
                    litres=litres,
                    amount=(litres * Decimal("7.83")).quantize(Decimal("0.01")),
                    ended_at=ended + timedelta(seconds=n),
                    source_key=f"bench:{n}",
                    member_id=ids[n % len(ids)],
                ),
            )
        return StationSyncPort(station).backlog().pending
    finally:
        station.close()


class Cloud:
    """`loyalpump cloud run` on one database, in a child process."""

    def __init__(self, home: Path, database_url: str) -> None:
        self.home = home
        self.port = _free_port()
        self.config = home / "cloud.toml"
        home.mkdir(parents=True)
        self.config.write_text(
            f'[cloud]\ndata_dir = "{home / "data"}"\ndatabase_url = "{database_url}"\n'
            f'host = "127.0.0.1"\nport = {self.port}\nadmin_token = "{ADMIN_TOKEN}"\n',
            encoding="utf-8",
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> str:
        return subprocess.run(
            [LOYALPUMP, "cloud", *args, "--config", str(self.config)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def start(self, *extra: str, launcher: Sequence[str] = (LOYALPUMP,)) -> None:
        """Start `cloud run` with `extra` options; `launcher` runs the CLI (a profiler)."""
        log = (self.home / "cloud.log").open("ab")
        self.process = subprocess.Popen(
            [*launcher, "cloud", "run", "--config", str(self.config), *extra],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for _ in range(300):
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("the cloud did not start; see " + str(self.home / "cloud.log"))

    def stop(self, timeout: float = 30) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout)
            self.process = None


def catch_up(station_dir: Path, cloud: Cloud, token: str) -> tuple[int, float, int]:
    """Sync the whole backlog; (events acknowledged, seconds, cycles)."""
    station = open_station(station_settings(station_dir, cloud.url, token))
    try:
        engine = build_engine(station, timeout=60.0)
        pushed, cycles = 0, 0
        started = time.perf_counter()
        while True:
            result = engine.run_cycle()
            cycles += 1
            pushed += result.pushed
            if result.ok and result.backlog_after.pending == 0:
                break
            if cycles > 50:
                raise RuntimeError(f"sync did not converge: {result}")
        return pushed, time.perf_counter() - started, cycles
    finally:
        station.close()


def event_rows(
    station_dir: Path, station_id: str = STATION_ID
) -> list[tuple[str, str, int, int, str, str]]:
    """The outbox's events as rows (id, station, epoch, seq, kind, payload) for a raw insert."""
    with sqlite3.connect(station_dir / "station.sqlite3") as conn:
        rows = conn.execute("SELECT event_id, epoch, seq, kind, payload FROM outbox ORDER BY seq")
        return [(e, station_id, int(ep), int(s), k, p) for e, ep, s, k, p in rows]


_RAW_TABLE = (
    "CREATE TABLE bench_raw_events (event_id TEXT PRIMARY KEY, station_id TEXT NOT NULL, "
    "epoch INTEGER NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL)"
)
_RAW_INSERT = "INSERT INTO bench_raw_events VALUES ({})"


def raw_insert_sqlite(path: Path, rows: Sequence[tuple[Any, ...]]) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(_RAW_TABLE)
        sql = _RAW_INSERT.format(", ".join("?" * 6))
        started = time.perf_counter()
        for first in range(0, len(rows), RAW_BATCH):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, rows[first : first + RAW_BATCH])
            conn.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        conn.close()


def raw_insert_postgresql(libpq_url: str, rows: Sequence[tuple[Any, ...]]) -> float:
    with psycopg.connect(libpq_url) as conn:
        conn.execute(_RAW_TABLE.replace("payload TEXT", "payload JSONB"))
        conn.commit()
        sql = _RAW_INSERT.format(", ".join(["%s"] * 6))
        started = time.perf_counter()
        for first in range(0, len(rows), RAW_BATCH):
            with conn.cursor() as cursor:
                cursor.executemany(sql, rows[first : first + RAW_BATCH])
            conn.commit()
        return time.perf_counter() - started


def bench_backend(backend: str, work: Path, template: Path, events: int) -> dict[str, Any]:
    station_dir = work / f"station-{backend}"
    shutil.copytree(template, station_dir)
    pg_name = f"loyalpump_bench_{uuid.uuid4().hex[:10]}"
    pg_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{pg_name}"
    if backend == "postgresql":
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{pg_name}"')
        database_url = pg_url
    else:
        database_url = ""
    cloud = Cloud(work / f"cloud-{backend}", database_url)
    try:
        token = json.loads(cloud.cli("station", "add", "--id", STATION_ID, "--json"))["token"]
        cloud.cli("rules", "publish", str(RULESET_FILE))
        cloud.start()
        pushed, seconds, cycles = catch_up(station_dir, cloud, token)
        cloud.stop()
        rows = event_rows(station_dir)
        if backend == "sqlite":
            raw_seconds = raw_insert_sqlite(cloud.home / "data" / "cloud.sqlite3", rows)
        else:
            raw_seconds = raw_insert_postgresql(pg_url, rows)
    finally:
        cloud.stop()
        if backend == "postgresql":
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
    if pushed != events:
        raise RuntimeError(f"{backend}: {pushed} events acknowledged, {events} queued")
    rate = events / seconds
    raw_rate = len(rows) / raw_seconds
    return {
        "backend": backend,
        "events": events,
        "seconds": round(seconds, 2),
        "cycles": cycles,
        "events_per_s": round(rate),
        "raw_rows_per_s": round(raw_rate),
        "ratio": round(rate / raw_rate, 3),
    }


def _table(rows: Sequence[tuple[str, str, str, str]]) -> str:
    header = ("figure", "value", "target", "verdict")
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(4)]
    return "\n".join(
        "  ".join(
            [row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].ljust(widths[2]), row[3]]
        ).rstrip()
        for row in (header, *rows)
    )


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description="Station-to-cloud catch-up over real HTTP.")
    parser.add_argument("--events", type=positive_int, default=100_000, help="queued (100,000)")
    parser.add_argument("--members", type=positive_int, default=1_000, help="members (1,000)")
    parser.add_argument(
        "--backend", choices=["sqlite", "postgresql", "both"], default="both", help="(both)"
    )
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    return Options(args.events, min(args.members, args.events), backends, args.dir, args.keep)


def run(options: Options) -> dict[str, Any]:
    options.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="sync-catchup-", dir=options.parent))
    try:
        started = time.perf_counter()
        template = work / "station"
        queued = build_backlog(template, options.events, options.members)
        build_s = time.perf_counter() - started
        results = [bench_backend(b, work, template, queued) for b in options.backends]
    finally:
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)
    rows: list[tuple[str, str, str, str]] = []
    for result in results:
        name = result["backend"]
        rate_ok = result["events_per_s"] >= TARGET_SQLITE_EVENTS_PER_S if name == "sqlite" else True
        rows.append(
            (
                f"{name}: end to end, events/s",
                f"{result['events_per_s']:,}",
                f">= {TARGET_SQLITE_EVENTS_PER_S:,}" if name == "sqlite" else "(report)",
                "pass" if rate_ok else "short",
            )
        )
        rows.append(
            (f"{name}: raw batched insert, rows/s", f"{result['raw_rows_per_s']:,}", "", "")
        )
        rows.append(
            (
                f"{name}: ratio",
                f"{result['ratio']:.3f}",
                f">= {TARGET_RATIO:g}",
                "pass" if result["ratio"] >= TARGET_RATIO else "short",
            )
        )
    print(
        f"sync catch-up: {queued:,} queued events (built in {build_s:.0f} s), "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(_table(rows))
    summary = {"benchmark": "sync_catchup", "queued": queued, "results": results}
    print("RESULT " + json.dumps(summary))
    return summary


def main(argv: Sequence[str] | None = None) -> None:
    run(parse_options(argv))


if __name__ == "__main__":
    main()
