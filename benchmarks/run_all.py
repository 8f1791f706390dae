"""Run every benchmark of the project, one after another, and print one table of figures.

Each benchmark is its own script ending with one line `RESULT {json}`; this runs each as a
child process (the same interpreter, from the project root), reads that line and turns it
into rows: figure, value, target, in-run baseline, ratio value / baseline, and a verdict
(pass, short, info when there is no target, failed when the script crashed or printed no
RESULT). Benchmarks run one at a time on purpose: they measure the machine, and two at once
would measure each other.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only NAME[,NAME]] [--markdown]
                                           [--json FILE]

Exit status 1 when a benchmark failed, 0 otherwise: a target that falls short is a figure
to report, not an error. `--quick` uses small sizes for a smoke check (about a minute); its
verdicts are marked, since the targets are defined at the full sizes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from benchmarks import (
    cashier_lookup,
    member_app,
    sync_catchup,
)
from benchmarks.readers import (
    cashier_lookup_rows,
    cashier_lookup_scale,
    cli_start_rows,
    cli_start_scale,
    cloud_ingest_rows,
    cloud_ingest_scale,
    driver_latency_rows,
    driver_latency_scale,
    edge_accrual_rows,
    edge_accrual_scale,
    hq_console_rows,
    hq_console_scale,
    member_app_rows,
    member_app_scale,
    member_h5_rows,
    member_h5_scale,
    member_import_rows,
    member_import_scale,
    sync_catchup_rows,
    sync_catchup_scale,
)
from benchmarks.table import (
    QUICK_NOTE,
    RecordError,
    Row,
    failed_row,
    render_markdown,
    render_text,
    wrap,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent

STDERR_TAIL_LINES = 12
DEFAULT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class Job:
    """One benchmark script with its full and quick arguments and how to read its RESULT."""

    name: str
    script: Path
    args: tuple[str, ...]
    quick_args: tuple[str, ...]
    baseline: str  # what the in-run baseline is, for the notes under the table
    rows: Callable[[str, Mapping[str, Any], bool], list[Row]]
    scale: Callable[[Mapping[str, Any]], str]

    def command(self, quick: bool) -> list[str]:
        return [sys.executable, str(self.script), *(self.quick_args if quick else self.args)]


BENCHMARKS = PROJECT_ROOT / "benchmarks"
JOBS: tuple[Job, ...] = (
    Job(
        "edge_accrual",
        BENCHMARKS / "edge_accrual.py",
        (),
        ("--sales", "300", "--members", "20000", "--lookups", "300", "--warmup", "50"),
        "raw SQLite single-row commits beside the store (WAL, synchronous=FULL)",
        edge_accrual_rows,
        edge_accrual_scale,
    ),
    Job(
        "cashier_lookup",
        BENCHMARKS / "cashier_lookup.py",
        (),
        ("--members", "20000", "--lookups", "200", "--warmup", "20"),
        f"GET {cashier_lookup.BASELINE_PATH} on the same server, interleaved",
        cashier_lookup_rows,
        cashier_lookup_scale,
    ),
    Job(
        "driver_latency_fdc",
        BENCHMARKS / "driver_latency.py",
        ("--driver", "fdc"),
        ("--driver", "fdc", "--sales", "120", "--warmup", "30"),
        "none measured (IFSF FDC simulator over loopback TCP)",
        driver_latency_rows,
        driver_latency_scale,
    ),
    Job(
        "driver_latency_dart",
        BENCHMARKS / "driver_latency.py",
        ("--driver", "dart"),
        ("--driver", "dart", "--sales", "120", "--warmup", "30"),
        "none measured (DART simulator on a pty; the master polls every 50 ms)",
        driver_latency_rows,
        driver_latency_scale,
    ),
    Job(
        "sync_catchup",
        BENCHMARKS / "sync_catchup.py",
        (),
        ("--events", "5000", "--members", "200"),
        "raw batched insert of the same event rows into the same database",
        sync_catchup_rows,
        sync_catchup_scale,
    ),
    Job(
        "hq_console",
        BENCHMARKS / "hq_console.py",
        (),
        ("--quick",),
        "reports: GET /api/v1/hq/me through the same app; backtest: price_sale alone over "
        "the same sales in memory; aggregates rebuild: none",
        hq_console_rows,
        hq_console_scale,
    ),
    Job(
        "member_app",
        BENCHMARKS / "member_app.py",
        (),
        ("--quick",),
        f"GET {member_app.BASELINE} (the member's token checked, no ledger read), same load",
        member_app_rows,
        member_app_scale,
    ),
    Job(
        "member_h5",
        BENCHMARKS / "member_h5.py",
        (),
        ("--quick",),
        "an empty page through the same throttled link (the network's own floor)",
        member_h5_rows,
        member_h5_scale,
    ),
    Job(
        "member_import_xlsx",
        BENCHMARKS / "member_import.py",
        ("--format", "xlsx"),
        ("--format", "xlsx", "--rows", "2000"),
        "parsing the sheet alone",
        member_import_rows,
        member_import_scale,
    ),
    Job(
        "member_import_csv",
        BENCHMARKS / "member_import.py",
        ("--format", "csv"),
        ("--format", "csv", "--rows", "2000"),
        "parsing the sheet alone",
        member_import_rows,
        member_import_scale,
    ),
    Job(
        "cli_start",
        BENCHMARKS / "cli_start.py",
        (),
        ("--runs", "5", "--members", "20"),
        "`python -c pass` with the same interpreter, interleaved (min with min, median with "
        "median)",
        cli_start_rows,
        cli_start_scale,
    ),
    Job(
        "cloud_ingest",
        BENCHMARKS / "cloud_ingest.py",
        (),
        ("--quick",),
        "raw batched upsert (and COPY) of the same event rows into the same server, as many "
        "clients as the cloud has workers; one station: raw batched insert, same database",
        cloud_ingest_rows,
        cloud_ingest_scale,
    ),
)


@dataclass
class Outcome:
    """What one benchmark run gave: its rows, and its record when it printed one."""

    job: Job
    rows: list[Row]
    seconds: float
    record: dict[str, Any] | None = None
    scale: str = ""
    command: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(row.verdict == "failed" for row in self.rows)


def find_result(stdout: str) -> dict[str, Any] | None:
    """The last `RESULT {json}` line's object; None when there is none."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            try:
                record = json.loads(line[len("RESULT ") :])
            except json.JSONDecodeError:
                return None
            return record if isinstance(record, dict) else None
    return None


def tail(text: str, lines: int = STDERR_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def outcome_of(
    job: Job, returncode: int, stdout: str, stderr: str, seconds: float, quick: bool
) -> Outcome:
    """Rows for one finished run: its figures, or one failed row saying why."""
    record = find_result(stdout)
    if returncode != 0:
        reason = f"failed: exit {returncode}"
    elif record is None:
        reason = "failed: no RESULT line"
    else:
        try:
            rows = job.rows(job.name, record, quick)
            return Outcome(job, rows, seconds, record, job.scale(record))
        except RecordError as exc:
            row = failed_row(job.name, "failed: bad RESULT", str(exc))
            return Outcome(job, [row], seconds, record)
    detail = tail(stderr) or tail(stdout) or "(no output)"
    return Outcome(job, [failed_row(job.name, reason, detail)], seconds, record)


def run_job(job: Job, quick: bool, timeout: float) -> Outcome:
    """Run one benchmark to its end in its own session, so a timeout ends all it started."""
    command = job.command(quick)
    started = time.perf_counter()
    try:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except OSError as exc:
        row = failed_row(job.name, "failed: cannot start", str(exc))
        return Outcome(job, [row], 0.0, command=command)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # not yet reaped: its group id is still its own
        try:
            stdout, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # a process outside its session holds the pipes
            process.wait()
            stderr = "(its output stayed open after it was stopped)"
        seconds = time.perf_counter() - started
        detail = tail(stderr) or "(no output)"
        row = failed_row(job.name, f"failed: timed out after {timeout:.0f} s", detail)
        return Outcome(job, [row], seconds, command=command)
    except BaseException:  # Ctrl-C: leave nothing of the benchmark running behind us
        with contextlib.suppress(ProcessLookupError):  # it may have ended on the signal
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    outcome = outcome_of(
        job, process.returncode, stdout, stderr, time.perf_counter() - started, quick
    )
    outcome.command = command
    return outcome


def notes(outcomes: Sequence[Outcome], quick: bool, markdown: bool) -> list[str]:
    """What the baselines are, the sizes each benchmark ran at, and why any failed."""
    lines = ["ratio = value / in-run baseline. Sizes and baselines:"]
    if markdown:
        lines.append("")
    for outcome in outcomes:
        scale = f" ({outcome.scale})" if outcome.scale else ""
        item = f"{outcome.job.name}{scale}: {outcome.job.baseline}"
        lines.append(f"- {item}" if markdown else f"  {item}")
    if quick:
        lines += ["", "\\" + QUICK_NOTE] if markdown else [QUICK_NOTE]
    for outcome in outcomes:
        for row in outcome.rows:
            if row.verdict == "failed":
                if markdown:
                    lines.append("")
                lines.append(f"{row.benchmark} {row.figure}; the last lines of its output:")
                fence = ["```"] if markdown else []
                lines += [*fence, *("    " + line for line in row.detail.splitlines()), *fence]
    return lines


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _postgresql_version() -> str | None:
    """The server sync_catchup uses, when it answers: its version belongs with the figures."""
    try:
        with psycopg.connect(sync_catchup.PG_ADMIN, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error:
        return None
    return str(row[0]).split()[0] if row else None


def machine() -> dict[str, Any]:
    """The facts a reader needs to weigh the figures: where and when they were taken."""
    return {
        "date": datetime.now(UTC).astimezone().isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": _postgresql_version(),
        "load_1min": round(os.getloadavg()[0], 2),
    }


def machine_line(info: Mapping[str, Any]) -> str:
    return (
        f"machine: {info['platform']}, {info['cpu']}, {info['cpus']} CPUs, "
        f"Python {info['python']}, SQLite {info['sqlite']}, "
        f"PostgreSQL {info['postgresql'] or 'not reachable'}; {info['date']}"
    )


def summary(outcomes: Sequence[Outcome], info: Mapping[str, Any], quick: bool) -> dict[str, Any]:
    """Everything as one JSON document: the rows, each script's own record, the machine."""
    return {
        "benchmark": "run_all",
        "quick": quick,
        "machine": dict(info),
        "seconds": {o.job.name: round(o.seconds, 1) for o in outcomes},
        "total_seconds": round(sum(o.seconds for o in outcomes), 1),
        "failed": [o.job.name for o in outcomes if o.failed],
        "rows": [asdict(row) for row in (r for o in outcomes for r in o.rows)],
        "records": {o.job.name: o.record for o in outcomes},
    }


def select(jobs: Sequence[Job], only: str | None) -> list[Job]:
    """The jobs named in --only (a script's name picks all its jobs), in their own order."""
    if not only:
        return list(jobs)
    names = {name.strip() for name in only.split(",") if name.strip()}
    known = {job.name for job in jobs} | {job.script.stem for job in jobs}
    unknown = sorted(names - known)
    if unknown:
        raise ValueError(
            f"unknown benchmark {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return [job for job in jobs if job.name in names or job.script.stem in names]


def parse_args(argv: Sequence[str] | None, jobs: Sequence[Job]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run every benchmark one after another and print one table of figures."
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke check")
    parser.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        help="run only these: " + ", ".join(job.name for job in jobs) + " (or a script's name)",
    )
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the records here")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds before one benchmark is stopped and counted failed ({DEFAULT_TIMEOUT_S:g})",
    )
    args = parser.parse_args(argv)
    try:
        args.jobs = select(jobs, args.only)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv: Sequence[str] | None = None, jobs: Sequence[Job] = JOBS) -> int:
    args = parse_args(argv, jobs)
    info = machine()
    outcomes: list[Outcome] = []
    for index, job in enumerate(args.jobs, 1):
        print(f"[{index}/{len(args.jobs)}] {job.name} ...", file=sys.stderr, flush=True)
        outcome = run_job(job, args.quick, args.timeout)
        state = "failed" if outcome.failed else "done"
        print(f"    {state} in {outcome.seconds:.1f} s", file=sys.stderr, flush=True)
        outcomes.append(outcome)
    rows = [row for outcome in outcomes for row in outcome.rows]
    record = summary(outcomes, info, args.quick)
    title = "Benchmarks (quick run)" if args.quick else "Benchmarks"
    total = f"{record['total_seconds']:.0f} s in all"
    if args.markdown:
        print(f"{title}, {total}. {machine_line(info)}\n")
        print(render_markdown(rows))
        print()
        print("\n".join(notes(outcomes, args.quick, markdown=True)))
    else:
        print(f"{title}, {total}")
        print(render_text(rows))
        print(wrap([*notes(outcomes, args.quick, markdown=False), machine_line(info)]))
    if args.json is not None:
        args.json.write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n", "utf-8")
    print("RESULT " + json.dumps(record, ensure_ascii=False), flush=True)
    return 1 if record["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
