"""cloud_ingest's load: station stores built once into a cache, and load-generator processes
running many stations each, every station its own sync engine pushing through the real
HTTP client.

A load generator is one process with one thread per station (200 processes would not fit
two cores). Each station is enrolled before the start (the engine enrols on its first
cycle; a cycle whose stop event is already set enrols and ends before pushing), then every
thread waits for one start signal, so the cloud sees all stations push at once. A station
runs the daemon's own loop (`SyncEngine.run_forever`: back-off, Retry-After) until the cloud
has acknowledged its whole backlog; its stop event is then set, which ends the loop before
the pull of the changes feed (each station pulling the chain's new members is a read load
of its own, not part of the applied-events figure).

Each push is timed around the client's `push` call (a `CloudClient` subclass; the engine is
unchanged), on the system-wide monotonic clock, so the parent can take the first start and
the last answer across processes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

from benchmarks.sync_catchup import build_backlog, station_settings
from cloud_sync.core.wire import PushRequest, PushResponse
from cloud_sync.station.client import CloudClient, SyncError
from cloud_sync.station.engine import SyncEngine
from edge_agent.services.station import Station, open_station
from edge_agent.services.sync import StationSyncPort

__all__ = [
    "CACHE_FORMAT",
    "GeneratorReport",
    "Push",
    "StationJob",
    "build_cache",
    "generate",
    "generator_process",
    "station_id",
]

CACHE_FORMAT = 1  # bump when the way stores are built changes
_DONE = "built.json"
CLIENT_TIMEOUT_S = 600.0  # a push queued behind 199 others is slow, not lost (a station: 10 s)
RUN_INTERVAL_S = 1.0


def station_id(index: int) -> str:
    return f"LG{index:04d}"


def _build_one(args: tuple[Path, int, int, int]) -> int:
    directory, index, events, members = args
    return build_backlog(
        directory,
        events,
        members,
        station_id=station_id(index),
        first_phone=index * members,
    )


def build_cache(
    root: Path, stations: int, events: int, members: int, processes: int
) -> tuple[Path, float]:
    """The stores of `stations` stations with `events` queued events each, built once by the
    station's own services into `root` (keyed by the sizes) and reused while it is whole;
    (the directory, seconds spent building now)."""
    key = f"v{CACHE_FORMAT}-s{stations}-e{events}-m{members}"
    cache = root / key
    done = cache / _DONE
    if done.is_file():
        return cache, 0.0
    shutil.rmtree(cache, ignore_errors=True)
    building = root / f"{key}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    started = time.perf_counter()
    jobs = [(building / station_id(i), i, events, members) for i in range(1, stations + 1)]
    with ProcessPoolExecutor(max_workers=max(1, processes)) as pool:
        queued = list(pool.map(_build_one, jobs))
    if any(q != events for q in queued):
        raise RuntimeError(f"stores built with {set(queued)} queued events, wanted {events}")
    (building / _DONE).write_text(
        json.dumps({"stations": stations, "events": events, "members": members}), "utf-8"
    )
    building.rename(cache)
    return cache, time.perf_counter() - started


@dataclass(frozen=True)
class StationJob:
    """One simulated station: its store, its token, how many events it must deliver."""

    station_id: str
    directory: Path
    token: str
    events: int


@dataclass(frozen=True)
class Push:
    """One push call: monotonic start and end, events sent, and the failure if it failed."""

    started: float
    ended: float
    events: int
    error: str = ""


@dataclass
class GeneratorReport:
    """What one load-generator process saw; plain data, sent back to the parent."""

    pid: int
    pushes: list[Push] = field(default_factory=list)
    acknowledged: int = 0
    pending: dict[str, int] = field(default_factory=dict)  # stations left with a backlog
    errors: list[str] = field(default_factory=list)
    cpu_s: float = 0.0  # user + system of this process between the start and the end

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Delivery:
    """A station's count of acknowledged events; sets its stop event once all are in."""

    def __init__(self, expected: int, stop: threading.Event) -> None:
        self.expected = expected
        self.stop = stop
        self.acknowledged = 0


class _TimedClient(CloudClient):
    """The station's client, timing each push (the engine makes one client per cycle)."""

    def __init__(
        self,
        base_url: str,
        token: Callable[[], str],
        delivery: _Delivery,
        record: Callable[[Push], None],
    ) -> None:
        super().__init__(base_url, token, timeout=CLIENT_TIMEOUT_S)
        self._delivery = delivery
        self._record = record

    def push(self, request: PushRequest) -> PushResponse:
        started = time.monotonic()
        try:
            response = super().push(request)
        except SyncError as exc:
            self._record(Push(started, time.monotonic(), len(request.events), str(exc)[:200]))
            raise
        self._record(Push(started, time.monotonic(), len(request.events)))
        self._delivery.acknowledged += len(response.results)
        if self._delivery.acknowledged >= self._delivery.expected:
            self._delivery.stop.set()  # the whole backlog is in: end before the pull
        return response


def _engine(station: Station, delivery: _Delivery, batch: int, report: GeneratorReport,
            lock: threading.Lock) -> SyncEngine:  # fmt: skip
    def record(push: Push) -> None:
        with lock:
            report.pushes.append(push)

    def client(url: str, token: Callable[[], str]) -> CloudClient:
        return _TimedClient(url, token, delivery, record)

    return SyncEngine(StationSyncPort(station), client, batch_size=batch, clock=station.now)


def _cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def generate(
    jobs: Sequence[StationJob],
    cloud_url: str,
    batch: int,
    ready: Barrier,
    abort: Event,
) -> dict[str, Any]:
    """Run one load generator to its end (a process's entry point); its report as a dict."""
    logging.basicConfig(level=logging.ERROR)  # a retry is in the report, not on stderr
    report = GeneratorReport(pid=os.getpid())
    lock = threading.Lock()
    stations = [
        open_station(station_settings(j.directory, cloud_url, j.token, j.station_id)) for j in jobs
    ]
    try:
        stops = [threading.Event() for _ in jobs]
        deliveries = [_Delivery(j.events, stop) for j, stop in zip(jobs, stops, strict=True)]
        engines = [
            _engine(s, d, batch, report, lock) for s, d in zip(stations, deliveries, strict=True)
        ]
        already = threading.Event()
        already.set()
        for job, engine in zip(jobs, engines, strict=True):
            enrolled = engine.run_cycle(stop=already)  # enrols, then stops before the push
            if enrolled.alert is not None or enrolled.error not in (None, "stopped"):
                raise RuntimeError(f"{job.station_id} did not enrol: {enrolled.error}")
        go = threading.Event()

        def station_loop(engine: SyncEngine, stop: threading.Event) -> None:
            go.wait()
            engine.run_forever(stop, RUN_INTERVAL_S)

        threads = [
            threading.Thread(target=station_loop, args=(e, s), name=j.station_id, daemon=True)
            for j, e, s in zip(jobs, engines, stops, strict=True)
        ]
        for thread in threads:
            thread.start()
        ready.wait()
        cpu_at_start = _cpu_s()
        go.set()
        while any(thread.is_alive() for thread in threads):
            if abort.wait(0.2):
                for stop in stops:
                    stop.set()
                report.errors.append("aborted by the parent")
                break
        for thread in threads:
            thread.join(60)
        report.cpu_s = _cpu_s() - cpu_at_start
        report.acknowledged = sum(d.acknowledged for d in deliveries)
        for job, station in zip(jobs, stations, strict=True):
            pending = StationSyncPort(station).backlog().pending
            if pending:
                report.pending[job.station_id] = pending
    except Exception as exc:  # the parent reports it; never leave it waiting at the barrier
        report.errors.append(f"{type(exc).__name__}: {exc}")
        ready.abort()
    finally:
        for station in stations:
            station.close()
    return report.as_dict()


def generator_process(
    jobs: Sequence[StationJob],
    cloud_url: str,
    batch: int,
    ready: Barrier,
    abort: Event,
    results: Queue[dict[str, Any]],
) -> None:
    """A load-generator process's entry point: run, then hand the report to the parent."""
    results.put(generate(jobs, cloud_url, batch, ready, abort))
