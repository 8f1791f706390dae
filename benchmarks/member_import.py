"""Member import at scale: an operator's sheet of 100,000 members (phone, two plates, name,
opening points) parsed and imported in one transaction, on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/member_import.py [--rows 100000] [--pg postgresql://…]
                                                  [--format xlsx|csv]

Prints one line per backend and ends with `RESULT {json}`. Target: < 60 s per backend for
100,000 rows (issue 16), parse and write included; the in-run baseline is the parse alone.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from openpyxl import Workbook

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.cloud.ledger.member_import import apply_import
from cloud_sync.cloud.ledger.member_sheet import parse_sheet
from cloud_sync.core.privacy import MemberKeys

TARGET_S = 60.0
_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"


def sheet(rows: int, fmt: str) -> bytes:
    def row(n: int) -> list[Any]:
        plate = f"{_PROVINCES[n % 31]}{'ABCDEFGH'[n % 8]}{n % 100000:05d}"
        second = f"{plate[:2]}D{n % 100000:05d}"  # the new-energy plate of the same owner
        return [f"13{8 + n % 2}{n:08d}", f"{plate}、{second}", f"会员{n}", n % 5000]

    header = ["手机号", "车牌", "姓名", "期初积分"]
    if fmt == "csv":
        lines = [",".join(header)] + [",".join(map(str, row(n))) for n in range(rows)]
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")
    book = Workbook(write_only=True)
    ws = book.create_sheet("members")
    ws.append(header)
    for n in range(rows):
        ws.append(row(n))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def fresh_pg(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"


def run(url: str, data: bytes, filename: str) -> dict[str, Any]:
    keys = MemberKeys.generate("bench")
    ledger = CloudLedger.open(url, chain_keys=keys)
    try:
        started = time.perf_counter()
        cpu = time.process_time()
        parsed = parse_sheet(data, filename)
        parse_s = time.perf_counter() - started
        result = apply_import(
            ledger.db,
            keys,
            ledger.rules,
            parsed,
            actor="bench",
            filename=filename,
            now=datetime.now(UTC),
            dry_run=False,
        )
        total_s = time.perf_counter() - started
        cpu_s = time.process_time() - cpu  # this process's CPU: the figure a busy box hides
        assert not result.problems, result.problems[:5]
        problems = ledger.ledger_problems()
        assert problems == [], problems[:5]
        return {
            "backend": ledger.dialect,
            "rows": result.imported,
            "seconds": round(total_s, 2),
            "parse_seconds": round(parse_s, 2),
            "cpu_seconds": round(cpu_s, 2),
            "target_seconds": TARGET_S,
            "pass": total_s < TARGET_S,
        }
    finally:
        ledger.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--format", choices=("xlsx", "csv"), default="xlsx")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    data = sheet(args.rows, args.format)
    filename = f"members.{args.format}"
    print(f"sheet: {args.rows:,} rows, {len(data) / 1024 / 1024:.1f} MiB {args.format}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        urls = [f"sqlite:///{Path(tmp) / 'cloud.sqlite3'}"]
        if not args.no_pg:
            urls.append(fresh_pg(args.pg, "bench_member_import"))
        for url in urls:
            figure = run(url, data, filename)
            print(
                f"{figure['backend']}: {figure['rows']:,} members in {figure['seconds']} s "
                f"(parse {figure['parse_seconds']} s, this process's CPU "
                f"{figure['cpu_seconds']} s; target < {TARGET_S:.0f} s)",
                flush=True,
            )
            results.append(figure)
    print("RESULT " + json.dumps({"benchmark": "member_import", "results": results}))


if __name__ == "__main__":
    main()
