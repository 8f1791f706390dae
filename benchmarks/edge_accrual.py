"""Edge accrual benchmark: durable sale-plus-points commits and member look-ups.

What it measures, in one run and in one directory (so on one disk):

1. `record_sale` through the service layer, a member attached, the field-examples rule set
   installed, into a file store (WAL, synchronous=FULL): commits per second and the
   p50/p99/max latency of one call.
2. The raw SQLite single-row commit rate in the same directory: a plain `sqlite3`
   connection, WAL, synchronous=FULL, one INSERT + COMMIT per row, as many rows as sales,
   run in blocks alternating with the sales (--rounds) so both see the same disk; then
   the ratio accrual rate / raw rate (target >= 0.5) and accrual p99 (target < 20 ms).
3. `find_member` by phone and by plate with N members in the store (default 1,000,000,
   bulk-inserted with the station's own keys in ~50k-row store transactions): populate
   time, then p50/p99/max of random look-ups after a warm-up (target p99 < 2 ms each).

Run from the project root:

    .venv/bin/python benchmarks/edge_accrual.py [--sales N] [--members N] [--dir DIR] [--keep]

The work happens in a fresh temporary directory (under /tmp, or under DIR), removed at
the end unless --keep. The figures are printed as a table, then as one line
`RESULT {json}` for benchmarks/run_all.py to collect.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from edge_agent.services.members import register_member
from edge_agent.services.rules import install_ruleset
from edge_agent.services.sales import SaleInput, record_sale
from edge_agent.services.station import Station, open_station
from edge_agent.settings import StationSettings
from edge_agent.store.ids import uuid7

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.latency import Latency
from benchmarks.members_at_scale import (
    STATION_ID,
    bench_lookups,
    name_of,
    phone_of,
    populate,
    positive_int,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RULESET_FILE = PROJECT_ROOT / "config" / "rulesets" / "field-examples.json"
ZONE = ZoneInfo("Asia/Shanghai")

TARGET_RATIO = 0.5
TARGET_ACCRUAL_P99_MS = 20.0
TARGET_LOOKUP_P99_MS = 2.0

# Accrual members use 138 numbers, the bulk population (members_at_scale.py) 139.
ACCRUAL_PREFIX = "138"
# Pump prices per grade of the field-examples rule set (yuan per litre).
PRICES = {"92": Decimal("7.62"), "95": Decimal("8.12"), "0": Decimal("7.35")}
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Options:
    sales: int
    members: int
    accrual_members: int
    lookups: int
    warmup: int
    batch: int
    rounds: int
    seed: int
    parent: Path
    keep: bool


@dataclass(frozen=True)
class Throughput:
    count: int
    seconds: float
    latency: Latency

    @property
    def rate(self) -> float:
        return self.count / self.seconds


def open_bench_station(data_dir: Path) -> Station:
    settings = StationSettings.model_validate(
        {"station": {"id": STATION_ID, "data_dir": str(data_dir), "timezone": "Asia/Shanghai"}}
    )
    station = open_station(settings, create=True)
    install_ruleset(station, RULESET_FILE.read_bytes(), actor="bench")
    return station


def register_accrual_members(station: Station, count: int, rng: random.Random) -> list[str]:
    """Members for the sales, registered through the service like at the counter."""
    numbers = rng.sample(range(100_000_000), count)
    return [
        register_member(
            station,
            phone=phone_of(ACCRUAL_PREFIX, number),
            name=name_of(index),
            consent_channel="counter",
            actor="bench",
        ).member_id
        for index, number in enumerate(numbers)
    ]


def sale_inputs(count: int, member_ids: Sequence[str], rng: random.Random) -> list[SaleInput]:
    """Driver-reported sales ending in the recent past, one second apart, each with a member."""
    grades = list(PRICES)
    first_end = datetime.now(ZONE) - timedelta(seconds=count + 60)
    inputs: list[SaleInput] = []
    for index in range(count):
        grade = rng.choice(grades)
        price = PRICES[grade]
        litres = Decimal(rng.randint(500, 6000)) / 100  # 5.00 .. 60.00 l, exact
        amount = (litres * price).quantize(CENT, rounding=ROUND_HALF_UP)
        ended_at = first_end + timedelta(seconds=index)
        inputs.append(
            SaleInput(
                source="dart",
                pump=rng.randint(1, 12),
                nozzle=rng.randint(1, 4),
                grade=grade,
                litres=litres,
                amount=amount,
                unit_price=price,
                started_at=ended_at - timedelta(seconds=90),
                ended_at=ended_at,
                source_key=f"dart:{STATION_ID}:bench:{index}",
                member_id=rng.choice(member_ids),
            )
        )
    return inputs


class Timer:
    """Per-call latencies and the summed wall time of the timed stretches."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self.elapsed_ns = 0

    def result(self) -> Throughput:
        return Throughput(len(self.samples), self.elapsed_ns / 1e9, Latency.of(self.samples))


def accrue(station: Station, sales: Sequence[SaleInput], timer: Timer | None) -> None:
    """Record `sales` one `record_sale` call each; timed when a timer is given."""
    clock = time.perf_counter_ns
    started = clock()
    for sale in sales:
        before = clock()
        outcome = record_sale(station, sale)
        if timer is not None:
            timer.samples.append(clock() - before)
        if not outcome.created or outcome.sale.points <= 0:
            raise RuntimeError(f"sale {sale.source_key} was not recorded with points: {outcome}")
    if timer is not None:
        timer.elapsed_ns += clock() - started


class RawWriter:
    """Plain sqlite3 beside the store: WAL, synchronous=FULL, one INSERT + COMMIT per row."""

    _SQL = "INSERT INTO rows (id, body) VALUES (?, ?)"
    _BODY = "x" * 400  # about the size of one sale row

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None)
        mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            self._conn.close()
            raise RuntimeError(f"{path}: cannot switch to WAL (got {mode})")
        self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.execute("CREATE TABLE rows (id TEXT PRIMARY KEY, body TEXT NOT NULL) STRICT")

    def write(self, count: int, timer: Timer | None) -> None:
        rows = [(uuid7(), self._BODY) for _ in range(count)]
        conn, sql, clock = self._conn, self._SQL, time.perf_counter_ns
        started = clock()
        for row in rows:
            before = clock()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(sql, row)
            conn.execute("COMMIT")
            if timer is not None:
                timer.samples.append(clock() - before)
        if timer is not None:
            timer.elapsed_ns += clock() - started

    def close(self) -> None:
        self._conn.close()


def bench_commits(
    station: Station, raw_path: Path, inputs: Sequence[SaleInput], warmup: int, rounds: int
) -> tuple[Throughput, Throughput]:
    """(record_sale, raw) timings, interleaved in `rounds` blocks of equal counts.

    Alternating blocks lets both see the same disk weather (other writers, the host's
    flushes), so the ratio compares like with like; each side first runs `warmup`
    untimed commits.
    """
    accrual, raw = Timer(), Timer()
    writer = RawWriter(raw_path)
    try:
        accrue(station, inputs[:warmup], None)
        writer.write(warmup, None)
        timed = inputs[warmup:]
        bounds = [len(timed) * step // rounds for step in range(rounds + 1)]
        for low, high in itertools.pairwise(bounds):
            accrue(station, timed[low:high], accrual)
            writer.write(high - low, raw)
    finally:
        writer.close()
    return accrual.result(), raw.result()


def _verdict(ok: bool) -> str:
    return "pass" if ok else "short"


def _table(rows: Sequence[tuple[str, str, str, str]]) -> str:
    header = ("figure", "value", "target", "verdict")
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(4)]
    lines = []
    for row in (header, *rows):
        cells = [
            row[0].ljust(widths[0]),
            row[1].rjust(widths[1]),
            row[2].ljust(widths[2]),
            row[3].ljust(widths[3]),
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        description="Durable record_sale rate vs raw SQLite, and member look-ups at scale."
    )
    parser.add_argument("--sales", type=positive_int, default=2000, help="timed sales (2000)")
    parser.add_argument(
        "--members", type=positive_int, default=1_000_000, help="members for look-ups (1,000,000)"
    )
    parser.add_argument(
        "--accrual-members", type=positive_int, default=200, help="members the sales go to (200)"
    )
    parser.add_argument("--lookups", type=positive_int, default=2000, help="timed look-ups (2000)")
    parser.add_argument("--warmup", type=positive_int, default=200, help="untimed look-ups (200)")
    parser.add_argument("--batch", type=positive_int, default=50_000, help="rows per populate tx")
    parser.add_argument(
        "--rounds", type=positive_int, default=10, help="alternating sale/raw blocks (10)"
    )
    parser.add_argument("--seed", type=int, default=2026, help="random seed (2026)")
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="parent directory of the fresh work directory (default: the temp dir)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    return Options(
        sales=args.sales,
        members=args.members,
        accrual_members=args.accrual_members,
        lookups=args.lookups,
        warmup=args.warmup,
        batch=args.batch,
        rounds=min(args.rounds, args.sales),
        seed=args.seed,
        parent=args.dir,
        keep=args.keep,
    )


def run(options: Options) -> dict[str, Any]:
    rng = random.Random(options.seed)
    load_start = os.getloadavg()[0]
    options.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="edge-accrual-", dir=options.parent))

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        station = open_bench_station(work / "station")
        try:
            progress(f"work directory {work}")
            progress(f"registering {options.accrual_members} members for the sales")
            member_ids = register_accrual_members(station, options.accrual_members, rng)
            sale_warmup = min(50, options.sales)
            inputs = sale_inputs(sale_warmup + options.sales, member_ids, rng)
            progress(
                f"{options.sales} record_sale calls and {options.sales} raw sqlite commits "
                f"(+{sale_warmup} warm-up each) in {options.rounds} alternating rounds"
            )
            accrual, raw = bench_commits(
                station, work / "raw.sqlite3", inputs, sale_warmup, options.rounds
            )
            progress(f"populating {options.members:,} members")
            population = populate(station, options.members, options.batch, rng, progress)
            store_file = station.settings.store_path
            store_bytes = store_file.stat().st_size
            wal_file = store_file.with_name(store_file.name + "-wal")
            wal_bytes = wal_file.stat().st_size if wal_file.exists() else 0
            progress(f"looking up {options.lookups} members by phone, then by plate")
            by_phone = bench_lookups(
                station, population, "phone", options.lookups, options.warmup, rng
            )
            by_plate = bench_lookups(
                station, population, "plate", options.lookups, options.warmup, rng
            )
        finally:
            station.close()
    finally:
        if options.keep:
            progress(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    load_end = os.getloadavg()[0]
    ratio = accrual.rate / raw.rate
    return {
        "benchmark": "edge_accrual",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "dir": str(options.parent),
        "cpus": os.cpu_count(),
        "load_start": round(load_start, 2),
        "load_end": round(load_end, 2),
        "sales": accrual.count,
        "accrual_rate_per_s": round(accrual.rate, 1),
        "accrual_p50_ms": round(accrual.latency.p50_ms, 3),
        "accrual_p99_ms": round(accrual.latency.p99_ms, 3),
        "accrual_max_ms": round(accrual.latency.max_ms, 3),
        "raw_rate_per_s": round(raw.rate, 1),
        "raw_p50_ms": round(raw.latency.p50_ms, 3),
        "raw_p99_ms": round(raw.latency.p99_ms, 3),
        "ratio": round(ratio, 3),
        "ratio_target": TARGET_RATIO,
        "ratio_ok": ratio >= TARGET_RATIO,
        "accrual_p99_target_ms": TARGET_ACCRUAL_P99_MS,
        "accrual_p99_ok": accrual.latency.p99_ms < TARGET_ACCRUAL_P99_MS,
        "members": population.count,
        "populate_s": round(population.seconds, 1),
        "populate_prepare_s": round(population.prepare_seconds, 1),
        "populate_insert_s": round(population.insert_seconds, 1),
        "populate_rate_per_s": round(population.count / population.seconds, 1),
        "store_mb": round(store_bytes / 1e6, 1),
        "wal_mb": round(wal_bytes / 1e6, 1),
        "lookups": by_phone.count,
        "phone_p50_ms": round(by_phone.p50_ms, 3),
        "phone_p99_ms": round(by_phone.p99_ms, 3),
        "phone_max_ms": round(by_phone.max_ms, 3),
        "phone_p99_ok": by_phone.p99_ms < TARGET_LOOKUP_P99_MS,
        "plate_p50_ms": round(by_plate.p50_ms, 3),
        "plate_p99_ms": round(by_plate.p99_ms, 3),
        "plate_max_ms": round(by_plate.max_ms, 3),
        "plate_p99_ok": by_plate.p99_ms < TARGET_LOOKUP_P99_MS,
        "lookup_p99_target_ms": TARGET_LOOKUP_P99_MS,
    }


def report(result: dict[str, Any]) -> str:
    def ms(key: str) -> str:
        return f"{result[key]:.3f}"

    def judged(label: str, value: str, bound: str, ok_key: str) -> tuple[str, str, str, str]:
        """A row with a target: the figure, the bound it must meet and the verdict."""
        return (label, value, bound, _verdict(result[ok_key]))

    accrual_bound = f"< {TARGET_ACCRUAL_P99_MS:g}"
    lookup_bound = f"< {TARGET_LOOKUP_P99_MS:g}"
    ratio_bound = f">= {TARGET_RATIO:g}"

    sales, members = result["sales"], result["members"]
    rows = [
        (f"record_sale commits/s ({sales} sales)", f"{result['accrual_rate_per_s']:.1f}", "", ""),
        ("record_sale p50 ms", ms("accrual_p50_ms"), "", ""),
        judged("record_sale p99 ms", ms("accrual_p99_ms"), accrual_bound, "accrual_p99_ok"),
        ("record_sale max ms", ms("accrual_max_ms"), "", ""),
        (f"raw sqlite commits/s ({sales} rows)", f"{result['raw_rate_per_s']:.1f}", "", ""),
        ("raw sqlite p50 ms", ms("raw_p50_ms"), "", ""),
        ("raw sqlite p99 ms", ms("raw_p99_ms"), "", ""),
        judged("ratio accrual / raw", f"{result['ratio']:.3f}", ratio_bound, "ratio_ok"),
        (f"populate {members:,} members s", f"{result['populate_s']:.1f}", "", ""),
        ("  of which crypto + rows s", f"{result['populate_prepare_s']:.1f}", "", ""),
        ("  of which insert + commit s", f"{result['populate_insert_s']:.1f}", "", ""),
        ("store file MB (+ WAL MB)", f"{result['store_mb']:.1f} (+{result['wal_mb']:.1f})", "", ""),
        ("find_member by phone p50 ms", ms("phone_p50_ms"), "", ""),
        judged("find_member by phone p99 ms", ms("phone_p99_ms"), lookup_bound, "phone_p99_ok"),
        ("find_member by phone max ms", ms("phone_max_ms"), "", ""),
        ("find_member by plate p50 ms", ms("plate_p50_ms"), "", ""),
        judged("find_member by plate p99 ms", ms("plate_p99_ms"), lookup_bound, "plate_p99_ok"),
        ("find_member by plate max ms", ms("plate_max_ms"), "", ""),
    ]
    title = (
        f"edge accrual benchmark: python {result['python']}, sqlite {result['sqlite']}, "
        f"dir {result['dir']}, {result['lookups']} look-ups each, "
        f"{result['cpus']} cpus, load {result['load_start']:.2f} -> {result['load_end']:.2f}"
    )
    return f"{title}\n{_table(rows)}"


def main(argv: Sequence[str] | None = None) -> int:
    result = run(parse_options(argv))
    print(report(result))
    print("RESULT " + json.dumps(result, ensure_ascii=False, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
