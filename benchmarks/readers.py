"""Per-benchmark readers for run_all.py: a RESULT record becomes table rows and a scale line.

The targets are the benchmark scripts' own constants, so a target is written once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from benchmarks import (
    cashier_lookup,
    cli_start,
    cloud_ingest,
    driver_latency,
    edge_accrual,
    hq_console,
    member_app,
    member_h5,
    member_import,
    sync_catchup,
)
from benchmarks.table import RecordError, Row, Target, figure_row, number

__all__ = [
    "cashier_lookup_rows",
    "cashier_lookup_scale",
    "cli_start_rows",
    "cli_start_scale",
    "cloud_ingest_rows",
    "cloud_ingest_scale",
    "driver_latency_rows",
    "driver_latency_scale",
    "edge_accrual_rows",
    "edge_accrual_scale",
    "hq_console_rows",
    "hq_console_scale",
    "member_app_rows",
    "member_app_scale",
    "member_h5_rows",
    "member_h5_scale",
    "member_import_rows",
    "member_import_scale",
    "sync_catchup_rows",
    "sync_catchup_scale",
]


def edge_accrual_rows(name: str, record: Mapping[str, Any], quick: bool) -> list[Row]:
    lookup = (Target("value", "<", edge_accrual.TARGET_LOOKUP_P99_MS),)
    return [
        figure_row(
            name,
            "record_sale commits/s",
            number(record, "accrual_rate_per_s"),
            "/s",
            (Target("ratio", ">=", edge_accrual.TARGET_RATIO),),
            number(record, "raw_rate_per_s"),
            quick,
        ),
        figure_row(
            name,
            "record_sale p99",
            number(record, "accrual_p99_ms"),
            "ms",
            (Target("value", "<", edge_accrual.TARGET_ACCRUAL_P99_MS),),
            number(record, "raw_p99_ms"),
            quick,
        ),
        figure_row(
            name,
            "find_member p99, phone",
            number(record, "phone_p99_ms"),
            "ms",
            lookup,
            None,
            quick,
        ),
        figure_row(
            name,
            "find_member p99, plate",
            number(record, "plate_p99_ms"),
            "ms",
            lookup,
            None,
            quick,
        ),
    ]


def cashier_lookup_rows(name: str, record: Mapping[str, Any], quick: bool) -> list[Row]:
    target = (Target("value", "<", cashier_lookup.TARGET_P99_MS),)
    baseline = number(record, "baseline_p99_ms")
    return [
        figure_row(
            name,
            f"HTTP look-up p99, {kind}",
            number(record, f"{kind}_p99_ms"),
            "ms",
            target,
            baseline,
            quick,
        )
        for kind in ("phone", "plate")
    ]


def driver_latency_rows(name: str, record: Mapping[str, Any], quick: bool) -> list[Row]:
    target = (Target("value", "<", driver_latency.TARGET_P99_MS),)
    return [
        figure_row(name, "sale to commit p99", number(record, "p99_ms"), "ms", target, None, quick)
    ]


def sync_catchup_rows(name: str, record: Mapping[str, Any], quick: bool) -> list[Row]:
    results = record.get("results")
    if not isinstance(results, list) or not results:
        raise RecordError(f"RESULT has no list of per-backend results (got {results!r})")
    rows = []
    for result in results:
        if not isinstance(result, dict) or not isinstance(result.get("backend"), str):
            raise RecordError(f"RESULT has a backend result without a backend: {result!r}")
        backend = result["backend"]
        targets = [Target("ratio", ">=", sync_catchup.TARGET_RATIO)]
        if backend == "sqlite":
            targets.insert(0, Target("value", ">=", sync_catchup.TARGET_SQLITE_EVENTS_PER_S))
        rows.append(
            figure_row(
                name,
                f"events/s, {backend}",
                number(result, "events_per_s"),
                "/s",
                targets,
                number(result, "raw_rows_per_s"),
                quick,
            )
        )
    return rows


def hq_console_rows(name: str, record: Mapping[str, Any], quick: bool) -> list[Row]:
    reports = record.get("reports")
    baseline = record.get("baseline_route")
    backtest = record.get("backtest")
    seed = record.get("seed")
    if not isinstance(reports, list) or not reports:
        raise RecordError(f"RESULT has no list of report figures (got {reports!r})")
    if not isinstance(baseline, dict) or not isinstance(backtest, dict):
        raise RecordError("RESULT lacks baseline_route or backtest")
    if not isinstance(seed, dict):
        raise RecordError("RESULT lacks seed")
    target = (Target("value", "<", hq_console.TARGET_REPORT_P95_MS),)  # issue 16: these two
    rows = []
    for report in reports:
        if not isinstance(report, dict) or report.get("via") != "route":
            continue
        rows.append(
            figure_row(
                name,
                f"{report.get('report')} p95, {report.get('scope')}",
                number(report, "p95_ms"),
                "ms",
                target if report.get("report") in ("dashboard", "liability") else (),
                number(baseline, "p95_ms"),
                quick,
            )
        )
    rows.append(
        figure_row(
            name,
            "backtest sales/s",
            number(backtest, "backtest_sales_per_s"),
            "/s",
            (Target("value", ">=", hq_console.TARGET_SALES_PER_S),),
            number(backtest, "price_sale_per_s"),
            quick,
        )
    )
    rows.append(
        figure_row(name, "aggregates rebuild", number(seed, "rebuild_s"), "s", (), None, quick)
    )
    return rows


def member_import_rows(name: str, record: Mapping[str, Any], quick: bool) -> list[Row]:
    results = record.get("results")
    if not isinstance(results, list) or not results:
        raise RecordError(f"RESULT has no list of per-backend results (got {results!r})")
    rows = []
    for result in results:
        if not isinstance(result, dict) or not isinstance(result.get("backend"), str):
            raise RecordError(f"RESULT has a backend result without a backend: {result!r}")
        rows.append(
            figure_row(
                name,
                f"import, {result['backend']}",
                number(result, "seconds"),
                "s",
                (Target("value", "<", member_import.TARGET_S),),
                number(result, "parse_seconds"),
                quick,
            )
        )
    return rows


def edge_accrual_scale(record: Mapping[str, Any]) -> str:
    return f"{number(record, 'sales'):,.0f} sales, {number(record, 'members'):,.0f} members"


def cashier_lookup_scale(record: Mapping[str, Any]) -> str:
    return f"{number(record, 'members'):,.0f} members"


def driver_latency_scale(record: Mapping[str, Any]) -> str:
    return f"{number(record, 'sales'):,.0f} sales after the warm-up"


def sync_catchup_scale(record: Mapping[str, Any]) -> str:
    return f"{number(record, 'queued'):,.0f} events"


def hq_console_scale(record: Mapping[str, Any]) -> str:
    backtest = record.get("backtest")
    window = number(backtest, "window_sales") if isinstance(backtest, dict) else 0.0
    return (
        f"{number(record, 'members'):,.0f} members, {number(record, 'sales'):,.0f} sales; "
        f"backtest over {window:,.0f}"
    )


def member_import_scale(record: Mapping[str, Any]) -> str:
    results = record.get("results")
    first = results[0] if isinstance(results, list) and results else {}
    return f"{number(first, 'rows'):,.0f} rows" if isinstance(first, dict) else ""


def member_app_rows(name: str, record: Mapping[str, Any], quick: bool) -> list[Row]:
    home, baseline = record.get("home"), record.get("baseline")
    if not isinstance(home, list) or not home or not isinstance(baseline, list):
        raise RecordError(f"RESULT has no list of load runs (got {home!r})")
    target = (Target("value", "<", member_app.TARGET_P99_MS),)
    return [
        figure_row(
            name,
            "GET /me server p99",
            number(record, "p99_ms"),
            "ms",
            target,
            number(record, "baseline_p99_ms"),
            quick,
        ),
        figure_row(
            name,
            "GET /me req/s, p99 met",
            number(record, "per_s_under_target"),
            "/s",
            (),
            None,
            quick,
        ),
    ]


def member_app_scale(record: Mapping[str, Any]) -> str:
    return f"{number(record, 'members'):,.0f} members, {number(record, 'sales'):,.0f} sales"


def member_h5_rows(name: str, record: Mapping[str, Any], quick: bool) -> list[Row]:
    """run_all.py's rows for this benchmark's RESULT."""
    floor = number(record, "floor_ms")
    usable = (Target("value", "<", member_h5.TARGET_USABLE_MS),)
    # usable: the sign-in works (send code live); ready: the screens' scripts have run
    return [
        figure_row(name, "first visit paint", number(record, "cold_paint_ms"), "ms",
                   (), floor, quick),
        figure_row(name, "first visit usable", number(record, "cold_usable_ms"), "ms",
                   usable, floor, quick),
        figure_row(name, "first visit, screens in", number(record, "cold_ready_ms"), "ms",
                   (), floor, quick),
        figure_row(name, "revisit usable", number(record, "warm_usable_ms"), "ms",
                   usable, floor, quick),
        figure_row(name, "revisit, screens in", number(record, "warm_ready_ms"), "ms",
                   (), floor, quick),
        figure_row(name, "revisit files refetched", number(record, "revisit_static_fetches"),
                   "", (Target("value", "<", 1),), None, quick),
        figure_row(name, "first visit bytes", number(record, "first_visit_bytes"),
                   "B", (), None, quick),
    ]  # fmt: skip


def member_h5_scale(record: Mapping[str, Any]) -> str:
    return f"{number(record, 'runs'):,.0f} cold and warm loads at 375x667"


def cli_start_rows(name: str, record: Mapping[str, Any], quick: bool) -> list[Row]:
    """Whole-process wall times against `python -c pass`; the target is on --help's median."""
    baseline_min, baseline_median = (
        number(record, "baseline_min_ms"),
        number(record, "baseline_median_ms"),
    )
    target = (Target("value", "<", cli_start.TARGET_HELP_MS),)
    return [
        figure_row(name, "--help, median", number(record, "help_median_ms"), "ms",
                   target, baseline_median, quick),
        figure_row(name, "--help, min", number(record, "help_min_ms"), "ms",
                   (), baseline_min, quick),
        figure_row(name, "member show, median", number(record, "show_median_ms"), "ms",
                   (), baseline_median, quick),
        figure_row(name, "member show, min", number(record, "show_min_ms"), "ms",
                   (), baseline_min, quick),
    ]  # fmt: skip


def cli_start_scale(record: Mapping[str, Any]) -> str:
    return f"{number(record, 'runs'):,.0f} runs each, {number(record, 'members'):,.0f} members"


def cloud_ingest_rows(name: str, record: Mapping[str, Any], quick: bool) -> list[Row]:
    """The chain's applied events/s against the raw upsert and COPY, its push latency, and
    one station catching up per backend."""
    chain, single = record.get("chain"), record.get("single")
    if chain is None and not single:
        raise RecordError("RESULT has neither a chain run nor a single-station run")
    if not isinstance(single, list):
        raise RecordError(f"RESULT has no list of single-station runs (got {single!r})")
    rows = []
    if chain is not None:
        if not isinstance(chain, dict) or not isinstance(chain.get("raw"), dict):
            raise RecordError(f"RESULT has a chain run without its raw baseline: {chain!r}")
        rate = number(chain, "events_per_s")
        batch = f"{number(chain, 'batch'):,.0f} events"
        rows += [
            figure_row(
                name,
                f"{chain.get('stations')} stations: events/s",
                rate,
                "/s",
                (
                    Target("value", ">=", cloud_ingest.TARGET_EVENTS_PER_S),
                    Target("ratio", ">=", cloud_ingest.TARGET_RATIO),
                ),
                number(chain["raw"], "upsert_rows_per_s"),
                quick,
            ),
            figure_row(
                name, "events/s vs raw COPY", rate, "/s", (),
                number(chain["raw"], "copy_rows_per_s"), quick,
            ),
            figure_row(
                name, "events/s vs ledger rows", rate, "/s", (),
                number(chain["raw"], "ledger_rows_per_s"), quick,
            ),
            figure_row(
                name, f"push p99, {batch}", number(chain, "push_p99_ms"), "ms",
                (Target("value", "<", cloud_ingest.TARGET_P99_MS),), None, quick,
            ),
            figure_row(
                name, f"push p50, {batch}", number(chain, "push_p50_ms"), "ms",
                (), None, quick,
            ),
        ]  # fmt: skip
    for result in single:
        if not isinstance(result, dict) or not isinstance(result.get("backend"), str):
            raise RecordError(f"RESULT has a single-station run without a backend: {result!r}")
        rows.append(
            figure_row(
                name,
                f"catch-up, {result['backend']}",
                number(result, "events_per_s"),
                "/s",
                (Target("value", ">=", cloud_ingest.TARGET_SINGLE_EVENTS_PER_S),),
                number(result, "raw_rows_per_s"),
                quick,
            )
        )
    return rows


def cloud_ingest_scale(record: Mapping[str, Any]) -> str:
    parts = []
    chain = record.get("chain")
    if isinstance(chain, dict):
        parts.append(
            f"{number(chain, 'stations'):,.0f} stations x "
            f"{number(chain, 'events_per_station'):,.0f} events"
        )
    single = record.get("single")
    if isinstance(single, list) and single and isinstance(single[0], dict):
        parts.append(f"1 station x {number(single[0], 'events_per_station'):,.0f} events")
    workers = record.get("workers")
    if record.get("workers_supported") is False:
        parts.append("cloud run in one process")
    else:
        parts.append(f"cloud run --workers {workers}" if workers else "cloud run's default workers")
    return "; ".join(parts)
