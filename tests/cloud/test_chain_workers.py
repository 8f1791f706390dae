"""`cloud run --workers 2` on PostgreSQL: many stations at once, a worker killed mid-batch,
rolling restarts (SIGHUP) and a graceful stop (SIGTERM) that finishes the push in flight.

Every test ends on the cloud's own word: each station event applied once, each member's
points as the reference model says, `ledger_problems` empty.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from cloud_sync.core.wire import PushRequest, PushResponse
from cloud_sync.station.client import CloudClient, SyncGap
from cloud_sync.station.engine import SyncEngine
from edge_agent.services.station import Station
from edge_agent.services.sync import StationSyncPort
from tests.cloud.chain import (
    LOYALPUMP,
    CloudProcess,
    assert_cloud_matches,
    fill_station,
    open_chain_station,
    outbox_events,
)
from tests.cloud.conftest import fresh_pg_schema, sqlalchemy_url
from tests.cloud.faults import FaultKind, FaultyTransport, random_plan
from tests.support import RULESETS

pytestmark = pytest.mark.slow

PUSH = "/api/v1/sync/events"


@pytest.fixture
def cloud(tmp_path: Path, pg_database: str) -> Iterator[CloudProcess]:
    """A two-worker cloud on PostgreSQL (not started), the field-examples rules published."""
    fresh_pg_schema(pg_database)
    process = CloudProcess(tmp_path / "cloud", sqlalchemy_url(pg_database), args=("--workers", "2"))
    process.write_config()
    process.publish(RULESETS / "field-examples.json")
    try:
        yield process
    finally:
        process.stop()


def _until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _busy_backends(libpq_url: str) -> int:
    """Transactions the cloud has open now (pushes in flight), not counting this query."""
    with psycopg.connect(libpq_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')"
        ).fetchone()
    return int(row[0]) if row else 0


def _engine(station: Station, url: str, transport: httpx.BaseTransport) -> SyncEngine:
    def client(base: str, token: Callable[[], str]) -> CloudClient:
        return CloudClient(url, token, transport=transport, timeout=10.0)

    return SyncEngine(StationSyncPort(station), client, batch_size=2, clock=station.now)


def _drain(engine: SyncEngine, cycles: int = 400) -> None:
    for _ in range(cycles):
        result = engine.run_cycle()
        if result.ok and result.backlog_after.pending == 0:
            return
        if not result.ok:
            time.sleep(0.05)
    raise AssertionError(f"backlog not drained: {result}")


def _push_out_of_order(station: Station, url: str) -> None:
    """A later batch first (a gap: refused), then the first, the later one, a stale copy."""
    port = StationSyncPort(station)
    request = port.enrolment_request()
    assert request is not None
    with CloudClient(url, port.cloud_token, timeout=10.0) as client:
        port.complete_enrolment(client.enrol(request))
        batch = port.pending_batch(50)
        assert batch is not None and len(batch.events) >= 4
        events, sid = batch.events, station.settings.station.id
        first = PushRequest(station_id=sid, epoch=1, epoch_first_seq=1, events=events[:2])
        later = PushRequest(station_id=sid, epoch=1, epoch_first_seq=1, events=events[2:4])
        with pytest.raises(SyncGap):
            client.push(later)
        client.push(first)
        client.push(later)
        client.push(first)


def _agent_sync(config: Path) -> None:
    """`loyalpump edge sync`, a real station process, until its backlog is empty."""
    for _ in range(30):
        done = subprocess.run(
            [LOYALPUMP, "edge", "sync", "--config", str(config)],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if done.returncode == 0:
            return
        time.sleep(0.2)
    raise AssertionError(done.stderr.decode())


def test_two_workers_apply_200_stations_once_through_duplicates_reorders_and_a_worker_kill(
    tmp_path: Path, cloud: CloudProcess
) -> None:
    """200 stations push at once into two workers; one worker is killed (-9) mid-batch.

    200 station agents (a daemon each) would not fit a test on two cores, so 196 stations
    are real station stores synced by the station's own sync engine and HTTP client from 16
    threads (batches of 2 events, through a transport that duplicates pushes, loses their
    answers and drops connections); every tenth also sends its first batches out of order.
    Four more are synced by `loyalpump edge sync` processes. The soak (tests/soak) runs full
    station agents against the same two-worker cloud.
    """
    now = datetime.now(UTC)
    ids = [f"S{n:03d}" for n in range(200)]
    ledger = cloud.open_ledger()
    try:  # HQ's enrolment, in process: 200 `cloud station add` processes take minutes
        tokens = {sid: ledger.add_station(sid, sid, now) for sid in ids}
    finally:
        ledger.close()
    starting = threading.Thread(target=cloud.start)  # its workers start while stores fill
    starting.start()
    stations = []
    for n, sid in enumerate(ids):
        station = open_chain_station(tmp_path / sid, sid, cloud.url, tokens[sid])
        fill_station(station, members=1, sales=3, phone_base=100 * n)
        stations.append(station)
    agents = []
    for station in stations[-4:]:
        config = tmp_path / f"{station.settings.station.id}.toml"
        config.write_text(
            f'[station]\nid = "{station.settings.station.id}"\n'
            f'data_dir = "{station.settings.station.data_dir}"\n'
            f'[cloud]\nurl = "{cloud.url}"\ntoken = "{station.settings.cloud.token}"\n',
            encoding="utf-8",
        )
        station.close()
        agents.append(config)
    total = sum(len(outbox_events(station)) for station in stations)
    starting.join(60)
    assert cloud.process is not None
    workers = cloud.worker_pids()
    assert len(workers) == 2

    def sync(n: int) -> None:
        if n >= len(stations) - 4:
            _agent_sync(agents[n - (len(stations) - 4)])
            return
        station = stations[n]
        if n % 10 == 3:
            _push_out_of_order(station, cloud.url)
        plan = random_plan(n, drop=0.05, lose_response=0.1, duplicate=0.2, only_paths=[PUSH])
        with FaultyTransport(httpx.HTTPTransport(), plan) as transport:
            _drain(_engine(station, cloud.url, transport))
        with faults_lock:
            faults.update(transport.counts)

    faults: Counter[FaultKind] = Counter()
    faults_lock = threading.Lock()
    with ThreadPoolExecutor(16) as pool:
        running = [pool.submit(sync, n) for n in random.Random(18).sample(range(200), 200)]
        libpq = cloud.database_url.replace("+psycopg", "")
        _until(lambda: _applied(libpq) >= total // 3, 300, "a third of the events")
        _until(lambda: _busy_backends(libpq) >= 2, 10, "pushes in flight")
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        for future in running:
            future.result(timeout=600)
    assert _applied(libpq) == total
    replaced = cloud.worker_pids()
    assert victim not in replaced and len(replaced) == 2  # the supervisor replaced it
    check = cloud.open_ledger()
    try:
        totals = assert_cloud_matches(check, stations, datetime.now(UTC))
    finally:
        check.close()
    assert faults[FaultKind.DUPLICATE] > 0 and faults[FaultKind.LOSE_RESPONSE] > 0
    assert totals["events_duplicate"] > 0  # copies reached the workers and were told apart
    for station in stations[:-4]:
        station.close()


def _applied(libpq_url: str) -> int:
    with psycopg.connect(libpq_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
    return int(row[0]) if row else 0


def test_sighup_restarts_workers_while_serving_and_sigterm_finishes_the_push_in_flight(
    tmp_path: Path, cloud: CloudProcess
) -> None:
    token = cloud.add_station("S001")
    station = open_chain_station(tmp_path / "S001", "S001", cloud.url, token)
    fill_station(station, members=3, sales=40, phone_base=7000)
    cloud.start()
    assert cloud.process is not None
    old = cloud.worker_pids()
    assert len(old) == 2

    # SIGHUP: new workers replace the old ones one by one; every request meanwhile answered.
    cloud.process.send_signal(signal.SIGHUP)
    answered = 0
    with httpx.Client(base_url=cloud.url, timeout=10) as http:

        def replaced() -> bool:
            nonlocal answered
            assert http.get("/healthz").status_code == 200
            answered += 1
            now = cloud.worker_pids()
            return len(now) == 2 and not now & old

        _until(replaced, 90, "the restart")
    assert answered > 1 and cloud.process.poll() is None

    # SIGTERM while a push waits inside its transaction (HQ holds the station's row): the
    # service waits for it, answers it, and only then exits 0.
    port = StationSyncPort(station)
    request = port.enrolment_request()
    assert request is not None
    libpq = cloud.database_url.replace("+psycopg", "")
    with CloudClient(cloud.url, port.cloud_token, timeout=30.0) as client:
        port.complete_enrolment(client.enrol(request))
        batch = port.pending_batch(500)
        assert batch is not None
        answer: list[tuple[PushResponse, float]] = []
        with psycopg.connect(libpq) as hq:
            hq.execute("UPDATE stations SET name = name WHERE station_id = 'S001'")
            pusher = threading.Thread(
                target=lambda: answer.append((client.push(batch), time.monotonic()))
            )
            pusher.start()
            _until(lambda: _waiting_on_lock(libpq), 20, "the push to wait for the row")
            signalled = time.monotonic()
            cloud.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert cloud.process.poll() is None  # still serving the push in flight
            hq.rollback()
        pusher.join(30)
    assert answer, "the push in flight was not answered"
    response, answered_at = answer[0]
    assert answered_at > signalled
    assert {result.status for result in response.results} == {"applied"}
    assert len(response.results) == len(batch.events)
    assert cloud.process.wait(30) == 0
    cloud.process = None
    ledger = cloud.open_ledger()
    try:
        assert ledger.totals()["events_applied"] == len(batch.events) == len(outbox_events(station))
        assert ledger.ledger_problems() == []
    finally:
        ledger.close()
    station.close()


def _waiting_on_lock(libpq_url: str) -> bool:
    with psycopg.connect(libpq_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        ).fetchone()
    return bool(row and row[0])


def test_a_sqlite_ledger_refuses_more_than_one_worker(tmp_path: Path) -> None:
    sqlite = CloudProcess(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    sqlite.write_config()
    done = subprocess.run(
        [LOYALPUMP, "cloud", "run", "--config", str(sqlite.config), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "--workers" in done.stderr and "SQLite" in done.stderr
