"""/metrics through prometheus_client: request counts and latencies kept here, the rest asked for.

Each app gets its own `CollectorRegistry` (a `StationMetrics` made by the app factory;
nothing at import time), so two apps in one process never clash. Business numbers come from
the store (`station_status`), link and driver numbers from the daemon's health probe; both
are read at scrape time by a collector of that scrape. Labels carry only bounded,
non-personal values: route templates (never a raw path, which may hold a sale id or a
phone), methods, link names and counter names.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .health import RuntimeHealth

__all__ = [
    "LATENCY_BUCKETS_S",
    "StationMetrics",
    "TimingMiddleware",
    "method_label",
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


class StationMetrics:
    """One app's registry: HTTP requests by method, route template and status, and their
    latency histogram by route template and method (prometheus_client is thread-safe)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._requests = Counter(
            "loyalpump_http_requests",
            "HTTP requests answered, by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "loyalpump_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )

    def count(self, method: str, route: str, status: int) -> None:
        self._requests.labels(method=method_label(method), route=route, status=str(status)).inc()

    def observe(self, route: str, method: str, seconds: float) -> None:
        self._latency.labels(route=route, method=method_label(method)).observe(seconds)

    def render(
        self,
        status: Mapping[str, Any],
        *,
        sessions: int,
        listeners: int,
        runtime: RuntimeHealth | None = None,
    ) -> str:
        """The exposition text; `status` is `station_status`'s answer, `runtime` the probe's."""
        read = CollectorRegistry()
        read.register(_ReadAtScrape(status, sessions, listeners, runtime))
        return (generate_latest(read) + generate_latest(self.registry)).decode("utf-8")


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

    def __init__(self, app: ASGIApp, metrics: StationMetrics) -> None:
        self.app = app
        self.metrics = metrics

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
                self.metrics.observe(route_label(scope), str(scope["method"]), elapsed)

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                record()
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            record()  # no answer was started (the app raised): still one observation


def _timestamp(iso: object) -> int:
    """Unix seconds of an aware ISO timestamp; 0 when absent or unreadable."""
    if not isinstance(iso, str) or not iso:
        return 0
    try:
        at = datetime.fromisoformat(iso)
    except ValueError:
        return 0
    return 0 if at.tzinfo is None else int(at.timestamp())


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value)


class _ReadAtScrape(Collector):
    """What the store and the daemon's probe say at this scrape (not kept between scrapes)."""

    def __init__(
        self,
        status: Mapping[str, Any],
        sessions: int,
        listeners: int,
        runtime: RuntimeHealth | None,
    ) -> None:
        self._status = status
        self._sessions = sessions
        self._listeners = listeners
        self._runtime = runtime

    def collect(self) -> Iterator[Metric]:
        store, sync = self._status["store"], self._status["sync"]
        yield CounterMetricFamily(
            "loyalpump_sales", "Fuel sales recorded by this station.", value=int(store["sales"])
        )
        yield _gauge("loyalpump_members", "Members known to this station.", int(store["members"]))
        backlog = int(sync["backlog"])
        yield _gauge(
            "loyalpump_outbox_backlog", "Events waiting to be pushed to the cloud.", backlog
        )
        yield _gauge("loyalpump_sync_backlog", "Events waiting to be pushed to the cloud.", backlog)
        yield _gauge(
            "loyalpump_sync_oldest_pending_age_seconds",
            "Age of the oldest event not yet accepted by the cloud (0 when none waits).",
            int(sync["oldest_pending_age_s"] or 0),
        )
        yield _gauge(
            "loyalpump_sync_last_success_timestamp_seconds",
            "Unix time of the cloud's last answer (0 when it never answered).",
            _timestamp(sync.get("last_contact")),
        )
        yield _gauge("loyalpump_web_sessions", "Open cashier sessions.", self._sessions)
        yield _gauge(
            "loyalpump_web_event_listeners", "Open pump-board event streams.", self._listeners
        )
        if self._runtime is not None:
            yield from _runtime_families(self._runtime)


def _runtime_families(runtime: RuntimeHealth) -> Iterator[Metric]:
    drivers = runtime.drivers
    connected = GaugeMetricFamily(
        "loyalpump_driver_connected", "1 when the link to the forecourt is up.", labels=["driver"]
    )
    ingested = CounterMetricFamily(
        "loyalpump_sales_ingested", "Sales a link handed to the station.", labels=["driver"]
    )
    frames = CounterMetricFamily(
        "loyalpump_link_frames", "Frames or messages a link read.", labels=["driver"]
    )
    errors = CounterMetricFamily(
        "loyalpump_link_errors",
        "Link trouble by kind (CRC, framing, malformed, timeouts, resyncs, reconnects).",
        labels=["driver", "kind"],
    )
    for d in drivers:
        connected.add_metric([d.name], int(d.connected))
        ingested.add_metric([d.name], d.sales)
        frames.add_metric([d.name], d.counters.get("frames", 0))
        for kind, count in sorted(d.counters.items()):
            if kind not in _NOT_ERRORS:
                errors.add_metric([d.name, kind], count)
    yield from (connected, ingested, frames, errors)
    yield _gauge(
        "loyalpump_sync_thread_alive",
        "1 while the sync engine's thread runs.",
        int(runtime.sync_thread_alive),
    )
