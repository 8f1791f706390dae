"""The HQ console at a chain's size (issue 16): 1,000,000 members and 10,000,000 sales in
PostgreSQL; the dashboard, liability and member reports' p50/p95 server side, and the
backtest's throughput over the last 30 days of those sales.

    .venv/bin/python benchmarks/hq_console.py [--members N] [--sales N] [--runs N]
        [--warmup N] [--pg postgresql://postgres@127.0.0.1:5432/postgres] [--fresh] [--quick]

Data: benchmarks/hq_seed.py writes the year in the database itself; the seeded database is
kept and reused by later runs of the same shape (hq_template.py; `--fresh` seeds anew), and
the report aggregates are filled by the product's rebuild, whose time and peak RSS are
figures here. Reports: the functions the console's routes call, in-process on the seeded
database, then the same through the ASGI app (the route, auth and JSON included); in-run
baselines, timed the same way: one station row by its key (in-process) and GET /api/v1/hq/me
through the same app (the route's own cost: auth, routing, JSON). Backtest: start_backtest and
run_backtest of a draft equal to the published rule set with one earn rate changed; in-run
baseline: `price_sale` alone over the same sales held in memory. Member import is its own
benchmark (member_import.py). Ends with one line `RESULT {json}`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Connection, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from benchmarks.hq_seed import ChainShape
from benchmarks.hq_template import RULES_TEXT, prepare
from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.cloud.ledger import member_reports as mr
from cloud_sync.cloud.ledger import report_tables as rt
from cloud_sync.cloud.ledger import reports_hq as rh
from cloud_sync.cloud.ledger.backtest import run_backtest, start_backtest
from cloud_sync.cloud.ledger.backtest_core import FastPricer
from cloud_sync.cloud.ledger.drafts import save_draft
from cloud_sync.cloud.ledger.schema import sales, stations
from cloud_sync.cloud.server.app import build_cloud_app
from cloud_sync.cloud.server.keyfiles import load_or_create_signing_key
from cloud_sync.cloud.server.settings import CloudSettings
from cloud_sync.core.pricing import SaleFacts, price_sale
from cloud_sync.core.privacy import MemberKeys
from cloud_sync.core.ruleset.parser import parse_ruleset_json

__all__ = ["TARGET_IMPORT_S", "TARGET_REPORT_P95_MS", "TARGET_SALES_PER_S"]

TARGET_REPORT_P95_MS = 300.0
TARGET_SALES_PER_S = 20_000.0
TARGET_IMPORT_S = 60.0
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TOKEN = "bench-admin-token-0123456789abcdef0123456789"
STATION = "S001"
BUDGET_S = 90.0
# the member report is chain-wide but for its growth table, and reads 180 days of sales
SCOPES: tuple[tuple[str, str | None], ...] = (
    ("dashboard", None),
    ("dashboard", STATION),
    ("liability", None),
    ("liability", STATION),
    ("members", None),
)
QUICK = {"members": 20_000, "sales": 100_000, "runs": 10, "warmup": 2}


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def timed(
    work: Callable[[], object], runs: int, warmup: int, budget_s: float = BUDGET_S
) -> dict[str, float]:
    """p50/p95/max in ms of `runs` calls after `warmup` untimed ones; a call so slow that
    `runs` of them would overrun `budget_s` gets fewer runs (at least 3; `runs` says)."""
    started = time.perf_counter()
    for _ in range(max(1, warmup)):
        work()
    first = (time.perf_counter() - started) / max(1, warmup)
    if first * runs > budget_s:
        runs = max(3, int(budget_s / first))
    samples = []
    for _ in range(runs):
        started_ns = time.perf_counter_ns()
        work()
        samples.append((time.perf_counter_ns() - started_ns) / 1e6)
    ordered = sorted(samples)
    return {
        "p50_ms": round(_percentile(ordered, 0.5), 2),
        "p95_ms": round(_percentile(ordered, 0.95), 2),
        "max_ms": round(ordered[-1], 2),
        "runs": runs,
    }


def report(conn: Connection, name: str, station: str | None, now: datetime) -> object:
    """What GET /api/v1/hq/reports/{name}?range=30d computes (console/reports.py)."""
    period = rt.period_of(conn, now, "30d")
    scope = rt.check_station(conn, station)
    if name == "dashboard":
        return rh.dashboard(conn, period, scope, now)
    if name == "members":
        return mr.member_report(conn, period.start, period.end, scope)
    found = rt.table(conn, name, period, scope, now)
    return (found.rows, rh.outstanding(conn, now, scope), rh.expiring(conn, now))


def station_row(conn: Connection) -> object:
    return conn.execute(select(stations).where(stations.c.station_id == STATION)).one()


def bench_reports(
    ledger: CloudLedger, url: str, now: datetime, runs: int, warmup: int
) -> dict[str, Any]:
    db = ledger.db
    figures: dict[str, Any] = {
        "baseline_in_process": timed(lambda: db.read(station_row), runs, warmup)
    }
    results: list[dict[str, Any]] = []

    def one(name: str, station: str | None) -> Callable[[], object]:
        return lambda: db.read(lambda c: report(c, name, station, now))

    for name, station in SCOPES:
        figure = timed(one(name, station), runs, warmup)
        results.append({"report": name, "scope": station or "chain", "via": "in-process", **figure})
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        settings = CloudSettings.model_validate(
            {"cloud": {"data_dir": str(data), "database_url": url, "admin_token": TOKEN}}
        )
        app = build_cloud_app(
            settings,
            ledger=ledger,
            signing_key=load_or_create_signing_key(data),
            clock=lambda: now,
            chain_keys=MemberKeys.generate("bench"),
        )
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with TestClient(app) as client:

            def get(path: str) -> None:
                answer = client.get(path, headers=headers)
                if answer.status_code != 200:
                    raise RuntimeError(f"GET {path}: {answer.status_code} {answer.text[:300]}")

            figures["baseline_route"] = timed(lambda: get("/api/v1/hq/me"), runs, warmup)
            for name, station in SCOPES:
                query = "range=30d" + (f"&station={station}" if station else "")
                figure = timed(partial(get, f"/api/v1/hq/reports/{name}?{query}"), runs, warmup)
                results.append(
                    {"report": name, "scope": station or "chain", "via": "route", **figure}
                )
    figures["reports"] = results
    return figures


def bench_backtest(ledger: CloudLedger, end: datetime) -> dict[str, Any]:
    """The product's backtest over the last 30 days, and price_sale alone over those sales."""
    start = end - timedelta(days=30)
    db = ledger.db
    columns = (sales.c.grade, sales.c.litres, sales.c.amount, sales.c.ended_at, sales.c.tier)
    window = (sales.c.ended_at >= start.isoformat(), sales.c.ended_at < end.isoformat())
    facts = [
        (g, Decimal(li), Decimal(a), datetime.fromisoformat(at), t or "standard")
        for g, li, a, at, t in db.read(lambda c: c.execute(select(*columns).where(*window)).all())
    ]
    rules = parse_ruleset_json(RULES_TEXT)
    began, cpu = time.perf_counter(), time.process_time()
    for grade, litres, amount, at, tier in facts:
        price_sale(rules, SaleFacts(grade, litres, amount, at), tier)
    price_s, price_cpu = time.perf_counter() - began, time.process_time() - cpu
    fast = FastPricer()
    began = time.perf_counter()
    for grade, litres, amount, at, tier in facts:
        fast.points(rules, grade, tier, litres, amount, at)
    fast_s = time.perf_counter() - began
    draft_text = json.loads(RULES_TEXT)
    draft_text["version"] = int(draft_text["version"]) + 1
    draft_text["earn"][0]["points_per_litre"] = "2"
    now = end + timedelta(days=1)
    draft = db.transact(
        lambda c: save_draft(c, document=json.dumps(draft_text), by="bench", now=now)
    )
    test_id = db.transact(
        lambda c: start_backtest(
            c,
            draft_id=draft["draft_id"],
            window_from=start,
            window_to=end,
            station_id=None,
            by="bench",
            now=now,
        )
    )
    began, cpu = time.perf_counter(), time.process_time()
    result = run_backtest(db, ledger.rules, test_id, lambda: now)
    elapsed, elapsed_cpu = time.perf_counter() - began, time.process_time() - cpu
    return {
        "window_sales": result["sales"],
        "window_member_sales": result["totals"]["member_sales"],
        "priced_in_memory": len(facts),
        "backtest_s": round(elapsed, 2),
        "backtest_sales_per_s": round(result["sales"] / elapsed),
        "backtest_sales_per_cpu_s": round(result["sales"] / elapsed_cpu),
        "price_sale_per_s": round(len(facts) / price_s),
        "price_sale_per_cpu_s": round(len(facts) / price_cpu),
        "fast_pricer_per_s": round(len(facts) / fast_s),
    }


def print_table(record: dict[str, Any]) -> None:
    seed = record["seed"]
    print(
        f"chain: {record['members']:,} members, {record['sales']:,} sales "
        f"({'reused' if seed['reused'] else 'seeded'}: seed {seed['seed_s']} s, aggregates "
        f"{seed['fill']} {seed['rebuild_s']} s, peak RSS {seed['rebuild_peak_rss_mb']} MB)"
    )
    print(f"{'report':<10} {'scope':<6} {'via':<11} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9} runs")
    for row in record["reports"]:
        print(
            f"{row['report']:<10} {row['scope']:<6} {row['via']:<11} {row['p50_ms']:>9.1f} "
            f"{row['p95_ms']:>9.1f} {row['max_ms']:>9.1f} {row['runs']:>4}"
        )
    for key in ("baseline_in_process", "baseline_route"):
        b = record[key]
        print(f"{key:<29} {b['p50_ms']:>9.2f} {b['p95_ms']:>9.2f} {b['max_ms']:>9.2f}")
    bt = record["backtest"]
    print(
        f"backtest: {bt['window_sales']:,} sales in {bt['backtest_s']} s = "
        f"{bt['backtest_sales_per_s']:,}/s (target >= {TARGET_SALES_PER_S:,.0f}/s); "
        f"price_sale alone {bt['price_sale_per_s']:,}/s, FastPricer {bt['fast_pricer_per_s']:,}/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--sales", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--pg", default=PG_ADMIN, help="an admin URL of the PostgreSQL server")
    parser.add_argument("--fresh", action="store_true", help="seed anew, even when kept")
    parser.add_argument("--quick", action="store_true", help=f"small sizes: {QUICK}")
    args = parser.parse_args()
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    shape = ChainShape(members=args.members, sales=args.sales)
    url, seeded = prepare(args.pg, shape, fresh=args.fresh)
    end = datetime.fromisoformat(shape.end_iso)
    ledger = CloudLedger.open(url, chain_keys=MemberKeys.generate("bench"))
    try:
        figures = bench_reports(ledger, url, end - timedelta(minutes=1), args.runs, args.warmup)
        backtest = bench_backtest(ledger, end)
    finally:
        ledger.close()
    record = {
        "benchmark": "hq_console",
        "members": shape.members,
        "sales": shape.sales,
        "seed": seeded,
        **figures,
        "backtest": backtest,
        "target_report_p95_ms": TARGET_REPORT_P95_MS,
        "target_sales_per_s": TARGET_SALES_PER_S,
    }
    print_table(record)
    print("RESULT " + json.dumps(record, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
