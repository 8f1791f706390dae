"""Exactly once through real faults: a real cloud process, real station stores, real HTTP.

Each test ends the same way: the cloud ledger equals the reference model computed from the
stations' own outboxes (every event once, every member's points), and its invariants hold.
"""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from cloud_sync.core.wire import PushRequest
from cloud_sync.station.client import CloudClient, SyncGap
from cloud_sync.station.engine import SyncEngine
from edge_agent.services.points import redeem_points
from edge_agent.services.station import Station
from edge_agent.services.sync import StationSyncPort, build_engine
from tests.cloud.chain import (
    LOYALPUMP,
    CloudProcess,
    assert_cloud_matches,
    fill_station,
    kill_tree,
    open_chain_station,
    outbox_events,
)
from tests.cloud.faults import FaultKind, FaultProxy, FaultyTransport, ProxyMode, random_plan

pytestmark = pytest.mark.slow


def _station(tmp_path: Path, cloud: CloudProcess, station_id: str, url: str = "") -> Station:
    token = cloud.add_station(station_id)
    return open_chain_station(tmp_path / station_id, station_id, url or cloud.url, token)


def _started_with_sales(
    tmp_path: Path,
    cloud: CloudProcess,
    station_id: str,
    *,
    members: int,
    sales: int,
    phone_base: int,
) -> Station:
    """The cloud started, and a station of its chain holding these members' sales to push."""
    cloud.start()
    station = _station(tmp_path, cloud, station_id)
    fill_station(station, members=members, sales=sales, phone_base=phone_base)
    return station


def _engine(
    station: Station, transport: httpx.BaseTransport | None = None, batch_size: int = 40
) -> SyncEngine:
    """The station's engine with small batches, so a few hundred events make many pushes."""

    def client(url: str, token: Callable[[], str]) -> CloudClient:
        return CloudClient(url, token, transport=transport, timeout=3.0)

    return SyncEngine(StationSyncPort(station), client, batch_size=batch_size, clock=station.now)


def _drain(
    station: Station, transport: httpx.BaseTransport | None = None, cycles: int = 300
) -> Counter[str]:
    """Run sync cycles until the backlog is empty; returns what the cycles did, summed."""
    engine = _engine(station, transport)
    done: Counter[str] = Counter()
    for _ in range(cycles):
        result = engine.run_cycle()
        done.update(
            cycles=1, pushed=result.pushed, duplicates=result.duplicates, rewound=result.rewound
        )
        if result.ok and result.backlog_after.pending == 0:
            return done
    raise AssertionError(f"backlog not drained after {cycles} cycles: {result}")


def _check(cloud: CloudProcess, *stations: Station) -> dict[str, int]:
    ledger = cloud.open_ledger()
    try:
        return assert_cloud_matches(ledger, stations, datetime.now(UTC))
    finally:
        ledger.close()


def test_duplicates_lost_answers_and_drops_still_give_exactly_once(
    tmp_path: Path, cloud: CloudProcess
) -> None:
    station = _started_with_sales(tmp_path, cloud, "S001", members=12, sales=400, phone_base=1000)
    transport = FaultyTransport(
        httpx.HTTPTransport(),
        random_plan(7, drop=0.15, lose_response=0.2, duplicate=0.25, unavailable=0.1),
        sleep=lambda _: None,
    )
    done = _drain(station, transport)
    totals = _check(cloud, station)
    assert done["duplicates"] > 0  # answers lost on the way came back as duplicates
    assert transport.counts[FaultKind.LOSE_RESPONSE] > 0
    assert transport.counts[FaultKind.DUPLICATE] > 0
    assert totals["events_duplicate"] > 0  # the cloud did see copies, and answered them as such
    station.close()


def test_batches_arriving_out_of_order_are_applied_once_in_order(
    tmp_path: Path, cloud: CloudProcess
) -> None:
    station = _started_with_sales(tmp_path, cloud, "S002", members=3, sales=30, phone_base=2000)
    port = StationSyncPort(station)
    engine = build_engine(station)
    # Enrol first (the engine's first step), without pushing anything.
    request = port.enrolment_request()
    assert request is not None
    with CloudClient(cloud.url, port.cloud_token) as client:
        port.complete_enrolment(client.enrol(request))
        batch = port.pending_batch(500)
        assert batch is not None
        events = batch.events
        later = PushRequest(station_id="S002", epoch=1, epoch_first_seq=1, events=events[10:20])
        with pytest.raises(SyncGap) as gap:
            client.push(later)
        assert gap.value.expected_seq == 1
        first = PushRequest(station_id="S002", epoch=1, epoch_first_seq=1, events=events[:10])
        client.push(first)
        client.push(later)
        client.push(first)  # a stale copy of the first batch, late
    assert engine.run_cycle().ok
    _check(cloud, station)
    station.close()


def test_a_station_killed_mid_push_resumes_and_nothing_doubles(
    tmp_path: Path, cloud: CloudProcess
) -> None:
    station = _started_with_sales(tmp_path, cloud, "S003", members=20, sales=1500, phone_base=3000)
    config = tmp_path / "S003.toml"
    settings = station.settings
    config.write_text(
        "[station]\n"
        f'id = "S003"\ndata_dir = "{settings.station.data_dir}"\n'
        f'[cloud]\nurl = "{cloud.url}"\ntoken = "{settings.cloud.token}"\n',
        encoding="utf-8",
    )
    station.close()
    rng = random.Random(3)
    kills = 0
    for _ in range(40):
        sync = subprocess.Popen(
            [LOYALPUMP, "edge", "sync", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.3, 1.5))
        if sync.poll() is None:
            kill_tree(sync)
            kills += 1
        elif sync.returncode == 0:
            break
    final = subprocess.run(
        [LOYALPUMP, "edge", "sync", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert final.returncode == 0, final.stderr
    assert kills >= 1
    reopened = open_chain_station(
        settings.station.data_dir, "S003", cloud.url, "unused", local_rules=False
    )
    _check(cloud, reopened)
    reopened.close()


def test_the_cloud_killed_mid_batch_loses_nothing(tmp_path: Path, cloud: CloudProcess) -> None:
    station = _started_with_sales(tmp_path, cloud, "S004", members=10, sales=2400, phone_base=4000)
    engine = _engine(station, batch_size=100)
    failed_cycles = 0
    done = threading.Event()

    def pump() -> None:
        nonlocal failed_cycles
        while not done.is_set():
            result = engine.run_cycle()
            failed_cycles += not result.ok
            if result.ok and result.backlog_after.pending == 0:
                done.set()
            elif not result.ok:
                time.sleep(0.1)

    port = StationSyncPort(station)
    total = port.backlog().pending
    worker = threading.Thread(target=pump)
    worker.start()
    while port.backlog().pending > total * 0.7:  # kill once about a third has gone up
        time.sleep(0.005)
    assert cloud.kill(signal.SIGKILL) == -signal.SIGKILL  # mid-batch: pushes are in flight
    assert port.backlog().pending > 0
    time.sleep(0.5)
    cloud.start()
    worker.join(120)
    assert done.is_set()
    assert failed_cycles >= 1
    _check(cloud, station)
    station.close()


def test_a_cloud_restored_from_an_older_backup_is_refilled_by_rewind(
    tmp_path: Path, cloud: CloudProcess
) -> None:
    station = _started_with_sales(tmp_path, cloud, "S005", members=6, sales=100, phone_base=5000)
    _drain(station)
    cloud.stop()
    cloud.backup("nightly")
    cloud.start()
    fill_station(station, members=4, sales=150, phone_base=5100)
    _drain(station)
    cloud.stop()
    cloud.restore("nightly")  # the cloud forgets the last 154 events
    cloud.start()
    fill_station(station, members=2, sales=20, phone_base=5200)
    assert _drain(station)["rewound"] == 154
    _check(cloud, station)
    assert len(outbox_events(station)) > 250
    station.close()


def test_a_black_holed_then_resetting_link_only_delays_sync(
    tmp_path: Path, cloud: CloudProcess
) -> None:
    cloud.start()
    proxy = FaultProxy(cloud.port)
    proxy.start()
    try:
        station = _station(tmp_path, cloud, "S006", url=proxy.url)
        fill_station(station, members=5, sales=200, phone_base=6000)
        engine = build_engine(station, timeout=0.5)
        proxy.mode = ProxyMode.BLACKHOLE
        assert engine.run_cycle().ok is False
        proxy.mode = ProxyMode.RESET
        assert engine.run_cycle().ok is False
        proxy.mode = ProxyMode.LOSE_RESPONSE
        assert engine.run_cycle().ok is False
        proxy.mode = ProxyMode.PASS
        proxy.reset_open_connections()
        _drain(station)
        redemption = redeem_points(station, fill_members_first(station), 100, actor="test")
        assert redemption.created
        _drain(station)
        _check(cloud, station)
        station.close()
    finally:
        proxy.stop()


def fill_members_first(station: Station) -> str:
    """The member with the most points at this station (to redeem from)."""
    events = outbox_events(station)
    points: dict[str, int] = {}
    for event in events:
        if event["kind"] == "sale.recorded" and event["payload"]["member_id"]:
            member = event["payload"]["member_id"]
            points[member] = points.get(member, 0) + event["payload"]["points"]
    return max(points, key=lambda member: points[member])
