"""cloud_ingest's physical baseline: the same rows written straight into the same PostgreSQL
server, by as many concurrent client processes as the cloud has workers, one batch of
events per transaction.

Three figures, each into fresh tables of the run's database:

- `upsert`: the event rows (id, station, epoch, seq, kind, payload) with
  `INSERT … ON CONFLICT DO NOTHING` through psycopg's `executemany` (its pipeline);
- `copy`: the same rows with `COPY`;
- `ledger`: what a push must at least store, without deciding anything: per event its
  event row, and per member registered a member row, per sale with points a sale row, a
  journal with two lines and a lot, all `INSERT … ON CONFLICT DO NOTHING`. Tables of the
  benchmark's own, so the figure does not follow the cloud's schema or its apply path.

Rows are built before the clock starts: the figure is the database's, not Python's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.sync_catchup import event_rows

__all__ = ["METHODS", "ledger_rows", "raw_baseline"]

METHODS = ("upsert", "copy", "ledger")

_EVENTS = (
    "CREATE TABLE {}events (event_id TEXT PRIMARY KEY, station_id TEXT NOT NULL, epoch INTEGER "
    "NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, payload JSONB NOT NULL, "
    "UNIQUE (station_id, epoch, seq))"
)
_LEDGER = (
    "CREATE TABLE {}members (member_id TEXT PRIMARY KEY, station_id TEXT NOT NULL, "
    "phone_index TEXT UNIQUE, phone_sealed TEXT, registered_at TEXT NOT NULL)",
    "CREATE TABLE {}sales (sale_id TEXT PRIMARY KEY, station_id TEXT NOT NULL, member_id TEXT, "
    "amount TEXT NOT NULL, litres TEXT NOT NULL, points INTEGER NOT NULL, ruleset_version "
    "INTEGER, ended_at TEXT NOT NULL, receipt JSONB)",
    "CREATE TABLE {}journals (journal_id TEXT PRIMARY KEY, station_id TEXT NOT NULL, "
    "kind TEXT NOT NULL, at TEXT NOT NULL)",
    "CREATE TABLE {}lines (journal_id TEXT NOT NULL, line INTEGER NOT NULL, account TEXT NOT "
    "NULL, points INTEGER NOT NULL, PRIMARY KEY (journal_id, line))",
    "CREATE TABLE {}lots (lot_id TEXT PRIMARY KEY, member_id TEXT NOT NULL, points INTEGER "
    "NOT NULL, expires_at TEXT)",
)
_INSERT = "INSERT INTO {}{} VALUES ({}) ON CONFLICT DO NOTHING"
_COPY = "COPY {}events (event_id, station_id, epoch, seq, kind, payload) FROM STDIN"
_WIDTH = {"events": 6, "members": 5, "sales": 9, "journals": 4, "lines": 4, "lots": 4}

Rows = dict[str, list[tuple[Any, ...]]]


def ledger_rows(events: Sequence[tuple[str, str, int, int, str, str]]) -> Rows:
    """The rows a push of these events stores at least, table by table."""
    out: Rows = {table: [] for table in _WIDTH}
    for event in events:
        event_id, station, _epoch, _seq, kind, text = event
        out["events"].append(event)
        payload = json.loads(text)
        if kind == "member.registered":
            out["members"].append(
                (payload["member_id"], station, payload.get("phone_index"),
                 payload.get("phone_sealed"), payload.get("registered_at", ""))
            )  # fmt: skip
        elif kind == "sale.recorded":
            points = int(payload.get("points") or 0)
            member = payload.get("member_id")
            out["sales"].append(
                (payload["sale_id"], station, member, payload["amount"], payload["litres"],
                 points, payload.get("ruleset_version"), payload["ended_at"],
                 json.dumps(payload.get("receipt")))
            )  # fmt: skip
            if member and points:
                out["journals"].append((event_id, station, "earn", payload["ended_at"]))
                out["lines"] += [
                    (event_id, 1, f"member:{member}", points),
                    (event_id, 2, "liability", -points),
                ]
                expires = (payload.get("ledger") or [{}])[0].get("expires_at")
                out["lots"].append((event_id, member, points, expires))
    return out


def _write(cursor: psycopg.Cursor[Any], method: str, prefix: str, chunk: Sequence[Any]) -> None:
    if method == "upsert":
        cursor.executemany(_INSERT.format(prefix, "events", ", ".join(["%s"] * 6)), chunk)
    elif method == "copy":
        with cursor.copy(_COPY.format(prefix)) as copy:
            for row in chunk:
                copy.write_row(row)
    else:
        prepared: Rows = chunk[0]  # built by ledger_rows before the clock started
        for table, rows in prepared.items():
            if rows:
                sql = _INSERT.format(prefix, table, ", ".join(["%s"] * _WIDTH[table]))
                cursor.executemany(sql, rows)


def _raw_client(
    args: tuple[str, str, str, list[tuple[Path, str]], int, Barrier],
) -> tuple[int, float, float]:
    """One client: load its stations' rows, wait for the others, write them one batch per
    transaction; (events, monotonic start, monotonic end)."""
    url, method, prefix, stations, batch, ready = args
    rows = [row for directory, sid in stations for row in event_rows(directory, sid)]
    chunks: list[Sequence[Any]] = [rows[i : i + batch] for i in range(0, len(rows), batch)]
    if method == "ledger":
        chunks = [[ledger_rows(chunk)] for chunk in chunks]
    with psycopg.connect(url) as conn:
        ready.wait()
        started = time.monotonic()
        for chunk in chunks:
            with conn.cursor() as cursor:
                _write(cursor, method, prefix, chunk)
            conn.commit()
        return len(rows), started, time.monotonic()


def raw_baseline(
    url: str, stations: Sequence[tuple[Path, str]], clients: int, batch: int
) -> dict[str, Any]:
    """Events/s of each method (`METHODS`) from `clients` concurrent processes, the stations
    split between them; keys `{method}_rows_per_s` (events per second) and the like."""
    shares = [share for share in (list(stations[i::clients]) for i in range(clients)) if share]
    context = get_context("spawn")
    figures: dict[str, Any] = {"clients": len(shares), "batch": batch}
    for method in METHODS:
        prefix = f"bench_raw_{method}_"
        tables = [_EVENTS, *_LEDGER] if method == "ledger" else [_EVENTS]
        with psycopg.connect(url, autocommit=True) as conn:
            for ddl in tables:
                conn.execute(ddl.format(prefix))
        with (
            context.Manager() as manager,
            ProcessPoolExecutor(len(shares), mp_context=context) as pool,
        ):
            ready = manager.Barrier(len(shares))
            work = [(url, method, prefix, share, batch, ready) for share in shares]
            done = list(pool.map(_raw_client, work))
        rows = sum(d[0] for d in done)
        seconds = max(d[2] for d in done) - min(d[1] for d in done)
        figures[f"{method}_rows"] = rows
        figures[f"{method}_seconds"] = round(seconds, 3)
        figures[f"{method}_rows_per_s"] = round(rows / seconds)
    return figures
