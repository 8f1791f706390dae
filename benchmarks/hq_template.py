"""The HQ console benchmark's seeded PostgreSQL database, kept between runs.

Seeding 10 million sales takes minutes, so the seeded database is kept under a name made of
its shape (`bench_hq_<members>m_<sales>s_<stations>st_<days>d`) with a marker row written
last: a later run finding the marker of the same shape reuses the database as it is (the
benchmark only adds drafts and backtests, which no report reads). `fresh=True` drops it.

The report aggregates are filled by the product's own rebuild (aggregates_ledger.rebuild),
run in a child process so its time and peak RSS are its own.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from benchmarks.hq_seed import ChainShape, seed_chain
from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.cloud.ledger.aggregates_ledger import rebuild
from cloud_sync.cloud.ledger.database import Database
from cloud_sync.core.privacy import MemberKeys

__all__ = ["RULES_TEXT", "database_name", "prepare"]

RULES_TEXT = (Path(__file__).resolve().parent.parent / "config/rulesets/sample.json").read_text(
    encoding="utf-8"
)
MARKER = "bench_seed"


def database_name(shape: ChainShape, prefix: str = "bench_hq") -> str:
    return f"{prefix}_{shape.members}m_{shape.sales}s_{shape.stations}st_{shape.days}d"


def _sqlalchemy_url(admin_url: str, name: str) -> str:
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}"


def _stored(admin_url: str, name: str, shape: ChainShape) -> dict[str, Any] | None:
    """The marker of a complete seeded database of this shape, or None."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if found is None:
        return None
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        with psycopg.connect(url) as conn:
            row = conn.execute(f"SELECT shape, figures FROM {MARKER}").fetchone()
    except psycopg.Error:
        return None
    if row is None or json.loads(row[0]) != asdict(shape):
        return None
    figures: dict[str, Any] = json.loads(row[1])
    return figures


def _rebuild_child(url: str) -> dict[str, Any]:
    """Run the product's rebuild in a child process: seconds and the child's peak RSS."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--rebuild", url], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        raise RuntimeError(f"aggregates rebuild failed (exit {done.returncode}):\n{tail}")
    return {"rebuild_s": round(seconds, 1), "rebuild_peak_rss_mb": round(peak_mb)}


def prepare(
    admin_url: str,
    shape: ChainShape,
    *,
    fresh: bool,
    aggregates: bool = True,
    prefix: str = "bench_hq",
) -> tuple[str, dict[str, Any]]:
    """The seeded database's SQLAlchemy URL and its figures (seed and rebuild times).

    `aggregates=False` skips the report aggregates' rebuild (the member app reads none);
    such a database is kept under its own `prefix`."""
    name = database_name(shape, prefix)
    url = _sqlalchemy_url(admin_url, name)
    if not fresh:
        stored = _stored(admin_url, name, shape)
        if stored is not None:
            return url, {**stored, "reused": True}
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    end = datetime.fromisoformat(shape.end_iso)
    ledger = CloudLedger.open(url, chain_keys=MemberKeys.generate("bench"))
    try:
        ledger.publish_ruleset(RULES_TEXT, "c2ln", "bench", end - timedelta(days=shape.days + 60))
    finally:
        ledger.close()
    db = Database.open(url)
    try:
        started = time.perf_counter()
        db.transact(lambda conn: seed_chain(conn, shape))
        figures: dict[str, Any] = {"seed_s": round(time.perf_counter() - started, 1)}
    finally:
        db.close()
    if aggregates:
        figures.update(_rebuild_child(url))
        figures["fill"] = "aggregates_ledger.rebuild"
    with psycopg.connect(admin_url.rsplit("/", 1)[0] + "/" + name, autocommit=True) as conn:
        # the statistics autovacuum would gather after the rebuild: without them the report
        # queries were planned for 1,673 member-days where there were 57,533
        conn.execute("VACUUM ANALYZE")
        conn.execute(f"CREATE TABLE {MARKER} (shape TEXT NOT NULL, figures TEXT NOT NULL)")
        conn.execute(
            f"INSERT INTO {MARKER} VALUES (%s, %s)",
            (json.dumps(asdict(shape)), json.dumps(figures)),
        )
    return url, {**figures, "reused": False}


def _rebuild_main(url: str) -> None:
    db = Database.open(url)
    try:
        db.transact(rebuild)
    finally:
        db.close()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--rebuild":
        _rebuild_main(sys.argv[2])
    else:
        sys.exit("usage: hq_template.py --rebuild URL (run by hq_console.py)")
