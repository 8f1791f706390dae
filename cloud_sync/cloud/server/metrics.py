"""The cloud's /metrics through prometheus_client: counters and latency histograms per app.

Each app gets its own `CollectorRegistry` (made by `CloudMetrics`, from the app factory;
nothing at import time), so two apps in one process never clash. Labels are bounded: routes
are templates (never ids or query strings), methods a fixed set, results and kinds fixed
vocabularies, so a misbehaving client cannot grow the exposition without limit.

Several workers (`cloud run --workers N`): when PROMETHEUS_MULTIPROC_DIR is set (before the
worker imports prometheus_client) every worker writes its counters and histograms to files
there, and a scrape answered by any worker sums all of them with `MultiProcessCollector`.
The ledger totals and `database_up` are read from the database at scrape time by a collector
of the scrape itself, so they count once, not once per worker. The supervisor calls
`prepare_multiprocess_dir` before it starts the workers and `worker_exited` when one ends.
prometheus_client picks file-backed values when it is first imported: set the variable
before that in the process the workers come from (a forked worker keeps its parent's
choice), or start the workers fresh (spawn, exec).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

__all__ = [
    "LATENCY_BUCKETS_S",
    "MULTIPROC_ENV",
    "CloudMetrics",
    "prepare_multiprocess_dir",
    "worker_exited",
]

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_RESULTS = ("applied", "duplicate", "rejected")
_CONFLICTS = ("sequence_gap", "event_conflict")


def prepare_multiprocess_dir(path: Path) -> Path:
    """Create `path` private (0700: it sits in the data folder), emptied of metric files.

    Files a previous run left would be summed into this one. Call it in the supervisor
    before any worker starts, then set PROMETHEUS_MULTIPROC_DIR to `path` in the workers'
    environment. Only prometheus_client's own `*.db` files are removed.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    return path


def worker_exited(pid: int, path: Path | None = None) -> None:
    """Tell the metrics a worker is gone (call in the supervisor when it reaps `pid`).

    Its counters and histograms stay in the sums (a counter never goes down); only live
    gauges of that process are dropped. `path` defaults to PROMETHEUS_MULTIPROC_DIR.
    """
    mark_process_dead(pid, None if path is None else str(path))  # type: ignore[no-untyped-call]


def _method(method: str) -> str:
    """A standard method as is, any other token as OTHER (clients may send any token)."""
    return method if method in _METHODS else "OTHER"


class _LedgerTotals(Collector):
    """The ledger's totals, read at scrape time: one value per scrape, whatever the workers."""

    def __init__(self, totals: Mapping[str, int] | None) -> None:
        self._totals = totals

    def collect(self) -> Iterator[Metric]:
        ledger = GaugeMetricFamily(
            "loyalpump_cloud_ledger", "Chain ledger totals, by quantity.", labels=["quantity"]
        )
        for name, value in sorted((self._totals or {}).items()):
            ledger.add_metric([str(name)], int(value))
        yield ledger
        yield GaugeMetricFamily(
            "loyalpump_cloud_database_up",
            "1 when the ledger database answered.",
            value=0 if self._totals is None else 1,
        )


class CloudMetrics:
    """One app's counters and histograms (prometheus_client metrics are thread-safe).

    `multiprocess_dir` defaults to PROMETHEUS_MULTIPROC_DIR ('' turns it off); when set, a
    scrape sums every worker's files there instead of reading this process's registry. The
    counting itself goes to those files only when the variable was set before this process
    imported prometheus_client (the library decides then), as a worker's environment is.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        multiprocess_dir: str | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        if multiprocess_dir is None:
            multiprocess_dir = os.environ.get(MULTIPROC_ENV, "")
        self.multiprocess_dir = multiprocess_dir or None
        self._pushes = Counter(
            "loyalpump_cloud_pushes",
            "Event batches accepted from stations.",
            registry=self.registry,
        )
        self._events = Counter(
            "loyalpump_cloud_events",
            "Pushed events answered, by result.",
            ["result"],
            registry=self.registry,
        )
        self._conflicts = Counter(
            "loyalpump_cloud_push_conflicts",
            "Pushes answered 409, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self._changes_pages = Counter(
            "loyalpump_cloud_changes_pages",
            "Changes pages served to stations.",
            registry=self.registry,
        )
        self._requests = Counter(
            "loyalpump_cloud_http_requests",
            "HTTP requests, by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "loyalpump_cloud_http_request_duration_seconds",
            "Request latency by route (the push is route /api/v1/sync/events).",
            ["route"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        for result in _RESULTS:  # present at 0 before the first push
            self._events.labels(result=result)
        for kind in _CONFLICTS:
            self._conflicts.labels(kind=kind)

    def push_answered(self, statuses: list[str]) -> None:
        self._pushes.inc()
        for status in statuses:
            self._events.labels(result=status).inc()

    def conflict(self, kind: str) -> None:
        self._conflicts.labels(kind=kind).inc()

    def changes_page(self) -> None:
        self._changes_pages.inc()

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        self._requests.labels(method=_method(method), route=route, status=str(status)).inc()
        self._latency.labels(route=route).observe(seconds)

    def render(self, totals: Mapping[str, int] | None) -> str:
        """The exposition text; `totals` is `CloudLedger.totals()` (None: database down)."""
        if self.multiprocess_dir:
            counted = CollectorRegistry()  # fresh per scrape: the files are the truth
            MultiProcessCollector(counted, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        else:
            counted = self.registry
        read = CollectorRegistry()
        read.register(_LedgerTotals(totals))
        return (generate_latest(counted) + generate_latest(read)).decode("utf-8")
