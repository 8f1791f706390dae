"""What /healthz answers: one verdict an operator (or systemd, or a monitor) can act on.

The web layer cannot see the drivers or the sync thread; the daemon hands `build_app` a
`HealthProbe` that reports them. Without a probe (tests, `edge web` alone) only the store
and the sync state recorded in it are judged.

Verdicts: "failing" (HTTP 503) when the store cannot take a write, since no sale can be
acknowledged; "degraded" (HTTP 200) when a link is down, the sync thread stopped, the sync
engine raised an alert, or the cloud has not answered for a while; else "ok".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..settings import StationSettings

__all__ = [
    "DriverHealth",
    "HealthProbe",
    "RuntimeHealth",
    "assess_health",
    "contact_age_s",
    "stale_after_s",
]


@dataclass(frozen=True)
class DriverHealth:
    """One link as the daemon sees it; `counters` is the link's `LinkCounters.snapshot()`."""

    name: str
    kind: str
    connected: bool
    sales: int
    counters: dict[str, int]


@dataclass(frozen=True)
class RuntimeHealth:
    drivers: tuple[DriverHealth, ...]
    sync_thread_alive: bool


HealthProbe = Callable[[], RuntimeHealth]
"""Called on the event loop for every /healthz and /metrics: it must be quick and not block."""


def stale_after_s(settings: StationSettings) -> int:
    """How long without a cloud answer before the station counts as out of touch.

    Three sync intervals, but never under a minute (as the cashier page's online badge), so
    a short interval and one slow round trip do not make the verdict flap.
    """
    return max(60, 3 * settings.cloud.sync_interval_s)


def contact_age_s(last_contact: object, now: datetime) -> int | None:
    """Seconds since the last cloud answer; None when there was none (or it is unreadable)."""
    if not isinstance(last_contact, str) or not last_contact:
        return None
    try:
        at = datetime.fromisoformat(last_contact)
    except ValueError:
        return None
    if at.tzinfo is None:
        return None
    return max(0, int((now - at).total_seconds()))


def assess_health(
    settings: StationSettings,
    now: datetime,
    *,
    store_error: str | None,
    status: Mapping[str, Any] | None,
    runtime: RuntimeHealth | None,
    probe_error: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) for /healthz from the facts gathered by the route.

    `status` is `station_status`'s answer (None when the store could not be read);
    `runtime` the probe's answer (None without a probe, or when it raised `probe_error`).
    """
    reasons: list[str] = []
    if store_error is not None:
        reasons.append(f"store not usable ({store_error})")
    if probe_error is not None:  # links and sync unknown: never report that as "ok"
        reasons.append(f"runtime probe failed ({probe_error})")
    drivers = None
    if runtime is not None:
        drivers = [
            {"name": d.name, "kind": d.kind, "connected": d.connected} for d in runtime.drivers
        ]
        reasons += [f"link {d.name} not connected" for d in runtime.drivers if not d.connected]
    cloud = bool(settings.cloud.url)
    sync: dict[str, Any] | None = None
    if status is not None:
        recorded = status["sync"]
        age = contact_age_s(recorded.get("last_contact"), now)
        sync = {
            "cloud_configured": cloud,
            "backlog": recorded["backlog"],
            "oldest_pending_age_s": recorded["oldest_pending_age_s"],
            "last_contact": recorded.get("last_contact"),
            "last_contact_age_s": age,
            "alert": recorded.get("alert"),
            "thread_alive": None if runtime is None else runtime.sync_thread_alive,
        }
        if cloud:
            if age is None:
                reasons.append("no answer from the cloud yet")
            elif age > stale_after_s(settings):
                reasons.append(f"last answer from the cloud {age} s ago")
            if runtime is not None and not runtime.sync_thread_alive:
                reasons.append("sync thread not running")
        alert = recorded.get("alert")
        if alert:
            reasons.append(f"sync alert {alert.get('code')}")
    if store_error is not None:
        verdict, code = "failing", 503
    elif reasons:
        verdict, code = "degraded", 200
    else:
        verdict, code = "ok", 200
    body = {
        "status": verdict,
        "reasons": reasons,
        "store": {"writable": store_error is None, "error": store_error},
        "drivers": drivers,
        "sync": sync,
    }
    return code, body
