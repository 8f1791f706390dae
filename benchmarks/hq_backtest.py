"""Backtest throughput: sales per second through the whole backtest (keyset-streamed reads,
pricing three ways, aggregation, progress writes), against the in-run baseline of the
shared pricing function alone (`price_sale`, once per sale) and the backtest's cached
pricer alone.

    .venv/bin/python benchmarks/hq_backtest.py [--sales N] [--database-url URL] [--quick]

Sales are written straight into the ledger's tables (the push path is measured by
sync_catchup.py), 30 days of them across 30 stations and 20,000 members with realistic
tiers, grades and litres. Ends with one line `RESULT {json}`.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from sqlalchemy import insert

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.cloud.ledger.backtest import run_backtest, start_backtest
from cloud_sync.cloud.ledger.backtest_core import FastPricer
from cloud_sync.cloud.ledger.drafts import save_draft
from cloud_sync.cloud.ledger.schema import members, sales
from cloud_sync.core.pricing import SaleFacts, price_sale
from cloud_sync.core.privacy import MemberKeys
from cloud_sync.core.ruleset.parser import parse_ruleset_json

TARGET_SALES_PER_S = 20_000
RULES_TEXT = (Path(__file__).resolve().parent.parent / "config/rulesets/sample.json").read_text(
    encoding="utf-8"
)
END = datetime(2026, 3, 1, tzinfo=UTC)
START = END - timedelta(days=30)
MEMBERS = 20_000
TIERS = ("standard", "standard", "standard", "silver", "gold")


def seed(
    ledger: CloudLedger, count: int, *, index: bool
) -> list[tuple[str, Decimal, Decimal, datetime, str]]:
    rng = random.Random(7)
    ledger.publish_ruleset(RULES_TEXT, "c2ln", "bench", START - timedelta(days=400))
    member_rows = [
        {
            "member_id": f"m{n:07d}",
            "phone_masked": "138****0000",
            "key_id": "bench",
            "registered_at": (START - timedelta(days=rng.randint(0, 400))).isoformat(),
            "status": "active",
            "overdraft": 0,
            "denied": False,
        }
        for n in range(MEMBERS)
    ]
    facts = []
    rows = []
    span = (END - START).total_seconds()
    for n in range(count):
        at = (START + timedelta(seconds=span * n / count)).astimezone(UTC)
        grade = rng.choice(("92", "92", "95", "0"))
        litres = Decimal(rng.randint(500, 6000)) / 100
        amount = (litres * Decimal("7.50")).quantize(Decimal("0.01"))
        member = None if n % 4 == 0 else f"m{rng.randrange(MEMBERS):07d}"
        tier = rng.choice(TIERS) if member else None
        rows.append(
            {
                "sale_id": f"s{n:09d}",
                "station_id": f"S{n % 30:03d}",
                "event_id": f"e{n}",
                "member_id": member,
                "grade": grade,
                "litres": str(litres),
                "amount": str(amount),
                "ended_at": at.isoformat(),
                "points": 0,
                "tier": tier,
                "ruleset_version": 3 if member else None,
                "status": "recorded",
            }
        )
        if member:
            facts.append((grade, litres, amount, at, tier or "standard"))

    def work(conn):  # type: ignore[no-untyped-def]
        conn.execute(insert(members), member_rows)
        for i in range(0, len(rows), 20_000):
            conn.execute(insert(sales), rows[i : i + 20_000])

    ledger.db.transact(work)
    if index:  # the keyset's index (asked of the ledger's schema; see the report)
        ledger.db.transact(
            lambda conn: conn.exec_driver_sql(
                "CREATE INDEX IF NOT EXISTS ix_sales_ended ON sales (ended_at, sale_id)"
            )
        )
    return facts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sales", type=int, default=300_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--no-index", action="store_true", help="Without an index on sales (ended_at, sale_id)."
    )
    args = parser.parse_args()
    count = 30_000 if args.quick else args.sales
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
        ledger = CloudLedger.open(url, chain_keys=MemberKeys.generate("bench"))
        try:
            facts = seed(ledger, count, index=not args.no_index)
            rules = parse_ruleset_json(RULES_TEXT)
            began, cpu = time.perf_counter(), time.process_time()
            for grade, litres, amount, at, tier in facts:
                price_sale(rules, SaleFacts(grade, litres, amount, at), tier)
            price_rate = len(facts) / (time.perf_counter() - began)
            price_cpu_rate = len(facts) / (time.process_time() - cpu)
            fast = FastPricer()
            began = time.perf_counter()
            for grade, litres, amount, at, tier in facts:
                fast.points(rules, grade, tier, litres, amount, at)
            fast_rate = len(facts) / (time.perf_counter() - began)
            draft_text = json.loads(RULES_TEXT)
            draft_text["version"] = 4
            draft_text["earn"][0]["points_per_litre"] = "2"
            now = END + timedelta(days=1)
            db = ledger.db
            draft = db.transact(
                lambda c: save_draft(c, document=json.dumps(draft_text), by="bench", now=now)
            )
            test_id = db.transact(
                lambda c: start_backtest(
                    c,
                    draft_id=draft["draft_id"],
                    window_from=START,
                    window_to=END,
                    station_id=None,
                    by="bench",
                    now=now,
                )
            )
            began, cpu = time.perf_counter(), time.process_time()
            result = run_backtest(db, ledger.rules, test_id, lambda: now)
            elapsed = time.perf_counter() - began
            elapsed_cpu = time.process_time() - cpu
        finally:
            ledger.close()
    record = {
        "backend": url.split(":", 1)[0],
        "index": not args.no_index,
        "sales": result["sales"],
        "member_sales": result["totals"]["member_sales"],
        "backtest_sales_per_s": round(result["sales"] / elapsed),
        "backtest_s": round(elapsed, 2),
        "price_sale_per_s": round(price_rate),
        # CPU-time rates: this process's own seconds (the machine may be shared)
        "backtest_sales_per_cpu_s": round(result["sales"] / elapsed_cpu),
        "price_sale_per_cpu_s": round(price_cpu_rate),
        "fast_pricer_per_s": round(fast_rate),
        "target_sales_per_s": TARGET_SALES_PER_S,
    }
    print("RESULT " + json.dumps(record, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
