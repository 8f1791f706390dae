"""The chaos: faults on every station's link, power cuts at stations and in the cloud.

One thread, seeded, so a failing run can be replayed with `--seed`. Every few seconds it
picks a fault: a station's link resets, drops, loses answers, slows down or black-holes
(for up to minutes), a station agent is killed with SIGKILL and restarted a moment later,
or the cloud is. Each fault is lifted when its time is up; `lift_all` ends them all at once
and brings every process back, so the chain can drain.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from tests.cloud.chain import CloudProcess
from tests.cloud.faults import ProxyMode

from .nodes import StationNode

__all__ = ["Chaos", "ChaosStats"]

# Relative weights of each kind of fault.
_WEIGHTS = {
    "link reset": 3.0,
    "link drop": 2.0,
    "lost answers": 2.0,
    "slow link": 2.0,
    "black hole": 1.5,
    "station kill -9": 2.5,
    "cloud kill -9": 0.6,
}
_WORKER_KILL = 0.6  # a cloud with worker processes: one of them killed with SIGKILL
_LINK_MODES = {
    "link reset": ProxyMode.RESET,
    "link drop": ProxyMode.DROP,
    "lost answers": ProxyMode.LOSE_RESPONSE,
    "slow link": ProxyMode.DELAY,
    "black hole": ProxyMode.BLACKHOLE,
}


@dataclass
class ChaosStats:
    faults: Counter[str] = field(default_factory=Counter)
    black_hole_s: float = 0.0  # total time links spent black-holed
    longest_black_hole_s: float = 0.0
    station_restarts: int = 0
    cloud_restarts: int = 0


@dataclass
class _LinkFault:
    kind: str
    started: float
    until: float


class Chaos:
    """Run `run(stop)` in a thread; `offline(station_id)` may be asked from any thread."""

    def __init__(
        self,
        nodes: list[StationNode],
        cloud: CloudProcess,
        rng: random.Random,
        *,
        mean_gap_s: float = 3.0,
        longest_black_hole_s: float = 120.0,
    ) -> None:
        self.stats = ChaosStats()
        self.error: str | None = None
        self._nodes = {node.station_id: node for node in nodes}
        self._cloud = cloud
        self._rng = rng
        self._mean_gap_s = mean_gap_s
        self._longest_black_hole_s = longest_black_hole_s
        self._links: dict[str, _LinkFault] = {}
        self._agents_down: dict[str, float] = {}  # station id -> when it comes back
        self._cloud_back_at: float | None = None
        self._lock = threading.Lock()
        self._weights = dict(_WEIGHTS)
        if "--workers" in cloud.args:
            self._weights["cloud worker kill -9"] = _WORKER_KILL

    def offline(self, station_id: str) -> bool:
        """Can this station not reach the cloud right now (its link, or the cloud, down)?"""
        with self._lock:
            fault = self._links.get(station_id)
            link_down = fault is not None and fault.kind != "slow link"
            return link_down or self._cloud_back_at is not None

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.wait(self._rng.expovariate(1.0 / self._mean_gap_s)):
                self._lift_due(time.monotonic())
                self._inject(time.monotonic())
        except Exception as exc:  # e.g. the cloud did not come back: the verdict reports it
            self.error = f"chaos: {exc!r}"

    def lift_all(self) -> None:
        """End every fault now: links pass, the cloud and every agent run again."""
        self._lift_due(float("inf"))

    # ------------------------------------------------------------------ internals

    def _inject(self, now: float) -> None:
        kinds = list(self._weights)
        kind = self._rng.choices(kinds, weights=[self._weights[k] for k in kinds])[0]
        if kind == "cloud worker kill -9":
            workers = sorted(self._cloud.worker_pids()) if self._cloud_back_at is None else []
            if workers:  # the supervisor replaces it; its unanswered push is sent again
                os.kill(self._rng.choice(workers), signal.SIGKILL)
                self.stats.faults[kind] += 1
            return
        if kind == "cloud kill -9":
            if self._cloud_back_at is None:
                self._cloud.kill()
                with self._lock:
                    self._cloud_back_at = now + self._rng.uniform(1.0, 6.0)
                self.stats.faults[kind] += 1
            return
        station_id = self._rng.choice(sorted(self._nodes))
        node = self._nodes[station_id]
        if kind == "station kill -9":
            if station_id not in self._agents_down:
                node.kill_agent()
                self._agents_down[station_id] = now + self._rng.uniform(0.5, 5.0)
                self.stats.faults[kind] += 1
            return
        if station_id in self._links:
            return  # one link fault at a time per station
        assert node.proxy is not None
        if kind == "black hole":
            seconds = self._rng.uniform(self._longest_black_hole_s / 4, self._longest_black_hole_s)
        elif kind == "slow link":
            seconds = self._rng.uniform(10.0, 30.0)
            node.proxy.delay_s = self._rng.uniform(0.05, 0.5)  # per chunk: slow, not cut
        else:
            seconds = self._rng.uniform(2.0, 10.0)
        node.proxy.mode = _LINK_MODES[kind]
        with self._lock:
            self._links[station_id] = _LinkFault(kind, now, now + seconds)
        self.stats.faults[kind] += 1

    def _lift_due(self, now: float) -> None:
        for station_id, fault in list(self._links.items()):
            if fault.until <= now:
                proxy = self._nodes[station_id].proxy
                assert proxy is not None
                proxy.mode = ProxyMode.PASS
                if fault.kind == "black hole":
                    lasted = time.monotonic() - fault.started
                    self.stats.black_hole_s += lasted
                    self.stats.longest_black_hole_s = max(self.stats.longest_black_hole_s, lasted)
                with self._lock:
                    del self._links[station_id]
        for station_id, back_at in list(self._agents_down.items()):
            if back_at <= now:
                self._nodes[station_id].start_agent()
                self.stats.station_restarts += 1
                del self._agents_down[station_id]
        if self._cloud_back_at is not None and self._cloud_back_at <= now:
            self._cloud.start()
            self.stats.cloud_restarts += 1
            with self._lock:
                self._cloud_back_at = None
