"""Cashier look-up over HTTP: request to rendered member card, with 1,000,000 members.

Populates a real station store (the same bulk population as `edge_accrual.py`), serves the
cashier page with uvicorn on loopback, logs in as a cashier and times `GET /ui/lookup?q=`
(the HTML member card the cashier sees after typing and pressing Enter) by phone and by
plate, from the request leaving the client to the last byte of the rendered card.
Target: p99 under 100 ms each.

In-run baseline: after each look-up the same client fetches `/static/app.css` from the same
server (same HTTP stack and middleware, no store, no template), so the ratio look-up p99 /
baseline p99 says how much the look-up itself adds on this machine at this moment.

    .venv/bin/python benchmarks/cashier_lookup.py [--members 1000000] [--lookups 1000]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.edge_accrual import open_bench_station
from benchmarks.latency import Latency
from benchmarks.members_at_scale import POPULATION_PREFIX, phone_of, plate_of, populate
from edge_agent.services.users import add_user
from edge_agent.web.app import build_app

TARGET_P99_MS = 100.0
BASELINE_PATH = "/static/app.css"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lp-cashier-"))
    rng = random.Random(20261123)
    station = open_bench_station(work)
    started = time.perf_counter()
    population = populate(station, args.members, 50_000, rng, lambda _: None)
    print(f"populated {args.members:,} members in {time.perf_counter() - started:.1f} s")
    add_user(station, name="bench", role="cashier", pin="2580", actor="bench")

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(build_app(station), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)

    results: dict[str, Latency] = {}
    baseline: list[int] = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        client.post("/api/v1/login", json={"name": "bench", "pin": "2580"}).raise_for_status()
        for kind in ("phone", "plate"):
            samples: list[int] = []
            for position in range(args.warmup + args.lookups):
                index = rng.randrange(population.count)
                q = (
                    phone_of(POPULATION_PREFIX, population.phone_numbers[index])
                    if kind == "phone"
                    else plate_of(population.plate_codes[index])
                )
                before = time.perf_counter_ns()
                response = client.get("/ui/lookup", params={"q": q})
                spent = time.perf_counter_ns() - before
                if response.status_code != 200 or 'data-testid="member-card"' not in response.text:
                    raise SystemExit(f"look-up by {kind} failed: {response.status_code}")
                before = time.perf_counter_ns()
                static = client.get(BASELINE_PATH)
                static_spent = time.perf_counter_ns() - before
                if static.status_code != 200 or not static.content:
                    raise SystemExit(f"baseline {BASELINE_PATH} failed: {static.status_code}")
                if position >= args.warmup:
                    samples.append(spent)
                    baseline.append(static_spent)
            results[kind] = Latency.of(samples)
    server.should_exit = True
    thread.join(timeout=10)
    station.close()
    shutil.rmtree(work, ignore_errors=True)

    print(f"cashier look-up over HTTP, {args.members:,} members, {args.lookups} each:")
    record: dict[str, object] = {"benchmark": "cashier_lookup", "members": args.members}
    for kind, latency in results.items():
        verdict = "pass" if latency.p99_ms < TARGET_P99_MS else "short"
        print(
            f"  by {kind:5}  p50 {latency.p50_ms:6.2f} ms  p99 {latency.p99_ms:6.2f} ms  "
            f"max {latency.max_ms:6.2f} ms   target p99 < {TARGET_P99_MS:.0f} ms: {verdict}"
        )
        record[f"{kind}_p50_ms"] = round(latency.p50_ms, 3)
        record[f"{kind}_p99_ms"] = round(latency.p99_ms, 3)
    reference = Latency.of(baseline)
    print(
        f"  baseline GET {BASELINE_PATH}  p50 {reference.p50_ms:6.2f} ms  "
        f"p99 {reference.p99_ms:6.2f} ms  max {reference.max_ms:6.2f} ms"
    )
    record["baseline_path"] = BASELINE_PATH
    record["baseline_p50_ms"] = round(reference.p50_ms, 3)
    record["baseline_p99_ms"] = round(reference.p99_ms, 3)
    print("RESULT " + json.dumps(record))


if __name__ == "__main__":
    main()
