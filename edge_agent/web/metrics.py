"""Prometheus text for /metrics: request counts and latencies kept here, the rest asked for.

Business numbers come from the store (`station_status`), link and driver numbers from the
daemon's health probe. Labels carry only bounded, non-personal values: route templates (never
a raw path, which may hold a sale id or a phone), methods, link names and counter names.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .health import RuntimeHealth

__all__ = [
    "LATENCY_BUCKETS_S",
    "LatencyHistogram",
    "RequestCounter",
    "TimingMiddleware",
    "method_label",
    "render_metrics",
    "route_label",
]

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_NOT_ERRORS = frozenset({"frames", "sales"})  # LinkCounters fields that count good traffic
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    """The method as a label: a standard one as is, any other token a client sends as OTHER.

    uvicorn (h11) accepts any method token, so labelling it raw would let a client create
    an unbounded number of series.
    """
    return method if method in _METHODS else "OTHER"


class RequestCounter:
    """HTTP requests by method, route template and status; route templates keep it bounded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, int], int] = {}

    def count(self, method: str, route: str, status: int) -> None:
        key = (method_label(method), route, status)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def snapshot(self) -> dict[tuple[str, str, int], int]:
        with self._lock:
            return dict(self._counts)


class LatencyHistogram:
    """Request durations by (route template, method), in the fixed `LATENCY_BUCKETS_S`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str], tuple[list[int], float]] = {}

    def observe(self, route: str, method: str, seconds: float) -> None:
        key = (route, method_label(method))
        with self._lock:
            counts, total = self._series.get(key) or ([0] * (len(LATENCY_BUCKETS_S) + 1), 0.0)
            index = next(
                (i for i, bound in enumerate(LATENCY_BUCKETS_S) if seconds <= bound),
                len(LATENCY_BUCKETS_S),
            )
            counts[index] += 1
            self._series[key] = (counts, total + seconds)

    def snapshot(self) -> dict[tuple[str, str], tuple[list[int], float]]:
        """Per series: observations per bucket (not cumulative; the last is +Inf) and the sum."""
        with self._lock:
            return {key: (list(counts), total) for key, (counts, total) in self._series.items()}


_FAMILIES = ("/static/", "/api/v1/", "/ui/")


def route_label(scope: Scope) -> str:
    """The route template that answered, or a bounded family for requests no route answered."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str) and path:
        return path
    raw = str(scope.get("path", ""))
    for prefix in _FAMILIES:
        if raw.startswith(prefix):
            return prefix + "*"
    return "unmatched"


class TimingMiddleware:
    """ASGI middleware timing each HTTP request until its answer's headers leave.

    Time to the headers, not to the last byte: an event stream stays open for minutes, and
    that is its lifetime, not the latency of the request.
    """

    def __init__(self, app: ASGIApp, histogram: LatencyHistogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        done = False

        def record() -> None:
            nonlocal done
            if not done:
                done = True
                elapsed = time.perf_counter() - started
                self.histogram.observe(route_label(scope), str(scope["method"]), elapsed)

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                record()
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            record()  # no answer was started (the app raised): still one observation


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**values: str) -> str:
    return "{" + ",".join(f'{name}="{_label(value)}"' for name, value in values.items()) + "}"


def _family(name: str, kind: str, text: str) -> list[str]:
    return [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]


def _seconds(value: float) -> str:
    return repr(float(value))


def _runtime_lines(runtime: RuntimeHealth) -> list[str]:
    drivers = runtime.drivers
    lines = _family(
        "loyalpump_driver_connected", "gauge", "1 when the link to the forecourt is up."
    )
    lines += [
        f"loyalpump_driver_connected{_labels(driver=d.name)} {int(d.connected)}" for d in drivers
    ]
    lines += _family(
        "loyalpump_sales_ingested_total", "counter", "Sales a link handed to the station."
    )
    lines += [f"loyalpump_sales_ingested_total{_labels(driver=d.name)} {d.sales}" for d in drivers]
    lines += _family("loyalpump_link_frames_total", "counter", "Frames or messages a link read.")
    lines += [
        f"loyalpump_link_frames_total{_labels(driver=d.name)} {d.counters.get('frames', 0)}"
        for d in drivers
    ]
    lines += _family(
        "loyalpump_link_errors_total",
        "counter",
        "Link trouble by kind (CRC, framing, malformed, timeouts, resyncs, reconnects).",
    )
    for d in drivers:
        for kind, count in sorted(d.counters.items()):
            if kind not in _NOT_ERRORS:
                lines.append(
                    f"loyalpump_link_errors_total{_labels(driver=d.name, kind=kind)} {count}"
                )
    lines += _family(
        "loyalpump_sync_thread_alive", "gauge", "1 while the sync engine's thread runs."
    )
    lines.append(f"loyalpump_sync_thread_alive {int(runtime.sync_thread_alive)}")
    return lines


def _latency_lines(histogram: LatencyHistogram) -> Iterable[str]:
    name = "loyalpump_http_request_duration_seconds"
    yield from _family(name, "histogram", "Time to answer an HTTP request, by route template.")
    bounds = [_seconds(b) for b in LATENCY_BUCKETS_S] + ["+Inf"]
    for (route, method), (counts, total) in sorted(histogram.snapshot().items()):
        running = 0
        for bound, count in zip(bounds, counts, strict=True):
            running += count
            yield f"{name}_bucket{_labels(route=route, method=method, le=bound)} {running}"
        yield f"{name}_sum{_labels(route=route, method=method)} {_seconds(total)}"
        yield f"{name}_count{_labels(route=route, method=method)} {running}"


def _timestamp(iso: object) -> int:
    """Unix seconds of an aware ISO timestamp; 0 when absent or unreadable."""
    if not isinstance(iso, str) or not iso:
        return 0
    try:
        at = datetime.fromisoformat(iso)
    except ValueError:
        return 0
    return 0 if at.tzinfo is None else int(at.timestamp())


def _sync_lines(sync: Mapping[str, Any]) -> list[str]:
    lines = _family("loyalpump_sync_backlog", "gauge", "Events waiting to be pushed to the cloud.")
    lines.append(f"loyalpump_sync_backlog {int(sync['backlog'])}")
    lines += _family(
        "loyalpump_sync_oldest_pending_age_seconds",
        "gauge",
        "Age of the oldest event not yet accepted by the cloud (0 when none waits).",
    )
    lines.append(
        f"loyalpump_sync_oldest_pending_age_seconds {int(sync['oldest_pending_age_s'] or 0)}"
    )
    lines += _family(
        "loyalpump_sync_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the cloud's last answer (0 when it never answered).",
    )
    stamp = _timestamp(sync.get("last_contact"))
    lines.append(f"loyalpump_sync_last_success_timestamp_seconds {stamp}")
    return lines


def render_metrics(
    status: Mapping[str, Any],
    requests: RequestCounter,
    *,
    sessions: int,
    listeners: int,
    latency: LatencyHistogram | None = None,
    runtime: RuntimeHealth | None = None,
) -> str:
    """The exposition text; `status` is `station_status`'s answer, `runtime` the probe's."""
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
        *_sync_lines(sync),
        "# HELP loyalpump_web_sessions Open cashier sessions.",
        "# TYPE loyalpump_web_sessions gauge",
        f"loyalpump_web_sessions {sessions}",
        "# HELP loyalpump_web_event_listeners Open pump-board event streams.",
        "# TYPE loyalpump_web_event_listeners gauge",
        f"loyalpump_web_event_listeners {listeners}",
    ]
    if runtime is not None:
        lines += _runtime_lines(runtime)
    lines += [
        "# HELP loyalpump_http_requests_total HTTP requests answered, by route and status.",
        "# TYPE loyalpump_http_requests_total counter",
    ]
    for (method, route, code), count in sorted(requests.snapshot().items()):
        labels = _labels(method=method, route=route, status=str(code))
        lines.append(f"loyalpump_http_requests_total{labels} {count}")
    if latency is not None:
        lines += _latency_lines(latency)
    return "\n".join(lines) + "\n"
