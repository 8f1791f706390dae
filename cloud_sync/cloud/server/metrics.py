"""Prometheus text for the cloud's /metrics: counters kept in memory, totals from the ledger.

Labels are bounded: routes are templates (never ids or query strings), results and kinds are
fixed vocabularies, so a misbehaving client cannot grow the exposition without limit.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

__all__ = ["LATENCY_BUCKETS_S", "CloudMetrics"]

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Histogram:
    def __init__(self) -> None:
        self.buckets = [0] * len(LATENCY_BUCKETS_S)
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        for index, bound in enumerate(LATENCY_BUCKETS_S):
            if seconds <= bound:
                self.buckets[index] += 1


class CloudMetrics:
    """Thread-safe counters for one app instance (endpoints run in the threadpool)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pushes = 0
        self._events: dict[str, int] = {"applied": 0, "duplicate": 0, "rejected": 0}
        self._conflicts: dict[str, int] = {"sequence_gap": 0, "event_conflict": 0}
        self._changes_pages = 0
        self._requests: dict[tuple[str, str, int], int] = {}
        self._latency: dict[str, _Histogram] = {}

    def push_answered(self, statuses: list[str]) -> None:
        with self._lock:
            self._pushes += 1
            for status in statuses:
                self._events[status] = self._events.get(status, 0) + 1

    def conflict(self, kind: str) -> None:
        with self._lock:
            self._conflicts[kind] = self._conflicts.get(kind, 0) + 1

    def changes_page(self) -> None:
        with self._lock:
            self._changes_pages += 1

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (method, route, status)
            self._requests[key] = self._requests.get(key, 0) + 1
            self._latency.setdefault(route, _Histogram()).observe(seconds)

    def render(self, totals: Mapping[str, int] | None) -> str:
        """The exposition text; `totals` is `CloudLedger.totals()` (None: database down)."""
        with self._lock:
            lines = [
                "# HELP loyalpump_cloud_pushes_total Event batches accepted from stations.",
                "# TYPE loyalpump_cloud_pushes_total counter",
                f"loyalpump_cloud_pushes_total {self._pushes}",
                "# HELP loyalpump_cloud_events_total Pushed events answered, by result.",
                "# TYPE loyalpump_cloud_events_total counter",
            ]
            lines += [
                f'loyalpump_cloud_events_total{{result="{_label(result)}"}} {count}'
                for result, count in sorted(self._events.items())
            ]
            lines += [
                "# HELP loyalpump_cloud_push_conflicts_total Pushes answered 409, by kind.",
                "# TYPE loyalpump_cloud_push_conflicts_total counter",
            ]
            lines += [
                f'loyalpump_cloud_push_conflicts_total{{kind="{_label(kind)}"}} {count}'
                for kind, count in sorted(self._conflicts.items())
            ]
            lines += [
                "# HELP loyalpump_cloud_changes_pages_total Changes pages served to stations.",
                "# TYPE loyalpump_cloud_changes_pages_total counter",
                f"loyalpump_cloud_changes_pages_total {self._changes_pages}",
                "# HELP loyalpump_cloud_http_requests_total HTTP requests, by route and status.",
                "# TYPE loyalpump_cloud_http_requests_total counter",
            ]
            lines += [
                f'loyalpump_cloud_http_requests_total{{method="{_label(method)}",'
                f'route="{_label(route)}",status="{status}"}} {count}'
                for (method, route, status), count in sorted(self._requests.items())
            ]
            lines += [
                "# HELP loyalpump_cloud_http_request_duration_seconds Request latency by route.",
                "# TYPE loyalpump_cloud_http_request_duration_seconds histogram",
            ]
            for route, histogram in sorted(self._latency.items()):
                name = "loyalpump_cloud_http_request_duration_seconds"
                label = f'route="{_label(route)}"'
                for bound, count in zip(LATENCY_BUCKETS_S, histogram.buckets, strict=True):
                    lines.append(f'{name}_bucket{{{label},le="{bound}"}} {count}')
                lines.append(f'{name}_bucket{{{label},le="+Inf"}} {histogram.count}')
                lines.append(f"{name}_sum{{{label}}} {histogram.total:.6f}")
                lines.append(f"{name}_count{{{label}}} {histogram.count}")
        lines += [
            "# HELP loyalpump_cloud_ledger Chain ledger totals, by quantity.",
            "# TYPE loyalpump_cloud_ledger gauge",
        ]
        lines += [
            f'loyalpump_cloud_ledger{{quantity="{_label(str(name))}"}} {int(value)}'
            for name, value in sorted((totals or {}).items())
        ]
        lines += [
            "# HELP loyalpump_cloud_database_up 1 when the ledger database answered.",
            "# TYPE loyalpump_cloud_database_up gauge",
            f"loyalpump_cloud_database_up {0 if totals is None else 1}",
        ]
        return "\n".join(lines) + "\n"
