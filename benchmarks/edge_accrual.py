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
import math
import os
import platform
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cloud_sync.loyalty.identity import mask_phone, normalize_phone, normalize_plate
from cloud_sync.loyalty.privacy import blind_index, encrypt_field
from edge_agent.services.members import find_member, register_member
from edge_agent.services.rules import install_ruleset
from edge_agent.services.sales import SaleInput, record_sale
from edge_agent.services.station import Station, open_station
from edge_agent.settings import StationSettings
from edge_agent.store.ids import uuid7
from edge_agent.store.members import MemberRow, PlateRow

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RULESET_FILE = PROJECT_ROOT / "config" / "rulesets" / "field-examples.json"
STATION_ID = "BENCH01"
ZONE = ZoneInfo("Asia/Shanghai")

TARGET_RATIO = 0.5
TARGET_ACCRUAL_P99_MS = 20.0
TARGET_LOOKUP_P99_MS = 2.0

# Mainland province abbreviations (31) and authority letters, for generated plates.
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
# Accrual members use 138 numbers, the bulk population 139: the two never collide.
ACCRUAL_PREFIX = "138"
POPULATION_PREFIX = "139"
# Pump prices per grade of the field-examples rule set (yuan per litre).
PRICES = {"92": Decimal("7.62"), "95": Decimal("8.12"), "0": Decimal("7.35")}
CENT = Decimal("0.01")
NS_PER_MS = 1_000_000

MEMBER_SQL = "INSERT INTO members ({}) VALUES ({})".format(
    ", ".join(MemberRow.__dataclass_fields__),
    ", ".join("?" * len(MemberRow.__dataclass_fields__)),
)
PLATE_SQL = "INSERT INTO plates ({}) VALUES ({})".format(
    ", ".join(PlateRow.__dataclass_fields__),
    ", ".join("?" * len(PlateRow.__dataclass_fields__)),
)


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
class Latency:
    """Latency figures in milliseconds from a list of nanosecond samples."""

    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, samples_ns: Sequence[int]) -> Latency:
        ordered = sorted(samples_ns)
        return cls(
            count=len(ordered),
            p50_ms=_percentile(ordered, 0.50) / NS_PER_MS,
            p99_ms=_percentile(ordered, 0.99) / NS_PER_MS,
            max_ms=ordered[-1] / NS_PER_MS,
        )


@dataclass(frozen=True)
class Throughput:
    count: int
    seconds: float
    latency: Latency

    @property
    def rate(self) -> float:
        return self.count / self.seconds


@dataclass(frozen=True)
class Population:
    count: int
    phone_numbers: list[int]  # the 8 digits after the 139 prefix, member i
    plate_codes: list[int]  # see `_plate`, member i
    seconds: float
    prepare_seconds: float  # normalising, blind indexes, encryption
    insert_seconds: float  # executemany + COMMIT


def _percentile(ordered: Sequence[int], fraction: float) -> int:
    """Nearest-rank percentile of an ascending, non-empty sequence."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _phone(prefix: str, number: int) -> str:
    return f"{prefix}{number:08d}"


def _plate(code: int) -> str:
    province, rest = divmod(code, len(LETTERS) * 100_000)
    letter, digits = divmod(rest, 100_000)
    return f"{PROVINCES[province]}{LETTERS[letter]}{digits:05d}"


def _name(index: int) -> str:
    given = GIVEN[index % len(GIVEN)]
    if index % 3:
        given += GIVEN[(index // len(GIVEN)) % len(GIVEN)]
    return SURNAMES[(index // 7) % len(SURNAMES)] + given


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
            phone=_phone(ACCRUAL_PREFIX, number),
            name=_name(index),
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


def _check_generated(phone_numbers: Sequence[int], plate_codes: Sequence[int]) -> None:
    """The generators must produce what the service itself would accept and store."""
    for number in phone_numbers[:20]:
        national = _phone(POPULATION_PREFIX, number)
        if normalize_phone(national) != "+86" + national:
            raise RuntimeError(f"generated phone {national} is not a valid mainland mobile")
    for code in plate_codes[:20]:
        plate = _plate(code)
        if normalize_plate(plate) != plate:
            raise RuntimeError(f"generated plate {plate} is not canonical")


def populate(
    station: Station, count: int, batch: int, rng: random.Random, progress: Callable[[str], None]
) -> Population:
    """Insert `count` members with one plate each, `batch` rows per store transaction."""
    phone_numbers = rng.sample(range(100_000_000), count)
    plate_codes = rng.sample(range(len(PROVINCES) * len(LETTERS) * 100_000), count)
    _check_generated(phone_numbers, plate_codes)
    keys = station.keys
    prepare_ns = insert_ns = 0
    started = time.perf_counter_ns()
    for first in range(0, count, batch):
        t0 = time.perf_counter_ns()
        now = station.now()
        at, at_ms = now.isoformat(), int(now.timestamp() * 1000)
        members: list[tuple[Any, ...]] = []
        plates: list[tuple[Any, ...]] = []
        for index in range(first, min(first + batch, count)):
            e164 = "+86" + _phone(POPULATION_PREFIX, phone_numbers[index])
            plate = _plate(plate_codes[index])
            member = MemberRow(
                member_id=uuid7(),
                phone_index=blind_index(keys, "phone", e164),
                phone_sealed=encrypt_field(keys, "phone", e164),
                phone_masked=mask_phone(e164),
                name_sealed=encrypt_field(keys, "name", _name(index)),
                registered_at=at,
                registered_at_ms=at_ms,
                registered_station=STATION_ID,
                consent_at=at,
                consent_channel="counter",
                tier="standard",
                tier_since=at,
                status="active",
            )
            members.append(tuple(vars(member).values()))
            row = PlateRow(
                plate_index=blind_index(keys, "plate", plate),
                member_id=member.member_id,
                plate_sealed=encrypt_field(keys, "plate", plate),
                attached_at=at,
            )
            plates.append(tuple(vars(row).values()))
        t1 = time.perf_counter_ns()
        with station.store.write() as tx:
            tx.conn.executemany(MEMBER_SQL, members)
            tx.conn.executemany(PLATE_SQL, plates)
        t2 = time.perf_counter_ns()
        prepare_ns += t1 - t0
        insert_ns += t2 - t1
        done = first + len(members)
        elapsed = (t2 - started) / 1e9
        progress(f"  populated {done:>9,} / {count:,} members in {elapsed:7.1f} s")
    total = (time.perf_counter_ns() - started) / 1e9
    return Population(count, phone_numbers, plate_codes, total, prepare_ns / 1e9, insert_ns / 1e9)


def bench_lookups(
    station: Station,
    population: Population,
    kind: str,
    count: int,
    warmup: int,
    rng: random.Random,
) -> Latency:
    """`find_member` by phone (typed as 11 digits) or by plate, random existing members."""
    picks = [rng.randrange(population.count) for _ in range(warmup + count)]
    samples: list[int] = []
    clock = time.perf_counter_ns
    for position, index in enumerate(picks):
        national = _phone(POPULATION_PREFIX, population.phone_numbers[index])
        plate = _plate(population.plate_codes[index])
        if kind == "phone":
            before = clock()
            view = find_member(station, phone=national)
            spent = clock() - before
        else:
            before = clock()
            view = find_member(station, plate=plate)
            spent = clock() - before
        if view.phone_masked != mask_phone("+86" + national) or view.plates != (plate,):
            raise RuntimeError(f"look-up by {kind} found the wrong member: {view}")
        if position >= warmup:
            samples.append(spent)
    return Latency.of(samples)


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


def _positive(text: str) -> int:
    value = int(text.replace("_", "").replace(",", ""))
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        description="Durable record_sale rate vs raw SQLite, and member look-ups at scale."
    )
    parser.add_argument("--sales", type=_positive, default=2000, help="timed sales (2000)")
    parser.add_argument(
        "--members", type=_positive, default=1_000_000, help="members for look-ups (1,000,000)"
    )
    parser.add_argument(
        "--accrual-members", type=_positive, default=200, help="members the sales go to (200)"
    )
    parser.add_argument("--lookups", type=_positive, default=2000, help="timed look-ups (2000)")
    parser.add_argument("--warmup", type=_positive, default=200, help="untimed look-ups (200)")
    parser.add_argument("--batch", type=_positive, default=50_000, help="rows per populate tx")
    parser.add_argument(
        "--rounds", type=_positive, default=10, help="alternating sale/raw blocks (10)"
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

    sales, members = result["sales"], result["members"]
    rows = [
        (f"record_sale commits/s ({sales} sales)", f"{result['accrual_rate_per_s']:.1f}", "", ""),
        ("record_sale p50 ms", ms("accrual_p50_ms"), "", ""),
        (
            "record_sale p99 ms",
            ms("accrual_p99_ms"),
            f"< {TARGET_ACCRUAL_P99_MS:g}",
            _verdict(result["accrual_p99_ok"]),
        ),
        ("record_sale max ms", ms("accrual_max_ms"), "", ""),
        (f"raw sqlite commits/s ({sales} rows)", f"{result['raw_rate_per_s']:.1f}", "", ""),
        ("raw sqlite p50 ms", ms("raw_p50_ms"), "", ""),
        ("raw sqlite p99 ms", ms("raw_p99_ms"), "", ""),
        (
            "ratio accrual / raw",
            f"{result['ratio']:.3f}",
            f">= {TARGET_RATIO:g}",
            _verdict(result["ratio_ok"]),
        ),
        (f"populate {members:,} members s", f"{result['populate_s']:.1f}", "", ""),
        ("  of which crypto + rows s", f"{result['populate_prepare_s']:.1f}", "", ""),
        ("  of which insert + commit s", f"{result['populate_insert_s']:.1f}", "", ""),
        ("store file MB (+ WAL MB)", f"{result['store_mb']:.1f} (+{result['wal_mb']:.1f})", "", ""),
        ("find_member by phone p50 ms", ms("phone_p50_ms"), "", ""),
        (
            "find_member by phone p99 ms",
            ms("phone_p99_ms"),
            f"< {TARGET_LOOKUP_P99_MS:g}",
            _verdict(result["phone_p99_ok"]),
        ),
        ("find_member by phone max ms", ms("phone_max_ms"), "", ""),
        ("find_member by plate p50 ms", ms("plate_p50_ms"), "", ""),
        (
            "find_member by plate p99 ms",
            ms("plate_p99_ms"),
            f"< {TARGET_LOOKUP_P99_MS:g}",
            _verdict(result["plate_p99_ok"]),
        ),
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
