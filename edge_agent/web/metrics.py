"""Prometheus text for /metrics: request counts kept here, business numbers from the store."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

__all__ = ["RequestCounter", "render_metrics"]


class RequestCounter:
    """HTTP requests by method, route template and status; route templates keep it bounded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, int], int] = {}

    def count(self, method: str, route: str, status: int) -> None:
        key = (method, route, status)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def snapshot(self) -> dict[tuple[str, str, int], int]:
        with self._lock:
            return dict(self._counts)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(
    status: Mapping[str, Any], requests: RequestCounter, *, sessions: int, listeners: int
) -> str:
    """The exposition text; `status` is `station_status`'s answer."""
    store, sync = status["store"], status["sync"]
    lines = [
        "# HELP loyalpump_sales_total Fuel sales recorded by this station.",
        "# TYPE loyalpump_sales_total counter",
        f"loyalpump_sales_total {int(store['sales'])}",
        "# HELP loyalpump_members Members known to this station.",
        "# TYPE loyalpump_members gauge",
        f"loyalpump_members {int(store['members'])}",
        "# HELP loyalpump_outbox_backlog Events waiting to be pushed to the cloud.",
        "# TYPE loyalpump_outbox_backlog gauge",
        f"loyalpump_outbox_backlog {int(sync['backlog'])}",
        "# HELP loyalpump_web_sessions Open cashier sessions.",
        "# TYPE loyalpump_web_sessions gauge",
        f"loyalpump_web_sessions {sessions}",
        "# HELP loyalpump_web_event_listeners Open pump-board event streams.",
        "# TYPE loyalpump_web_event_listeners gauge",
        f"loyalpump_web_event_listeners {listeners}",
        "# HELP loyalpump_http_requests_total HTTP requests answered, by route and status.",
        "# TYPE loyalpump_http_requests_total counter",
    ]
    for (method, route, code), count in sorted(requests.snapshot().items()):
        lines.append(
            f'loyalpump_http_requests_total{{method="{_label(method)}",'
            f'route="{_label(route)}",status="{code}"}} {count}'
        )
    return "\n".join(lines) + "\n"
