"""benchmarks/run_all.py: RESULT records become rows, failures are reported, tables render.

The slow tests run real child processes: edge_accrual at a tiny size (its RESULT is then
read back from run_all's own JSON and checked key by key against the rows), and small
scripts that crash, print nothing, do not exist or hang. The rest feeds run_all records
shaped like the ones the scripts print.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from benchmarks import readers, run_all, table
from benchmarks.run_all import Job
from benchmarks.table import HEADER, Target, figure_row

EDGE = next(job for job in run_all.JOBS if job.name == "edge_accrual")
TINY_EDGE = replace(
    EDGE,
    quick_args=("--sales", "50", "--members", "2000", "--lookups", "50", "--warmup", "10"),
)


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str
    summary: dict[str, Any]  # what --json wrote


def _invoke(argv: Sequence[str], jobs: Sequence[Job]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_all.main(argv, jobs)
    return code, out.getvalue(), err.getvalue()


def _script(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


def _job(name: str, script: Path) -> Job:
    return replace(EDGE, name=name, script=script, args=(), quick_args=())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One run_all run over a tiny real edge_accrual and three broken benchmarks."""
    work = tmp_path_factory.mktemp("run_all")
    broken = _script(
        work / "broken.py",
        "import sys\nprint('starting')\nprint('boom: the disk is gone', file=sys.stderr)\n"
        "sys.exit(3)\n",
    )
    silent = _script(work / "silent.py", "print('all went well, I promise')\n")
    jobs = [
        TINY_EDGE,
        _job("broken", broken),
        _job("silent", silent),
        _job("missing", work / "no_such_benchmark.py"),
    ]
    report = work / "report.json"
    code, stdout, stderr = _invoke(["--quick", "--markdown", "--json", str(report)], jobs)
    return Run(code, stdout, stderr, json.loads(report.read_text(encoding="utf-8")))


def _rows(run: Run, benchmark: str) -> list[dict[str, Any]]:
    return [row for row in run.summary["rows"] if row["benchmark"] == benchmark]


@pytest.mark.slow
def test_rows_follow_a_real_edge_accrual_record(tiny_run: Run) -> None:
    record = tiny_run.summary["records"]["edge_accrual"]
    assert record["benchmark"] == "edge_accrual"
    assert record["sales"] == 50
    assert record["members"] == 2000
    rows = {row["figure"]: row for row in _rows(tiny_run, "edge_accrual")}
    # figure -> (value key, baseline key, target bound key in the script's own record)
    expected = {
        "record_sale commits/s": ("accrual_rate_per_s", "raw_rate_per_s", "ratio_target"),
        "record_sale p99": ("accrual_p99_ms", "raw_p99_ms", "accrual_p99_target_ms"),
        "find_member p99, phone": ("phone_p99_ms", None, "lookup_p99_target_ms"),
        "find_member p99, plate": ("plate_p99_ms", None, "lookup_p99_target_ms"),
    }
    assert set(rows) == set(expected)
    for figure, (value_key, baseline_key, bound_key) in expected.items():
        row = rows[figure]
        assert row["value"] == record[value_key], figure
        assert row["quick"] is True
        [target] = row["targets"]
        assert target["bound"] == record[bound_key], figure
        if baseline_key is None:
            assert row["baseline"] is None
            assert row["ratio"] is None
            met = row["value"] < target["bound"]
        else:
            assert row["baseline"] == record[baseline_key], figure
            assert row["ratio"] == pytest.approx(record[value_key] / record[baseline_key])
            subject = row["ratio"] if target["on"] == "ratio" else row["value"]
            met = subject >= target["bound"] if target["op"] == ">=" else subject < target["bound"]
        assert row["verdict"] == ("pass" if met else "short"), figure
    # The script's own verdicts agree with run_all's.
    assert (rows["record_sale commits/s"]["verdict"] == "pass") == record["ratio_ok"]
    assert (rows["record_sale p99"]["verdict"] == "pass") == record["accrual_p99_ok"]
    assert (rows["find_member p99, phone"]["verdict"] == "pass") == record["phone_p99_ok"]
    assert (rows["find_member p99, plate"]["verdict"] == "pass") == record["plate_p99_ok"]


@pytest.mark.slow
def test_failed_benchmarks_give_failed_rows_and_exit_1(tiny_run: Run) -> None:
    assert tiny_run.code == 1
    assert tiny_run.summary["failed"] == ["broken", "silent", "missing"]
    [broken] = _rows(tiny_run, "broken")
    assert broken["verdict"] == "failed"
    assert broken["figure"] == "failed: exit 3"
    assert "boom: the disk is gone" in broken["detail"]
    [silent] = _rows(tiny_run, "silent")
    assert (silent["verdict"], silent["figure"]) == ("failed", "failed: no RESULT line")
    assert "all went well" in silent["detail"]  # no stderr: the stdout tail instead
    [missing] = _rows(tiny_run, "missing")
    assert (missing["verdict"], missing["figure"]) == ("failed", "failed: exit 2")
    assert "no_such_benchmark.py" in missing["detail"]
    assert "boom: the disk is gone" in tiny_run.stdout  # the reason is printed too
    # The RESULT line on stdout is the same document as the --json file.
    last = tiny_run.stdout.rstrip().splitlines()[-1]
    assert last.startswith("RESULT ")
    assert json.loads(last.removeprefix("RESULT ")) == tiny_run.summary


def _markdown_rows(text: str) -> list[list[str]]:
    table = [line for line in text.splitlines() if line.startswith("|")]
    return [
        [cell.strip().replace("\\|", "|").replace("\\*", "*") for cell in cells]
        for cells in (re.split(r"(?<!\\)\|", line)[1:-1] for line in table)
    ]


def _number(cell: str) -> float:
    return float(cell.removesuffix(" ms").removesuffix("/s").replace(",", ""))


@pytest.mark.slow
def test_markdown_table_has_the_same_rows(tiny_run: Run) -> None:
    header, align, *body = _markdown_rows(tiny_run.stdout)
    assert tuple(header) == HEADER
    assert all(re.fullmatch(r"-{3,}:?", cell) for cell in align)
    rows = tiny_run.summary["rows"]
    assert len(body) == len(rows) == 7
    for cells, row in zip(body, rows, strict=True):
        benchmark, figure, value, _target, baseline, ratio, verdict = cells
        assert (benchmark, figure) == (row["benchmark"], row["figure"])
        if row["verdict"] == "failed":
            assert (value, baseline, ratio, verdict) == ("—", "—", "—", "failed")
            continue
        assert verdict == row["verdict"] + "*"  # a quick run's verdicts are marked
        assert _number(value) == pytest.approx(row["value"], rel=0.01, abs=0.006)
        if row["ratio"] is None:
            assert (baseline, ratio) == ("—", "—")
        else:
            assert _number(baseline) == pytest.approx(row["baseline"], rel=0.01, abs=0.006)
            assert ratio == table.format_ratio(row["ratio"])  # 3 decimals below 10, else 1


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended


@pytest.mark.slow
def test_a_hung_benchmark_is_stopped_with_everything_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    hung = _script(
        tmp_path / "hung.py",
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "print('waiting for ever', file=sys.stderr, flush=True)\n"
        "time.sleep(120)\n",
    )
    code, out, err = _invoke(["--timeout", "3", "--only", "hung"], [_job("hung", hung)])
    assert code == 1
    assert "timed out after 3 s" in out + err  # stopped by the timeout, not by its own end
    child = int(pid_file.read_text(encoding="utf-8"))
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


# The pure part, on records shaped like the scripts' own.

SYNC_RECORD: dict[str, Any] = {
    "benchmark": "sync_catchup",
    "queued": 2000,
    "results": [
        {"backend": "sqlite", "events_per_s": 2743, "raw_rows_per_s": 94663, "ratio": 0.029},
        {"backend": "postgresql", "events_per_s": 2063, "raw_rows_per_s": 7533, "ratio": 0.274},
    ],
}
CASHIER_RECORD = {
    "benchmark": "cashier_lookup",
    "members": 1_000_000,
    "phone_p99_ms": 9.8,
    "plate_p99_ms": 103.25,
    "baseline_p99_ms": 3.5,
}
EDGE_RECORD = {
    "accrual_rate_per_s": 1100.4,
    "raw_rate_per_s": 3435.0,
    "accrual_p99_ms": 2.9,
    "raw_p99_ms": 0.61,
    "phone_p99_ms": 0.61,
    "plate_p99_ms": 0.52,
    "sales": 2000,
    "members": 1_000_000,
}


HQ_RECORD = {
    "benchmark": "hq_console",
    "members": 1_000_000,
    "sales": 10_000_000,
    "seed": {"seed_s": 600.0, "rebuild_s": 1500.0, "rebuild_peak_rss_mb": 9000, "reused": True},
    "baseline_in_process": {"p50_ms": 0.4, "p95_ms": 0.6, "max_ms": 0.9, "runs": 30},
    "baseline_route": {"p50_ms": 2.0, "p95_ms": 2.5, "max_ms": 3.0, "runs": 30},
    "reports": [
        {"report": report, "scope": scope, "via": via, "p50_ms": 100.0, "p95_ms": p95}
        for report, p95 in (("dashboard", 120.0), ("liability", 380.0))
        for scope in ("chain", "S001")
        for via in ("in-process", "route")
    ]
    + [
        {"report": "members", "scope": "chain", "via": via, "p50_ms": 9000.0, "p95_ms": 9500.0}
        for via in ("in-process", "route")
    ],
    "backtest": {
        "window_sales": 830_000,
        "backtest_sales_per_s": 21_000,
        "price_sale_per_s": 30_000,
    },
}
_LOAD_RUN = {"requests": 900, "failures": 0, "client_p50_ms": 9.0, "client_p99_ms": 20.0}
MEMBER_APP_RECORD = {
    "benchmark": "member_app",
    "members": 1_000_000,
    "sales": 10_000_000,
    "home": [
        {**_LOAD_RUN, "level": 4, "per_s": 310.0, "server_p50_ms": 6.0, "server_p99_ms": 12.4}
    ],
    "baseline": [
        {**_LOAD_RUN, "level": 4, "per_s": 800.0, "server_p50_ms": 1.2, "server_p99_ms": 3.1}
    ],
    "p99_ms": 12.4,
    "per_s_under_target": 310.0,
    "baseline_p99_ms": 3.1,
    "ratio": 4.0,
    "target_p99_ms": 50.0,
}
MEMBER_H5_RECORD = {
    "benchmark": "member_h5",
    "runs": 7,
    "cold_paint_ms": 663.0,
    "cold_usable_ms": 663.0,
    "cold_ready_ms": 1288.0,
    "warm_usable_ms": 707.0,
    "warm_ready_ms": 738.0,
    "floor_ms": 682.0,
    "revisit_static_fetches": 0,
    "first_visit_bytes": 22272,
}
IMPORT_RECORD = {
    "benchmark": "member_import",
    "results": [
        {"backend": "sqlite", "rows": 100_000, "seconds": 41.5, "parse_seconds": 12.0},
        {"backend": "postgresql", "rows": 100_000, "seconds": 75.0, "parse_seconds": 12.5},
    ],
}

_INGEST_RUN = {"stations": 1, "events_per_station": 20_000, "batch": 1000, "exactly_once": True}
CLOUD_INGEST_RECORD: dict[str, Any] = {
    "benchmark": "cloud_ingest",
    "workers": 2,
    "chain": {
        **_INGEST_RUN,
        "backend": "postgresql",
        "stations": 200,
        "events_per_station": 2_000,
        "events_per_s": 2_400,
        "push_p50_ms": 61_000.0,
        "push_p99_ms": 98_500.0,
        "raw": {
            "clients": 2,
            "upsert_rows_per_s": 30_000,
            "copy_rows_per_s": 80_000,
            "ledger_rows_per_s": 6_000,
        },
        "raw_rows_per_s": 30_000,
    },
    "single": [
        {**_INGEST_RUN, "backend": "sqlite", "events_per_s": 5_200, "raw_rows_per_s": 90_000},
        {**_INGEST_RUN, "backend": "postgresql", "events_per_s": 1_800, "raw_rows_per_s": 15_000},
    ],
}


CLI_START_RECORD = {
    "benchmark": "cli_start",
    "runs": 15,
    "members": 200,
    "baseline_min_ms": 20.0,
    "baseline_median_ms": 25.0,
    "help_min_ms": 140.0,
    "help_median_ms": 310.0,
    "show_min_ms": 380.0,
    "show_median_ms": 450.0,
}


def _job_named(name: str) -> Job:
    return next(job for job in run_all.JOBS if job.name == name)


def test_value_targets_are_strict_below_and_inclusive_above() -> None:
    below = (Target("value", "<", 20.0),)
    assert figure_row("b", "p99", 19.999, "ms", below, None, False).verdict == "pass"
    assert figure_row("b", "p99", 20.0, "ms", below, None, False).verdict == "short"
    above = (Target("ratio", ">=", 0.5),)
    at_bound = figure_row("b", "rate", 50.0, "/s", above, 100.0, False)
    assert (at_bound.ratio, at_bound.verdict) == (0.5, "pass")
    assert figure_row("b", "rate", 49.9, "/s", above, 100.0, False).verdict == "short"
    assert figure_row("b", "rate", 49.9, "/s", (), 100.0, False).verdict == "info"


def test_every_target_of_a_row_must_be_met() -> None:
    rows = readers.sync_catchup_rows("sync_catchup", SYNC_RECORD, False)
    sqlite, postgresql = rows
    assert sqlite.figure == "events/s, sqlite"
    assert [t.on for t in sqlite.targets] == ["value", "ratio"]
    assert sqlite.ratio == pytest.approx(2743 / 94663)
    assert sqlite.verdict == "short"
    assert [t.on for t in postgresql.targets] == ["ratio"]
    assert postgresql.ratio == pytest.approx(2063 / 7533)  # 0.274 >= 0.25
    assert postgresql.verdict == "pass"
    fast = {**SYNC_RECORD["results"][0], "events_per_s": 30_000, "raw_rows_per_s": 100_000}
    [fast_row] = readers.sync_catchup_rows("sync_catchup", {"results": [fast]}, False)
    assert fast_row.verdict == "pass"
    half = {**fast, "raw_rows_per_s": 200_000}  # 5,000/s would do, ratio 0.15 does not
    [half_row] = readers.sync_catchup_rows("sync_catchup", {"results": [half]}, False)
    assert half_row.verdict == "short"


def test_a_ratio_target_without_a_baseline_is_a_bad_record() -> None:
    with pytest.raises(table.RecordError):
        figure_row("b", "rate", 10.0, "/s", (Target("ratio", ">=", 0.5),), None, False)
    bad = {**EDGE_RECORD, "raw_rate_per_s": 0}
    outcome = run_all.outcome_of(EDGE, 0, "RESULT " + json.dumps(bad), "", 1.0, False)
    assert [row.figure for row in outcome.rows] == ["failed: bad RESULT"]


def test_a_record_lacking_a_figure_fails_naming_it() -> None:
    record = {key: value for key, value in EDGE_RECORD.items() if key != "plate_p99_ms"}
    stdout = "table\nRESULT " + json.dumps(record) + "\n"
    outcome = run_all.outcome_of(EDGE, 0, stdout, "", 1.0, False)
    [row] = outcome.rows
    assert row.verdict == "failed"
    assert "plate_p99_ms" in row.detail
    assert outcome.record == record
    flag = {**EDGE_RECORD, "plate_p99_ms": True}  # a flag is not a figure
    assert run_all.outcome_of(EDGE, 0, "RESULT " + json.dumps(flag), "", 1.0, False).failed


def test_the_last_result_line_counts() -> None:
    stdout = 'RESULT {"a": 1}\nnoise\nRESULT {"a": 2}\ntrailing\n'
    assert run_all.find_result(stdout) == {"a": 2}
    assert run_all.find_result("RESULT {not json\n") is None
    assert run_all.find_result("RESULT [1, 2]\n") is None
    assert run_all.find_result("no result here\n") is None


def _full_rows() -> list[table.Row]:
    driver = {"benchmark": "driver_latency_dart", "sales": 280, "p99_ms": 1109.0}
    records: Mapping[str, Mapping[str, Any]] = {
        "edge_accrual": EDGE_RECORD,
        "cashier_lookup": CASHIER_RECORD,
        "driver_latency_fdc": {**driver, "p99_ms": 2.3},
        "driver_latency_dart": driver,
        "sync_catchup": {**SYNC_RECORD, "queued": 100_000},
        "hq_console": HQ_RECORD,
        "member_import_xlsx": IMPORT_RECORD,
        "member_import_csv": IMPORT_RECORD,
        "member_app": MEMBER_APP_RECORD,
        "member_h5": MEMBER_H5_RECORD,
        "cli_start": CLI_START_RECORD,
        "cloud_ingest": CLOUD_INGEST_RECORD,
    }
    return [row for job in run_all.JOBS for row in job.rows(job.name, records[job.name], False)]


def test_the_full_table_fits_110_columns_and_reads_right() -> None:
    rows = _full_rows()
    text = table.render_text(rows)
    lines = text.splitlines()
    assert len(lines) == 1 + len(rows) == 11 + 7 + 2 + 2 + 2 + 7 + 4 + 7
    assert max(len(line) for line in lines) <= 110
    by_figure = {(row.benchmark, row.figure): row for row in rows}
    plate = by_figure["cashier_lookup", "HTTP look-up p99, plate"]
    assert plate.verdict == "short"
    assert plate.ratio == pytest.approx(103.25 / 3.5)
    assert by_figure["driver_latency_dart", "sale to commit p99"].verdict == "short"
    assert by_figure["driver_latency_fdc", "sale to commit p99"].verdict == "pass"
    cells = ("cashier_lookup", "HTTP look-up p99, plate", "103 ms", "< 100 ms", "3.50 ms")
    assert plate.cells() == (*cells, "29.5", "short")
    line = next(line for line in lines if "HTTP look-up p99, plate" in line)
    assert line.split() == " ".join([*cells, "29.5", "short"]).split()
    sqlite = by_figure["sync_catchup", "events/s, sqlite"]
    assert sqlite.cells()[2:5] == ("2,743/s", ">= 5,000/s; ratio >= 0.25", "94,663/s")
    assert by_figure["member_h5", "revisit files refetched"].verdict == "pass"
    assert by_figure["member_h5", "first visit usable"].verdict == "pass"  # < 1,000 ms
    assert by_figure["member_h5", "first visit paint"].verdict == "info"
    home = by_figure["member_app", "GET /me server p99"]
    assert home.verdict == "pass"
    assert home.ratio == pytest.approx(12.4 / 3.1)


def test_notes_name_each_baseline_and_fit_the_width() -> None:
    rows = _full_rows()
    outcomes = [
        run_all.Outcome(job, [r for r in rows if r.benchmark == job.name], 1.0, scale="big")
        for job in run_all.JOBS
    ]
    text = table.wrap(run_all.notes(outcomes, quick=True, markdown=False))
    assert max(len(line) for line in text.splitlines()) <= 110
    for job in run_all.JOBS:
        assert job.name in text
    assert table.QUICK_NOTE in text


def test_only_picks_jobs_by_name_or_by_script() -> None:
    names = [job.name for job in run_all.select(run_all.JOBS, "driver_latency")]
    assert names == ["driver_latency_fdc", "driver_latency_dart"]
    names = [job.name for job in run_all.select(run_all.JOBS, "sync_catchup,edge_accrual")]
    assert names == ["edge_accrual", "sync_catchup"]  # always in the run's own order
    with pytest.raises(ValueError, match="nope"):
        run_all.select(run_all.JOBS, "edge_accrual,nope")


def test_jobs_run_the_scripts_with_this_interpreter() -> None:
    for job in run_all.JOBS:
        assert job.script.is_file(), job.script
        command = job.command(quick=True)
        assert command[:2] == [sys.executable, str(job.script)]
    dart = _job_named("driver_latency_dart")
    assert dart.command(quick=False)[2:] == ["--driver", "dart"]
    assert os.path.isabs(dart.command(quick=False)[1])


def test_hq_console_rows_are_the_routes_p95_the_backtest_and_the_rebuild() -> None:
    rows = readers.hq_console_rows("hq_console", HQ_RECORD, False)
    by_figure = {row.figure: row for row in rows}
    assert list(by_figure)[:2] == ["dashboard p95, chain", "dashboard p95, S001"]
    assert len(rows) == 5 + 2  # the in-process figures stay in the script's own table
    liability = by_figure["liability p95, S001"]
    assert (liability.verdict, liability.baseline) == ("short", 2.5)
    assert liability.ratio == pytest.approx(380.0 / 2.5)
    assert by_figure["dashboard p95, chain"].verdict == "pass"
    assert by_figure["members p95, chain"].verdict == "info"  # issue 16 sets no target on it
    backtest = by_figure["backtest sales/s"]
    assert backtest.verdict == "pass"
    assert backtest.ratio == pytest.approx(0.7)
    assert by_figure["aggregates rebuild"].verdict == "info"
    without = {key: value for key, value in HQ_RECORD.items() if key != "backtest"}
    outcome = run_all.outcome_of(
        _job_named("hq_console"), 0, "RESULT " + json.dumps(without), "", 1.0, False
    )
    assert outcome.failed


def test_member_import_rows_per_backend_against_the_parse() -> None:
    sqlite, postgresql = readers.member_import_rows("member_import_csv", IMPORT_RECORD, False)
    assert (sqlite.figure, sqlite.verdict) == ("import, sqlite", "pass")
    assert (postgresql.figure, postgresql.verdict) == ("import, postgresql", "short")
    assert postgresql.ratio == pytest.approx(75.0 / 12.5)


def test_cli_start_rows_judge_the_help_median_against_python_itself() -> None:
    rows = readers.cli_start_rows("cli_start", CLI_START_RECORD, False)
    by_figure = {row.figure: row for row in rows}
    assert list(by_figure) == [
        "--help, median",
        "--help, min",
        "member show, median",
        "member show, min",
    ]
    median = by_figure["--help, median"]
    assert (median.verdict, median.baseline) == ("short", 25.0)  # 310 ms is over 300 ms
    assert median.ratio == pytest.approx(310.0 / 25.0)
    assert by_figure["--help, min"].ratio == pytest.approx(140.0 / 20.0)
    assert by_figure["member show, median"].verdict == "info"
    fast = {**CLI_START_RECORD, "help_median_ms": 180.0}
    assert readers.cli_start_rows("cli_start", fast, False)[0].verdict == "pass"
    without = {key: value for key, value in CLI_START_RECORD.items() if key != "show_min_ms"}
    outcome = run_all.outcome_of(
        _job_named("cli_start"), 0, "RESULT " + json.dumps(without), "", 1.0, False
    )
    assert outcome.failed


def test_cloud_ingest_rows_the_chain_against_the_raw_upsert_and_each_single_station() -> None:
    rows = readers.cloud_ingest_rows("cloud_ingest", CLOUD_INGEST_RECORD, False)
    by_figure = {row.figure: row for row in rows}
    assert list(by_figure) == [
        "200 stations: events/s",
        "events/s vs raw COPY",
        "events/s vs ledger rows",
        "push p99, 1,000 events",
        "push p50, 1,000 events",
        "catch-up, sqlite",
        "catch-up, postgresql",
    ]
    chain = by_figure["200 stations: events/s"]
    assert [t.on for t in chain.targets] == ["value", "ratio"]
    assert (chain.baseline, chain.verdict) == (30_000, "short")
    assert chain.ratio == pytest.approx(2_400 / 30_000)
    assert by_figure["events/s vs raw COPY"].ratio == pytest.approx(2_400 / 80_000)
    assert by_figure["events/s vs raw COPY"].verdict == "info"
    assert by_figure["events/s vs ledger rows"].ratio == pytest.approx(2_400 / 6_000)
    assert by_figure["push p99, 1,000 events"].verdict == "short"  # 98.5 s >= 500 ms
    assert by_figure["catch-up, sqlite"].verdict == "pass"  # 5,200 >= 5,000
    assert by_figure["catch-up, postgresql"].verdict == "short"
    fast = {
        **CLOUD_INGEST_RECORD["chain"],
        "events_per_s": 16_000,
        "push_p99_ms": 420.0,
    }
    rows = readers.cloud_ingest_rows("cloud_ingest", {"chain": fast, "single": []}, True)
    assert [row.verdict for row in rows] == ["pass", "info", "info", "pass", "info"]  # 0.53
    half = {**fast, "raw": {**fast["raw"], "upsert_rows_per_s": 40_000}}  # 10,000/s, 0.4
    [row, *_] = readers.cloud_ingest_rows("cloud_ingest", {"chain": half, "single": []}, False)
    assert row.verdict == "short"
    scale = readers.cloud_ingest_scale(CLOUD_INGEST_RECORD)
    assert scale == "200 stations x 2,000 events; 1 station x 20,000 events; cloud run --workers 2"
    alone = {**CLOUD_INGEST_RECORD, "workers": None, "workers_supported": False, "single": []}
    assert (
        readers.cloud_ingest_scale(alone) == "200 stations x 2,000 events; cloud run in one process"
    )


def test_a_cloud_ingest_record_without_its_baseline_fails_naming_it() -> None:
    job = _job_named("cloud_ingest")
    chain = {k: v for k, v in CLOUD_INGEST_RECORD["chain"].items() if k != "raw"}
    records: list[dict[str, Any]] = [{**CLOUD_INGEST_RECORD, "chain": chain}, {"single": []}]
    for record in records:
        outcome = run_all.outcome_of(job, 0, "RESULT " + json.dumps(record), "", 1.0, False)
        [row] = outcome.rows
        assert row.figure == "failed: bad RESULT"
    raw = {**CLOUD_INGEST_RECORD["chain"]["raw"], "copy_rows_per_s": None}
    bad = {**CLOUD_INGEST_RECORD, "chain": {**CLOUD_INGEST_RECORD["chain"], "raw": raw}}
    outcome = run_all.outcome_of(job, 0, "RESULT " + json.dumps(bad), "", 1.0, False)
    assert "copy_rows_per_s" in outcome.rows[0].detail
