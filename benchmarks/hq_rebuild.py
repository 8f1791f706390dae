"""Rebuild and check of HQ's report aggregates on a seeded PostgreSQL chain: wall time and
peak memory (the process's max RSS), to show both stay bounded as the ledger grows.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/hq_rebuild.py --sales 1000000 --members 100000

Needs a PostgreSQL server (`--admin` libpq URL); makes a database of its own and drops it.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import uuid

import psycopg

from benchmarks.hq_seed import ChainShape, seed_chain
from cloud_sync.cloud.ledger import CloudLedger, aggregates_ledger
from cloud_sync.core.privacy import MemberKeys


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sales", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="keep the database (print its URL)")
    args = parser.parse_args()
    name = f"loyalpump_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(args.admin, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = args.admin.rsplit("/", 1)[0]
    url = f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    try:
        ledger = CloudLedger.open(url, chain_keys=MemberKeys.generate("bench"))
        try:
            shape = ChainShape(members=args.members, sales=args.sales)
            began = time.perf_counter()
            ledger.db.transact(lambda conn: seed_chain(conn, shape))
            seeded = time.perf_counter() - began
            base_rss = _rss_mb()
            began = time.perf_counter()
            ledger.db.transact(aggregates_ledger.rebuild)
            rebuilt = time.perf_counter() - began
            rebuild_rss = _rss_mb()
            began = time.perf_counter()
            problems = ledger.db.read(aggregates_ledger.check)
            checked = time.perf_counter() - began
            from datetime import UTC, date, datetime  # noqa: PLC0415

            from cloud_sync.cloud.ledger import member_reports  # noqa: PLC0415

            end, now = date(2026, 11, 30), datetime.now(UTC)
            began = time.perf_counter()
            ledger.db.transact(lambda conn: member_reports.rfm(conn, end, now))
            rfm_first = time.perf_counter() - began
            began = time.perf_counter()
            ledger.db.read(lambda conn: member_reports.rfm(conn, end, now))
            rfm_again = time.perf_counter() - began
            result = {
                "sales": args.sales,
                "members": args.members,
                "seed_s": round(seeded, 1),
                "rebuild_s": round(rebuilt, 1),
                "check_s": round(checked, 1),
                "check_problems": len(problems),
                "rfm_first_view_s": round(rfm_first, 2),
                "rfm_snapshot_view_ms": round(rfm_again * 1000, 1),
                "max_rss_mb_before": round(base_rss, 1),
                "max_rss_mb_after_rebuild": round(rebuild_rss, 1),
                "max_rss_mb_after_check": round(_rss_mb(), 1),
            }
            print(json.dumps(result))
        finally:
            ledger.close()
    finally:
        if args.keep:
            print(url)
        else:
            with psycopg.connect(args.admin, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
