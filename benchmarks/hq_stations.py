"""The HQ stations list at 2,000 stations (hq-console.md, "Sizes"): stations with their
high-water marks, allowances, redemptions, flags, rejected events and sales inserted in bulk,
then the list (`station_rows`) read again and again; p95 is the figure (target < 300 ms).

    .venv/bin/python benchmarks/hq_stations.py --database-url postgresql://… [--stations N]
        [--sales-per-station N] [--runs N]

Not in run_all.py yet: the lead decides where the console's benchmarks go.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from cloud_sync.cloud.ledger.database import Database, bulk_insert
from cloud_sync.cloud.ledger.schema import (
    allowances,
    events,
    high_water,
    redemptions,
    sales,
    station_flags,
    stations,
)
from cloud_sync.cloud.ledger.station_admin import station_rows

__all__ = ["bench_station_list", "populate_stations"]


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def populate_stations(db: Database, count: int, sales_per_station: int, now: datetime) -> None:
    """`count` stations, every fifth never seen, each of the others with a mark, an
    allowance with a redemption, a flag, a rejected event and `sales_per_station` sales
    (one in ten claiming a point more than the cloud's pricing)."""

    def work(conn: Any) -> None:
        station_list, marks, grants, spent, flags, rejected, sold = [], [], [], [], [], [], []
        for n in range(count):
            sid = f"B{n:05d}"
            seen = n % 5 != 0
            last = now - timedelta(minutes=n % 3000)
            station_list.append(
                {
                    "station_id": sid,
                    "name": f"站 {n}",
                    "token_hash": uuid.uuid4().hex + uuid.uuid4().hex,
                    "added_at": (now - timedelta(days=90)).isoformat(),
                    "keys_uploaded_at": last.isoformat() if seen else None,
                    "last_push_at": last.isoformat() if seen else None,
                }
            )
            if not seen:
                continue
            marks.append({"station_id": sid, "epoch": 1, "first_seq": 1, "high_water": 500 + n})
            allowance_id = str(uuid.uuid4())
            grants.append(
                {
                    "allowance_id": allowance_id,
                    "station_id": sid,
                    "points": 50_000,
                    "per_member_cap": 5_000,
                    "max_snapshot_age_s": 259_200,
                    "granted_at": last.isoformat(),
                    "granted_ms": _ms(last),
                    "expires_at": (last + timedelta(days=3)).isoformat(),
                    "expires_ms": _ms(last + timedelta(days=3)),
                }
            )
            spent.append(
                {
                    "station_id": sid,
                    "redemption_id": f"R{n}",
                    "member_id": f"M{n}",
                    "points": 100,
                    "value_fen": 100,
                    "allowance_id": allowance_id,
                    "shortfall": 0,
                    "at": last.isoformat(),
                    "event_id": f"E-R{n}",
                }
            )
            flags.append(
                {
                    "station_id": sid,
                    "event_id": f"E-F{n}",
                    "code": "redemption.no_allowance",
                    "detail": "bench",
                    "member_id": None,
                    "points": 10,
                    "shortfall": 0,
                    "suspends": True,
                    "flagged_at": last.isoformat(),
                    "flagged_ms": _ms(last),
                }
            )
            rejected.append(
                {
                    "event_id": f"E-Q{n}",
                    "station_id": sid,
                    "epoch": 1,
                    "seq": 1,
                    "kind": "sale.reversed",
                    "payload_hash": "x",
                    "status": "rejected",
                    "reason": "sale.unknown: bench",
                    "received_at": last.isoformat(),
                    "body": "{}",
                }
            )
            for k in range(sales_per_station):
                at = last - timedelta(minutes=k)
                sold.append(
                    {
                        "sale_id": f"S{n}-{k}",
                        "station_id": sid,
                        "event_id": f"E-S{n}-{k}",
                        "member_id": None,
                        "grade": "92",
                        "litres": "40.00",
                        "amount": "300.00",
                        "ended_at": at.isoformat(),
                        "points": 41 if k % 10 == 0 else 40,
                        "tier": None,
                        "ruleset_version": 3,
                        "recomputed": 40,
                        "status": "recorded",
                    }
                )
        for table, rows in (
            (stations, station_list),
            (high_water, marks),
            (allowances, grants),
            (redemptions, spent),
            (station_flags, flags),
            (events, rejected),
            (sales, sold),
        ):
            bulk_insert(conn, table, rows)

    db.transact(work)


def bench_station_list(db: Database, now: datetime, runs: int) -> dict[str, float]:
    """Read the whole list `runs` times; p50/p95/max in milliseconds."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter_ns()
        db.read(lambda conn: station_rows(conn, now, sort="health"))
        samples.append(time.perf_counter_ns() - started)
    ordered = sorted(samples)

    def pick(fraction: float) -> float:
        return ordered[max(1, math.ceil(fraction * len(ordered))) - 1] / 1e6

    return {"p50_ms": pick(0.5), "p95_ms": pick(0.95), "max_ms": ordered[-1] / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="an empty ledger database")
    parser.add_argument("--stations", type=int, default=2000)
    parser.add_argument("--sales-per-station", type=int, default=50)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    now = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    db = Database.open(args.database_url)
    try:
        populate_stations(db, args.stations, args.sales_per_station, now)
        figures = bench_station_list(db, now, args.runs)
    finally:
        db.close()
    print("RESULT " + json.dumps({"stations": args.stations, **figures}))


if __name__ == "__main__":
    main()
