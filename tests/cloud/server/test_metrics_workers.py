"""/metrics with several workers: each process writes its own files, a scrape sums them.

Real processes: two interpreters started with PROMETHEUS_MULTIPROC_DIR count pushes and
requests into one directory, as `cloud run --workers 2` does; the scrape (here, a third
process) must report their sum, and the ledger totals read at scrape time only once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from cloud_sync.cloud.server.metrics import (
    MULTIPROC_ENV,
    CloudMetrics,
    prepare_multiprocess_dir,
    worker_exited,
)

WORKER = """
from cloud_sync.cloud.server.metrics import CloudMetrics
metrics = CloudMetrics()
metrics.push_answered(["applied"] * {applied} + ["duplicate"])
metrics.conflict("sequence_gap")
for _ in range({applied}):
    metrics.request("POST", "/api/v1/sync/events", 200, 0.02)
metrics.request("BREW", "/api/v1/sync/events", 405, 3.0)
"""


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of an exposition, as Prometheus parses it."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def run_worker(directory: Path, applied: int) -> int:
    env = {**os.environ, MULTIPROC_ENV: str(directory)}
    with subprocess.Popen(
        [sys.executable, "-c", WORKER.format(applied=applied)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    ) as worker:
        _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0, stderr
    return worker.pid


def test_two_workers_are_summed_and_the_ledger_counted_once(tmp_path: Path) -> None:
    directory = prepare_multiprocess_dir(tmp_path / "metrics")
    first = run_worker(directory, applied=2)
    run_worker(directory, applied=3)
    scrape = CloudMetrics(multiprocess_dir=str(directory))
    found = samples(scrape.render({"members": 7, "points_outstanding": 1200}))

    assert found["loyalpump_cloud_pushes_total", ()] == 2
    assert found["loyalpump_cloud_events_total", (("result", "applied"),)] == 5
    assert found["loyalpump_cloud_events_total", (("result", "duplicate"),)] == 2
    assert found["loyalpump_cloud_push_conflicts_total", (("kind", "sequence_gap"),)] == 2
    route = ("route", "/api/v1/sync/events")
    assert found["loyalpump_cloud_http_request_duration_seconds_count", (route,)] == 7
    le = "loyalpump_cloud_http_request_duration_seconds_bucket"
    assert found[le, (("le", "0.025"), route)] == 5
    assert found[le, (("le", "+Inf"), route)] == 7
    post = ("method", "POST"), route, ("status", "200")
    assert found["loyalpump_cloud_http_requests_total", post] == 5
    other = ("method", "OTHER"), route, ("status", "405")  # an invented method is folded
    assert found["loyalpump_cloud_http_requests_total", other] == 2
    # Read from the database at scrape time: once, whatever the number of workers.
    assert found["loyalpump_cloud_ledger", (("quantity", "members"),)] == 7
    assert found["loyalpump_cloud_database_up", ()] == 1

    worker_exited(first, directory)  # a counter never goes down when its worker is gone
    again = samples(scrape.render(None))
    assert again["loyalpump_cloud_pushes_total", ()] == 2
    assert again["loyalpump_cloud_database_up", ()] == 0
    assert not any(name == "loyalpump_cloud_ledger" for name, _ in again)


def test_prepare_empties_what_a_previous_run_left(tmp_path: Path) -> None:
    directory = prepare_multiprocess_dir(tmp_path / "metrics")
    run_worker(directory, applied=4)
    assert list(directory.iterdir())
    assert prepare_multiprocess_dir(directory) == directory
    assert list(directory.iterdir()) == []
    found = samples(CloudMetrics(multiprocess_dir=str(directory)).render({}))
    assert ("loyalpump_cloud_pushes_total", ()) not in found


def test_two_apps_in_one_process_keep_their_own_counts() -> None:
    one, two = CloudMetrics(multiprocess_dir=""), CloudMetrics(multiprocess_dir="")
    one.push_answered(["applied"])
    one.request("GET", "/healthz", 200, 0.001)
    assert samples(one.render({}))["loyalpump_cloud_pushes_total", ()] == 1
    other = samples(two.render({}))
    assert other["loyalpump_cloud_pushes_total", ()] == 0
    assert other["loyalpump_cloud_events_total", (("result", "applied"),)] == 0
