"""Cloud ingest at chain scale: many stations pushing their backlogs into one `cloud run` at
once (a region back online after an outage), against the raw insert of the same rows.

What it measures:

1. The chain: `loyalpump cloud run` as a real process on a fresh PostgreSQL database and N
   simulated stations (default 200), each enrolled with its own token and holding an outbox
   made by the station's own services (members registered, sales with members; built once
   into a cache, `benchmarks/ingest_load.py`). A few load-generator processes run the
   stations in threads, each station its own store and sync engine pushing over real HTTP
   (1,000 events per batch), all starting at once. Figures: applied events/s (events
   acknowledged / time from the first push to the last answer), p50/p99 of a push, CPU
   seconds of the load generators, the cloud and PostgreSQL's backends of the run's
   database (all on the same cores), and, afterwards, that the cloud holds every event once
   and `ledger_problems` is empty.
2. In the same database, right after: the same event rows upserted (`INSERT … ON CONFLICT
   DO NOTHING`, `executemany`, 1,000 rows per transaction), copied (`COPY`), and written
   with the member, sale, journal, line and lot rows they imply, into fresh tables by as
   many concurrent clients as the cloud has workers (`benchmarks/ingest_raw.py`): the
   physical baseline (targets: >= 10,000 events/s and >= 0.5 of the upsert; push p99 <
   500 ms).
3. One station catching up alone (default 20,000 events), on SQLite and on PostgreSQL, the
   same way, against a raw batched insert (target >= 5,000 events/s each).

    .venv/bin/python benchmarks/cloud_ingest.py [--stations N] [--events-per-station N]
        [--batch N] [--workers N] [--quick] [--profile] [--single-only | --chain-only]

`--workers N` is passed to `cloud run` when it has that option (the run says which).
`--profile` runs the chain's cloud under pyinstrument (`benchmarks/cloud_profile.py`) and
prints the top of the profile; its figures are then slowed by the profiler.
The figures are printed as a table, then as one line `RESULT {json}` for run_all.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Connection, func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from benchmarks.ingest_load import StationJob, build_cache, generator_process
from benchmarks.ingest_measure import CpuWatch, tree_pids
from benchmarks.ingest_raw import raw_baseline
from benchmarks.latency import Latency
from benchmarks.members_at_scale import positive_int
from benchmarks.sync_catchup import (
    LOYALPUMP,
    PG_ADMIN,
    PROJECT_ROOT,
    RULESET_FILE,
    Cloud,
    event_rows,
    raw_insert_sqlite,
)
from cloud_sync.cloud.ledger.database import Database
from cloud_sync.cloud.ledger.reports import ledger_problems
from cloud_sync.cloud.ledger.schema import events as events_table
from cloud_sync.cloud.server.run import open_ledger
from cloud_sync.cloud.server.settings import load_cloud_settings

TARGET_EVENTS_PER_S = 10_000
TARGET_RATIO = 0.5
TARGET_P99_MS = 500.0
TARGET_SINGLE_EVENTS_PER_S = 5_000
MEMBERS_PER_STATION = 50
SINGLE_MEMBERS = 200
CACHE = PROJECT_ROOT / "benchmarks" / ".cache" / "cloud_ingest"
QUICK = {"stations": 20, "events": 1_000, "single": 3_000}


@dataclass(frozen=True)
class Options:
    stations: int
    events: int
    single_events: int
    batch: int
    generators: int
    workers: int | None
    chain: bool
    single: bool
    profile: bool
    quick: bool
    cache: Path
    parent: Path
    timeout: float


@dataclass(frozen=True)
class Setup:
    """How `cloud run` is started for this run, decided once."""

    workers_supported: bool
    workers: int | None
    raw_clients: int

    def run_args(self, backend: str) -> tuple[str, ...]:
        """A SQLite ledger has one writer: `cloud run` refuses more workers for it."""
        if self.workers_supported and self.workers is not None and backend != "sqlite":
            return ("--workers", str(self.workers))
        return ()

    def describe(self) -> str:
        if not self.workers_supported:
            return "cloud run has no --workers option here: one process"
        if self.workers is None:
            return "cloud run --workers not given: its default (the number of cores)"
        return f"cloud run --workers {self.workers}"


def workers_supported() -> bool:
    """Whether this `cloud run` takes `--workers` (another change adds it)."""
    help_text = subprocess.run(
        [LOYALPUMP, "cloud", "run", "--help"], capture_output=True, text=True, check=False
    ).stdout
    return "--workers" in help_text


def _database(backend: str) -> tuple[str, str]:
    """(database URL for the cloud, PostgreSQL database name or "") for a fresh database."""
    if backend == "sqlite":
        return "", ""
    name = f"loyalpump_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", name


def _drop(name: str) -> None:
    if name:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _backends(name: str) -> list[int]:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        rows = admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,))
        return [int(row[0]) for row in rows]


def _enrol_tokens(cloud: Cloud, station_ids: Sequence[str]) -> dict[str, str]:
    """Every station added the way `cloud station add` does (in this process: 200 CLI
    starts would take minutes), and the chain's rule set published by the CLI."""
    ledger = open_ledger(load_cloud_settings(cloud.config))
    try:
        now = datetime.now(UTC)
        tokens = {sid: ledger.add_station(sid, sid, now) for sid in station_ids}
    finally:
        ledger.close()
    cloud.cli("rules", "publish", str(RULESET_FILE))
    return tokens


def _check_cloud(url: str) -> tuple[int, list[str]]:
    """(events the cloud holds, `ledger_problems`), read in this process."""

    def count(conn: Connection) -> int:
        return int(conn.execute(select(func.count()).select_from(events_table)).scalar_one())

    db = Database.open(url, create=False)
    try:
        return db.read(count), db.read(ledger_problems)
    finally:
        db.close()


def _run_generators(
    jobs: list[StationJob], cloud: Cloud, options: Options, groups: int, pg_name: str
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Start the load generators, let them all go at once, wait for every report."""
    context = get_context("spawn")
    shares = [jobs[i::groups] for i in range(groups) if jobs[i::groups]]
    ready = context.Barrier(len(shares) + 1)
    abort = context.Event()
    results = context.Queue()
    processes = [
        context.Process(
            target=generator_process,
            args=(share, cloud.url, options.batch, ready, abort, results),
            name=f"load-generator-{n}",
        )
        for n, share in enumerate(shares)
    ]
    for process in processes:
        process.start()
    assert cloud.process is not None
    cloud_pid = cloud.process.pid
    watch = CpuWatch(
        {
            "cloud": lambda: tree_pids(cloud_pid),
            "generators": lambda: [p.pid for p in processes if p.pid is not None],
            **({"postgresql": lambda: _backends(pg_name)} if pg_name else {}),
        },
        interval=0.5,
    )
    reports: list[dict[str, Any]] = []
    try:
        ready.wait(timeout=600)  # every station enrolled; broken when a generator failed
        watch.start()
        deadline = time.monotonic() + options.timeout
        while len(reports) < len(processes):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                abort.set()
                deadline = time.monotonic() + 120
            try:
                reports.append(results.get(timeout=max(1.0, remaining)))
            except queue.Empty:  # check the deadline again
                if not any(p.is_alive() for p in processes) and results.empty():
                    raise RuntimeError("a load generator ended without a report") from None
        cpu = watch.stop()
    except BaseException:
        abort.set()
        ready.abort()
        while not results.empty():
            reports.append(results.get())
        for report in reports:
            for error in report["errors"]:
                print(f"load generator {report['pid']}: {error}", file=sys.stderr)
        raise
    finally:
        for process in processes:
            process.join(60)
            if process.is_alive():
                process.kill()
    return reports, cpu


def _summary(reports: list[dict[str, Any]], queued: int, batch: int) -> dict[str, Any]:
    pushes = [push for report in reports for push in report["pushes"]]
    done = [push for push in pushes if not push["error"]]
    if not done:
        raise RuntimeError("no push was answered; see the load generators' errors")
    seconds = max(p["ended"] for p in done) - min(p["started"] for p in pushes)
    acknowledged = sum(report["acknowledged"] for report in reports)
    full = [p for p in done if p["events"] == batch] or done
    latency = Latency.of([round((p["ended"] - p["started"]) * 1e9) for p in full])
    failures = sorted({p["error"] for p in pushes if p["error"]})
    return {
        "queued": queued,
        "acknowledged": acknowledged,
        "seconds": round(seconds, 2),
        "events_per_s": round(acknowledged / seconds),
        "pushes": len(done),
        "failed_pushes": len(pushes) - len(done),
        "push_failures": failures[:5],
        "latency_batches": latency.count,
        "push_p50_ms": round(latency.p50_ms, 1),
        "push_p99_ms": round(latency.p99_ms, 1),
        "push_max_ms": round(latency.max_ms, 1),
        "pending": {k: v for report in reports for k, v in report["pending"].items()},
        "generator_errors": [e for report in reports for e in report["errors"]],
    }


def run_load(
    backend: str,
    stations: int,
    events: int,
    members: int,
    options: Options,
    setup: Setup,
    work: Path,
    *,
    profile: Path | None = None,
) -> dict[str, Any]:
    """One run: fresh database, `cloud run`, stations from the cache, figures and checks."""
    cache, built_s = build_cache(options.cache, stations, events, members, os.cpu_count() or 1)
    home = work / f"{backend}-{stations}"
    started = time.perf_counter()
    shutil.copytree(cache, home / "stations", ignore=shutil.ignore_patterns("built.json"))
    copy_s = time.perf_counter() - started
    url, pg_name = _database(backend)
    cloud = Cloud(home / "cloud", url)
    try:
        ids = sorted(path.name for path in (home / "stations").iterdir())
        tokens = _enrol_tokens(cloud, ids)
        launcher: tuple[str, ...] = (LOYALPUMP,)
        if profile is not None:
            launcher = (sys.executable, str(PROJECT_ROOT / "benchmarks" / "cloud_profile.py"))
            launcher += (str(profile),)
        cloud.start(*setup.run_args(backend), launcher=launcher)
        jobs = [StationJob(sid, home / "stations" / sid, tokens[sid], events) for sid in ids]
        groups = min(options.generators, stations)
        reports, cpu = _run_generators(jobs, cloud, options, groups, pg_name)
        cloud.stop(timeout=300 if profile is not None else 60)
        figures = _summary(reports, stations * events, options.batch)
        if figures["failed_pushes"]:  # the work directory goes: keep what says why
            kept = Path(tempfile.gettempdir()) / f"cloud-ingest-{os.getpid()}-{home.name}.log"
            shutil.copy(cloud.home / "cloud.log", kept)
            figures["cloud_log"] = str(kept)
        database_url = url or f"sqlite:///{cloud.home / 'data' / 'cloud.sqlite3'}"
        applied, problems = _check_cloud(database_url)
        share = [(cache / sid, sid) for sid in ids]
        if backend == "sqlite":
            rows = [row for directory, sid in share for row in event_rows(directory, sid)]
            raw_s = raw_insert_sqlite(cloud.home / "data" / "cloud.sqlite3", rows)
            raw = {"clients": 1, "upsert_rows": len(rows), "upsert_rows_per_s": len(rows) / raw_s}
            raw["upsert_rows_per_s"] = round(raw["upsert_rows_per_s"])
        else:
            clients = setup.raw_clients if stations > 1 else 1
            raw = raw_baseline(url, share, clients, options.batch)
    finally:
        cloud.stop()
        _drop(pg_name)
    rate = figures["events_per_s"]
    return {
        "backend": backend,
        "stations": stations,
        "events_per_station": events,
        "batch": options.batch,
        "generators": groups,
        **figures,
        "applied": applied,
        "exactly_once": applied == stations * events and not figures["pending"],
        "ledger_problems": problems[:10],
        "cpu_s": cpu,
        "raw": raw,
        "raw_rows_per_s": raw["upsert_rows_per_s"],
        "ratio": round(rate / raw["upsert_rows_per_s"], 3),
        "build_s": round(built_s, 1),
        "copy_s": round(copy_s, 1),
    }


def _details(name: str, result: dict[str, Any]) -> list[str]:
    """What the table leaves out: sizes, the CPU split, failures, the checks."""
    cpu = result["cpu_s"]
    raw = result["raw"]
    lines = [
        f"{name}: {result['stations']} station(s) x {result['events_per_station']:,} events, "
        f"batches of {result['batch']}, {result['generators']} load generator(s): "
        f"{result['acknowledged']:,} events in {result['seconds']:.1f} s, "
        f"{result['pushes']} pushes (p50 {result['push_p50_ms']} ms, p99 "
        f"{result['push_p99_ms']} ms, max {result['push_max_ms']} ms), "
        f"{result['failed_pushes']} failed and retried",
        f"  CPU seconds over the run: {', '.join(f'{k} {v:.1f}' for k, v in cpu.items())} "
        f"(machine: every process on the {os.cpu_count()} cores, ours and others')",
        f"  raw baseline, {raw['clients']} client(s): "
        + ", ".join(f"{key} {value:,}" for key, value in raw.items() if key.endswith("per_s")),
        f"  cloud holds {result['applied']:,} events of {result['queued']:,} queued; "
        f"exactly once: {result['exactly_once']}; ledger_problems: "
        f"{result['ledger_problems'] or 'none'}",
    ]
    for failure in result["push_failures"]:
        lines.append(f"  a failed push: {failure}")
    if result.get("cloud_log"):
        lines.append(f"  the cloud's log: {result['cloud_log']}")
    for error in result["generator_errors"]:
        lines.append(f"  load generator: {error}")
    return lines


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description="Many stations pushing into one cloud at once.")
    parser.add_argument("--stations", type=positive_int, help="simulated stations (200)")
    parser.add_argument("--events-per-station", type=positive_int, help="queued each (2,000)")
    parser.add_argument("--single-events", type=positive_int, help="one station's (20,000)")
    parser.add_argument("--batch", type=positive_int, default=1_000, help="per push (1,000)")
    parser.add_argument("--generators", type=positive_int, default=4, help="processes (4)")
    parser.add_argument("--workers", type=positive_int, help="passed to cloud run --workers")
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke check")
    parser.add_argument("--profile", action="store_true", help="profile the chain's cloud")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--chain-only", action="store_true", help="skip the single station")
    only.add_argument("--single-only", action="store_true", help="skip the chain")
    parser.add_argument("--cache", type=Path, default=CACHE, help="station stores (%(default)s)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per run (3600)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else {"stations": 200, "events": 2_000, "single": 20_000}
    if args.batch > 1_000:
        parser.error("--batch: the cloud takes at most 1,000 events per push")
    return Options(
        stations=args.stations or sizes["stations"],
        events=args.events_per_station or sizes["events"],
        single_events=args.single_events or sizes["single"],
        batch=args.batch,
        generators=args.generators,
        workers=args.workers,
        chain=not args.single_only,
        single=not args.chain_only,
        profile=args.profile,
        quick=args.quick,
        cache=args.cache,
        parent=args.dir,
        timeout=args.timeout,
    )


def run(options: Options) -> dict[str, Any]:
    from benchmarks.readers import cloud_ingest_rows  # noqa: PLC0415 - it imports this module
    from benchmarks.table import render_text  # noqa: PLC0415 - beside the reader

    supported = workers_supported()
    clients = options.workers or ((os.cpu_count() or 1) if supported else 1)
    setup = Setup(supported, options.workers, clients)
    print(setup.describe(), flush=True)
    options.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="cloud-ingest-", dir=options.parent))
    record: dict[str, Any] = {
        "benchmark": "cloud_ingest",
        "quick": options.quick,
        "workers_supported": supported,
        "workers": options.workers,
        "profiled": options.profile,
        "single": [],
    }
    profile = work / "cloud-profile.txt" if options.profile else None
    try:
        if options.chain:
            record["chain"] = run_load(
                "postgresql", options.stations, options.events, MEMBERS_PER_STATION,
                options, setup, work, profile=profile,
            )  # fmt: skip
            if profile is not None:
                top = profile.with_name(profile.name + ".top").read_text("utf-8").splitlines()
                record["profile_top"] = top
                kept = Path(tempfile.gettempdir()) / f"cloud-ingest-profile-{os.getpid()}.txt"
                shutil.copy(profile, kept)
                record["profile_file"] = str(kept)
        if options.single:
            for backend in ("sqlite", "postgresql"):
                result = run_load(
                    backend, 1, options.single_events, SINGLE_MEMBERS, options, setup, work
                )
                record["single"].append(result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"cloud ingest: {platform.machine()}, {os.cpu_count()} cores, load "
        f"{os.getloadavg()[0]:.1f}, Python {platform.python_version()}"
    )
    print(render_text(cloud_ingest_rows("cloud_ingest", record, options.quick)))
    runs = ([("chain", record["chain"])] if "chain" in record else []) + [
        (f"single station, {r['backend']}", r) for r in record["single"]
    ]
    for name, result in runs:
        print("\n".join(_details(name, result)))
    if record.get("profile_top"):
        print(f"top of the cloud's profile (self time; the whole tree: {record['profile_file']}):")
        print("\n".join("  " + line for line in record["profile_top"][:20]))
    print("RESULT " + json.dumps(record))
    return record


def main(argv: Sequence[str] | None = None) -> int:
    record = run(parse_options(argv))
    runs = ([record["chain"]] if "chain" in record else []) + record["single"]
    broken = [r for r in runs if not r["exactly_once"] or r["ledger_problems"]]
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
