"""The sync engine against an in-memory station and a fake cloud that follows docs/sync.md,
through a transport that drops, duplicates and loses requests: every event reaches the
cloud exactly once, gaps rewind, conflicts stop and alert, and retries back off."""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud_sync.core.wire import (
    ChangesResponse,
    DenyEntry,
    EnrolRequest,
    EnrolResponse,
    EventResult,
    MemberKeysWire,
    PushRequest,
    PushResponse,
)
from cloud_sync.station.client import CHANGES_PATH, ENROL_PATH, EVENTS_PATH, CloudClient
from cloud_sync.station.engine import BACKOFF_CAP_S, FAILURES_BEFORE_ALERT, CycleResult, SyncEngine
from cloud_sync.station.port import Backlog
from tests.cloud.faults import Fault, FaultKind, FaultyTransport, random_plan

TOKEN = "station-token"
CLOUD_URL = "http://cloud.test"
KNOWN_KINDS = {"sale.recorded", "member.registered"}


# --- the station ---------------------------------------------------------------------------


@dataclass
class FakeStationPort:
    """An outbox in memory, with the StationPort's contract: contiguous batches of one
    epoch, acknowledgement by id, rewinds, and a cursor stored with each page."""

    station_id: str = "S001"
    url: str = CLOUD_URL
    token: str = TOKEN
    events: list[dict[str, Any]] = field(default_factory=list)
    acked: set[str] = field(default_factory=set)
    cursor: int = 0
    applied_pages: list[ChangesResponse] = field(default_factory=list)
    alerts: list[tuple[str, str]] = field(default_factory=list)
    contacts: list[str] = field(default_factory=list)
    enrolment: EnrolRequest | None = None
    enrolled: list[EnrolResponse] = field(default_factory=list)
    epoch: int = 1

    def add_events(self, count: int, kind: str = "sale.recorded") -> None:
        for _ in range(count):
            seq = len(self.events) + 1
            self.events.append(
                {
                    "event_id": str(uuid.UUID(int=seq)),
                    "seq": seq,
                    "epoch": self.epoch,
                    "kind": kind,
                    "payload": {"n": seq},
                    "created_at": f"2026-01-01T08:00:{seq % 60:02d}+08:00",
                }
            )

    def cloud_url(self) -> str:
        return self.url

    def cloud_token(self) -> str:
        return self.token

    def enrolment_request(self) -> EnrolRequest | None:
        return self.enrolment

    def complete_enrolment(self, response: EnrolResponse) -> None:
        self.enrolled.append(response)
        self.enrolment = None

    def pending_batch(self, limit: int) -> PushRequest | None:
        pending = [e for e in self.events if e["event_id"] not in self.acked]
        if not pending:
            return None
        run = [pending[0]]
        for event in pending[1 : max(limit, 1)]:
            if event["seq"] != run[-1]["seq"] + 1 or event["epoch"] != run[0]["epoch"]:
                break
            run.append(event)
        return PushRequest(station_id=self.station_id, epoch=run[0]["epoch"], events=run)

    def next_batch(self, epoch: int, after_seq: int, limit: int) -> PushRequest | None:
        following = [
            e
            for e in self.events
            if e["event_id"] not in self.acked and e["epoch"] == epoch and e["seq"] > after_seq
        ]
        following.sort(key=lambda e: e["seq"])
        run: list[dict[str, Any]] = []
        for event in following[: max(limit, 1)]:
            if event["seq"] != (run[-1]["seq"] if run else after_seq) + 1:
                break
            run.append(event)
        return PushRequest(station_id=self.station_id, epoch=epoch, events=run) if run else None

    def acknowledge(self, response: PushResponse) -> None:
        known = {e["event_id"] for e in self.events}
        for result in response.results:
            assert result.event_id in known
            self.acked.add(result.event_id)

    def rewind(self, epoch: int, expected_seq: int) -> int:
        again = {
            e["event_id"]
            for e in self.events
            if e["epoch"] == epoch and e["seq"] >= expected_seq and e["event_id"] in self.acked
        }
        self.acked -= again
        return len(again)

    def changes_cursor(self) -> int:
        return self.cursor

    def apply_changes(self, page: ChangesResponse) -> None:
        self.applied_pages.append(page)
        self.cursor = page.next_cursor

    def backlog(self) -> Backlog:
        pending = [e for e in self.events if e["event_id"] not in self.acked]
        return Backlog(len(pending), pending[0]["created_at"] if pending else None)

    def record_contact(self, at: str) -> None:
        self.contacts.append(at)

    def record_alert(self, code: str, detail: str) -> None:
        self.alerts.append((code, detail))


# --- the cloud -----------------------------------------------------------------------------


def _problem(status: int, error: str, detail: str, **extra: Any) -> httpx.Response:
    return httpx.Response(status, json={"error": error, "detail": detail, **extra})


def _digest(event: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()


@dataclass
class FakeCloud:
    """docs/sync.md's push rules in a dict, plus a paged changes feed of deny entries."""

    token: str = TOKEN
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> stored row
    high_water: dict[int, int] = field(default_factory=dict)  # epoch -> seq
    applied_count: dict[str, int] = field(default_factory=dict)
    feed: list[DenyEntry] = field(default_factory=list)
    max_batch: int | None = None
    push_sizes: list[int] = field(default_factory=list)
    tokens_seen: list[str] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("Authorization", "")
        self.tokens_seen.append(auth)
        if auth != f"Bearer {self.token}":
            return _problem(401, "unauthorized", "unknown station token")
        if request.url.path == EVENTS_PATH:
            return self.push(PushRequest.model_validate_json(request.content))
        if request.url.path == CHANGES_PATH:
            return self.changes(int(request.url.params["since"]), int(request.url.params["limit"]))
        if request.url.path == ENROL_PATH:
            keys = MemberKeysWire(key_id="chain", encryption_key="ZQ==", index_key="aQ==")
            enrolled = EnrolResponse(
                station_id="S001", member_keys=keys, signing_key_id="k", signing_public_key="cA=="
            )
            return httpx.Response(200, content=enrolled.model_dump_json())
        return _problem(404, "not_found", request.url.path)

    def push(self, batch: PushRequest) -> httpx.Response:
        if self.max_batch is not None and len(batch.events) > self.max_batch:
            return httpx.Response(413, content=b"<html>413 Request Entity Too Large</html>")
        self.push_sizes.append(len(batch.events))
        hw = self.high_water.get(batch.epoch, batch.epoch_first_seq - 1)
        staged: dict[str, dict[str, Any]] = {}
        results: list[EventResult] = []
        for event in sorted(batch.events, key=lambda e: e["seq"]):
            event_id, seq, digest = event["event_id"], event["seq"], _digest(event)
            stored = self.events.get(event_id) or staged.get(event_id)
            if stored is not None:
                if stored["digest"] != digest:
                    return _problem(409, "event_conflict", "another payload", event_id=event_id)
                results.append(EventResult(event_id=event_id, seq=seq, status="duplicate"))
                continue
            if seq <= hw:
                return _problem(409, "event_conflict", "seq reused", event_id=event_id)
            if seq > hw + 1:
                return _problem(
                    409, "sequence_gap", "events missing", expected_seq=hw + 1, epoch=batch.epoch
                )
            staged[event_id] = {"digest": digest, "seq": seq, "epoch": batch.epoch}
            if event["kind"] in KNOWN_KINDS:
                results.append(EventResult(event_id=event_id, seq=seq, status="applied"))
            else:
                results.append(
                    EventResult(
                        event_id=event_id, seq=seq, status="rejected", reason="unknown kind"
                    )
                )
            hw = seq
        self.events.update(staged)
        for event_id in staged:
            self.applied_count[event_id] = self.applied_count.get(event_id, 0) + 1
        self.high_water[batch.epoch] = hw
        answer = PushResponse(
            station_id=batch.station_id, epoch=batch.epoch, high_water=hw, results=results
        )
        return httpx.Response(200, content=answer.model_dump_json())

    def changes(self, since: int, limit: int) -> httpx.Response:
        entries = self.feed[since : since + limit]
        page = ChangesResponse(
            cursor=since,
            next_cursor=since + len(entries),
            more=since + len(entries) < len(self.feed),
            deny=entries,
        )
        return httpx.Response(200, content=page.model_dump_json())

    def restore_backup(self, forget: int, epoch: int = 1) -> None:
        """The cloud comes back from a backup that lacks its last `forget` events."""
        newest = sorted(
            (row["seq"], event_id) for event_id, row in self.events.items() if row["epoch"] == epoch
        )[-forget:]
        for _, event_id in newest:
            del self.events[event_id]
            del self.applied_count[event_id]
        self.high_water[epoch] -= forget


# --- wiring --------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def make_engine(
    port: FakeStationPort,
    transport: httpx.BaseTransport,
    *,
    batch_size: int = 500,
    page_limit: int = 500,
    seed: int = 0,
) -> SyncEngine:
    def factory(url: str, token_source: Callable[[], str]) -> CloudClient:
        return CloudClient(url, token_source, transport=transport)

    return SyncEngine(
        port,
        factory,
        batch_size=batch_size,
        page_limit=page_limit,
        clock=FakeClock(),
        sleep=lambda _: None,
        rng=random.Random(seed),
    )


def sync_until_drained(engine: SyncEngine, port: FakeStationPort, limit: int = 400) -> int:
    for cycle in range(1, limit + 1):
        result = engine.run_cycle()
        if result.ok and result.backlog_after.pending == 0:
            return cycle
    raise AssertionError(f"backlog not drained after {limit} cycles: {port.backlog()}")


def assert_delivered_once(port: FakeStationPort, cloud: FakeCloud) -> None:
    ids = {e["event_id"] for e in port.events}
    assert set(cloud.events) == ids
    assert port.acked == ids
    assert all(count == 1 for count in cloud.applied_count.values())
    assert cloud.high_water[1] == len(port.events)


# --- tests ---------------------------------------------------------------------------------


def test_a_clean_cycle_pushes_in_batches_pulls_and_records_contact() -> None:
    port, cloud = FakeStationPort(), FakeCloud()
    port.add_events(12)
    engine = make_engine(port, httpx.MockTransport(cloud), batch_size=5)
    result = engine.run_cycle()
    assert result == CycleResult(
        pushed=12,
        duplicates=0,
        rejected=0,
        rewound=0,
        pages=1,
        backlog_after=Backlog(0, None),
        ok=True,
        error=None,
        alert=None,
    )
    assert cloud.push_sizes == [5, 5, 2]
    assert_delivered_once(port, cloud)
    assert port.contacts == ["2026-01-01T08:00:00+00:00"]
    assert port.alerts == []


def test_a_rejected_event_is_acknowledged_and_does_not_block_the_queue() -> None:
    port, cloud = FakeStationPort(), FakeCloud()
    port.add_events(2)
    port.add_events(1, kind="no.such.kind")
    port.add_events(2)
    result = make_engine(port, httpx.MockTransport(cloud), batch_size=2).run_cycle()
    assert result.ok
    assert (result.pushed, result.rejected) == (5, 1)
    assert_delivered_once(port, cloud)


@pytest.mark.parametrize("seed", range(60))
def test_every_event_arrives_once_under_random_faults(seed: int) -> None:
    port, cloud = FakeStationPort(), FakeCloud()
    rng = random.Random(seed)
    port.add_events(rng.randint(1, 40))
    plan = random_plan(
        seed, drop=0.15, lose_response=0.2, duplicate=0.2, unavailable=0.15, max_copies=5
    )
    transport = FaultyTransport(httpx.MockTransport(cloud), plan)
    engine = make_engine(port, transport, batch_size=rng.randint(1, 9), seed=seed)
    for _ in range(6):
        for _ in range(rng.randint(1, 3)):
            engine.run_cycle()
        port.add_events(rng.randint(0, 6))
    sync_until_drained(engine, port)
    assert_delivered_once(port, cloud)
    assert sum(transport.counts.values()) == transport.requests


FAULTS = st.one_of(
    st.just(Fault.passing()),
    st.just(Fault.drop()),
    st.just(Fault.lose_response()),
    st.just(Fault.unavailable()),
    st.integers(1, 5).map(Fault.duplicate),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(faults=st.lists(FAULTS, max_size=30), events=st.integers(1, 25), batch=st.integers(1, 6))
def test_every_event_arrives_once_under_any_fault_sequence(
    faults: list[Fault], events: int, batch: int
) -> None:
    port, cloud = FakeStationPort(), FakeCloud()
    port.add_events(events)
    transport = FaultyTransport(httpx.MockTransport(cloud), faults)
    engine = make_engine(port, transport, batch_size=batch)
    sync_until_drained(engine, port, limit=len(faults) + 5)
    assert_delivered_once(port, cloud)


def test_lost_responses_come_back_as_duplicates() -> None:
    port, cloud = FakeStationPort(), FakeCloud()
    port.add_events(4)
    transport = FaultyTransport(httpx.MockTransport(cloud), [Fault.lose_response()])
    engine = make_engine(port, transport)
    first = engine.run_cycle()
    assert not first.ok
    assert first.backlog_after.pending == 4
    assert set(cloud.events) == {e["event_id"] for e in port.events}, "the cloud committed"
    second = engine.run_cycle()
    assert (second.ok, second.pushed, second.duplicates) == (True, 4, 4)
    assert_delivered_once(port, cloud)


def test_a_cloud_restored_from_backup_is_caught_up_by_rewinding() -> None:
    port, cloud = FakeStationPort(), FakeCloud()
    port.add_events(40)
    engine = make_engine(port, httpx.MockTransport(cloud), batch_size=7)
    assert engine.run_cycle().ok
    cloud.restore_backup(forget=12)
    assert len(cloud.events) == 28
    port.add_events(5)
    result = engine.run_cycle()
    assert result.ok, result.error
    assert result.rewound == 12
    assert result.pushed == 17
    assert_delivered_once(port, cloud)


def test_a_cloud_that_keeps_answering_gaps_is_given_up_on_for_this_cycle() -> None:
    port = FakeStationPort()
    port.add_events(3)
    port.acked = {e["event_id"] for e in port.events[:2]}
    calls: list[int] = []

    def always_gap(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return _problem(409, "sequence_gap", "missing", expected_seq=1, epoch=1)

    result = make_engine(port, httpx.MockTransport(always_gap)).run_cycle()
    assert not result.ok
    assert result.alert == "sequence_gap"
    assert len(calls) == 2, "the second gap finds nothing left to re-queue"
    assert port.alerts[-1][0] == "sequence_gap"


def test_rewinds_are_bounded_per_cycle() -> None:
    port = FakeStationPort()
    port.add_events(3)
    calls: list[int] = []

    def gap_forever(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        port.acked = {e["event_id"] for e in port.events}  # something always re-queues
        return _problem(409, "sequence_gap", "missing", expected_seq=1, epoch=1)

    result = make_engine(port, httpx.MockTransport(gap_forever)).run_cycle()
    assert not result.ok
    assert len(calls) == 4
    assert result.alert == "sequence_gap"


def test_a_conflict_stops_the_push_and_raises_an_alert() -> None:
    port, cloud = FakeStationPort(), FakeCloud()
    port.add_events(6)
    cloud.feed = [DenyEntry(member_id="M1", denied=True)]
    forged = dict(port.events[3], payload={"n": "something else"})
    cloud.events[forged["event_id"]] = {"digest": _digest(forged), "seq": 4, "epoch": 1}
    engine = make_engine(port, httpx.MockTransport(cloud), batch_size=3)
    result = engine.run_cycle()
    assert not result.ok
    assert result.alert == "event_conflict"
    assert port.alerts == [("event_conflict", f"event {forged['event_id']}: another payload")]
    assert result.pushed == 3
    assert port.backlog().pending == 3
    assert port.applied_pages == [], "no pull after a failed push"
    assert port.contacts == []

    del cloud.events[forged["event_id"]]
    healed = engine.run_cycle()
    assert healed.ok
    assert port.alerts[-1] == ("", ""), "a successful cycle clears the engine's alert"
    assert_delivered_once(port, cloud)


def test_too_large_halves_the_batch_until_it_fits() -> None:
    port, cloud = FakeStationPort(), FakeCloud(max_batch=8)
    port.add_events(30)
    result = make_engine(port, httpx.MockTransport(cloud), batch_size=50).run_cycle()
    assert result.ok, result.error
    assert cloud.push_sizes == [7, 7, 7, 7, 2]  # 30 -> 15 -> 7, then 7 at a time
    assert_delivered_once(port, cloud)


def test_too_large_at_one_event_is_rejected_and_alerted() -> None:
    port, cloud = FakeStationPort(), FakeCloud(max_batch=0)
    port.add_events(4)
    result = make_engine(port, httpx.MockTransport(cloud)).run_cycle()
    assert not result.ok
    assert result.alert == "sync_rejected"
    assert "413" in (result.error or "")
    assert port.backlog().pending == 4


def test_an_answer_that_does_not_match_the_batch_acknowledges_nothing() -> None:
    port, cloud = FakeStationPort(), FakeCloud()
    port.add_events(5)

    def lying(request: httpx.Request) -> httpx.Response:
        answer = PushResponse.model_validate_json(cloud(request).content)
        results = [r.model_copy(update={"event_id": str(uuid.uuid4())}) for r in answer.results]
        return httpx.Response(
            200, content=answer.model_copy(update={"results": results}).model_dump_json()
        )

    result = make_engine(port, httpx.MockTransport(lying)).run_cycle()
    assert not result.ok
    assert port.acked == set()


def test_a_partial_answer_acknowledges_only_the_leading_events_it_names() -> None:
    port, cloud = FakeStationPort(), FakeCloud()
    port.add_events(5)

    def partial(request: httpx.Request) -> httpx.Response:
        answer = PushResponse.model_validate_json(cloud(request).content)
        return httpx.Response(
            200, content=answer.model_copy(update={"results": answer.results[:2]}).model_dump_json()
        )

    result = make_engine(port, httpx.MockTransport(partial)).run_cycle()
    assert not result.ok
    assert port.acked == {e["event_id"] for e in port.events[:2]}


def test_changes_pages_are_applied_in_order_with_their_cursors() -> None:
    port, cloud = FakeStationPort(), FakeCloud()
    cloud.feed = [DenyEntry(member_id=f"M{i}", denied=True) for i in range(7)]
    engine = make_engine(port, httpx.MockTransport(cloud), page_limit=3)
    result = engine.run_cycle()
    assert result.ok
    assert result.pages == 3
    assert [(p.cursor, p.next_cursor, p.more) for p in port.applied_pages] == [
        (0, 3, True),
        (3, 6, True),
        (6, 7, False),
    ]
    assert [d.member_id for p in port.applied_pages for d in p.deny] == [f"M{i}" for i in range(7)]
    assert port.cursor == 7

    cloud.feed.append(DenyEntry(member_id="M7", denied=False))
    assert engine.run_cycle().pages == 1
    assert (port.applied_pages[-1].cursor, port.cursor) == (7, 8)


def test_a_pull_interrupted_midway_resumes_from_the_stored_cursor() -> None:
    port, cloud = FakeStationPort(), FakeCloud()
    cloud.feed = [DenyEntry(member_id=f"M{i}", denied=True) for i in range(5)]
    faults = [Fault.passing(), Fault.unavailable()]  # page one arrives, page two fails
    engine = make_engine(port, FaultyTransport(httpx.MockTransport(cloud), faults), page_limit=2)
    assert not engine.run_cycle().ok
    assert port.cursor == 2
    assert engine.run_cycle().ok
    assert [p.cursor for p in port.applied_pages] == [0, 2, 4]


def test_a_changes_page_for_another_cursor_is_not_applied() -> None:
    port = FakeStationPort(cursor=5)

    def stale(request: httpx.Request) -> httpx.Response:
        page = ChangesResponse(cursor=0, next_cursor=9, more=False)
        return httpx.Response(200, content=page.model_dump_json())

    result = make_engine(port, httpx.MockTransport(stale)).run_cycle()
    assert not result.ok
    assert port.applied_pages == []


def test_enrolment_happens_once_before_the_first_push() -> None:
    port, cloud = FakeStationPort(), FakeCloud()
    port.enrolment = EnrolRequest(station_id="S001")
    port.add_events(2)
    paths: list[str] = []

    def recording(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return cloud(request)

    engine = make_engine(port, httpx.MockTransport(recording))
    assert engine.run_cycle().ok
    assert engine.run_cycle().ok
    assert paths == [ENROL_PATH, EVENTS_PATH, CHANGES_PATH, CHANGES_PATH]
    assert len(port.enrolled) == 1


def test_no_cloud_configured_means_no_network() -> None:
    port = FakeStationPort(url="")
    port.add_events(1)

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    result = make_engine(port, httpx.MockTransport(unreachable)).run_cycle()
    assert (result.ok, result.error) == (False, "cloud not configured")
    assert result.backlog_after.pending == 1


def test_refused_credentials_fail_until_the_token_is_rotated() -> None:
    port, cloud = FakeStationPort(token="old-token"), FakeCloud()
    port.add_events(3)
    engine = make_engine(port, httpx.MockTransport(cloud))
    failed = engine.run_cycle()
    assert not failed.ok
    assert failed.alert == "sync_auth"
    port.token = TOKEN
    assert engine.run_cycle().ok
    assert cloud.tokens_seen[0] == "Bearer old-token"
    assert cloud.tokens_seen[-1] == f"Bearer {TOKEN}"
    assert_delivered_once(port, cloud)


def test_backoff_grows_with_full_jitter_and_stays_under_the_cap() -> None:
    engine = make_engine(FakeStationPort(), httpx.MockTransport(FakeCloud()), seed=7)
    for failures in range(1, 40):
        ceiling = min(BACKOFF_CAP_S, 2.0 ** (failures - 1))
        samples = [engine.next_delay(failures) for _ in range(200)]
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > 0.8 * ceiling, "full jitter reaches towards the ceiling"
        assert len(set(samples)) > 150, "jittered, not fixed"
    assert engine.next_delay(10_000) <= BACKOFF_CAP_S


def test_after_an_outage_of_any_length_the_next_try_comes_within_a_minute() -> None:
    """A station whose link returns syncs within a minute, however long it was cut off."""
    engine = make_engine(FakeStationPort(), httpx.MockTransport(FakeCloud()), seed=3)
    waits = [engine.next_delay(failures) for failures in range(1, 400) for _ in range(20)]
    assert max(waits) <= 60.0
    assert max(waits) > 50.0, "long outages still back off towards the cap"


class ScriptedStop(threading.Event):
    """A stop event whose waits return at once and are recorded; it sets itself after
    `waits` waits, so run_forever can be stepped without real time passing."""

    def __init__(self, waits: int) -> None:
        super().__init__()
        self.timeouts: list[float | None] = []
        self._waits = waits

    def wait(self, timeout: float | None = None) -> bool:
        self.timeouts.append(timeout)
        if len(self.timeouts) >= self._waits:
            self.set()
        return self.is_set()


def test_run_forever_backs_off_after_failures_and_waits_the_interval_after_success() -> None:
    port, cloud = FakeStationPort(), FakeCloud()
    port.add_events(3)
    faults = [Fault.unavailable()] * 6
    engine = make_engine(port, FaultyTransport(httpx.MockTransport(cloud), faults))
    stop = ScriptedStop(waits=8)
    engine.run_forever(stop, interval_s=15.0)
    backoffs = stop.timeouts[:6]
    assert all(t is not None and 0 <= t <= min(60.0, 2.0**i) for i, t in enumerate(backoffs))
    assert stop.timeouts[6:] == [15.0, 15.0]
    assert_delivered_once(port, cloud)


def test_the_clouds_retry_after_is_heeded_beyond_the_backoff_cap_up_to_five_minutes() -> None:
    for asked, waited in (("120", 120.0), ("86400", 300.0)):
        port, cloud = FakeStationPort(), FakeCloud()
        port.add_events(1)
        answers = [httpx.Response(503, headers={"Retry-After": asked})]
        transport = httpx.MockTransport(
            lambda request, answers=answers, cloud=cloud: (
                answers.pop() if answers else cloud(request)
            )
        )
        engine = make_engine(port, transport)
        stop = ScriptedStop(waits=2)
        engine.run_forever(stop, interval_s=15.0)
        assert stop.timeouts == [waited, 15.0]
        assert_delivered_once(port, cloud)


def test_a_cloud_out_of_reach_for_long_is_alerted_and_the_alert_clears_on_success() -> None:
    for failed_cycles, alerted in (
        (FAILURES_BEFORE_ALERT - 1, False),
        (FAILURES_BEFORE_ALERT, True),
    ):
        port, cloud = FakeStationPort(), FakeCloud()
        port.add_events(3)
        faults = [Fault.drop()] * failed_cycles
        engine = make_engine(port, FaultyTransport(httpx.MockTransport(cloud), faults))
        engine.run_forever(ScriptedStop(waits=failed_cycles + 1), interval_s=15.0)
        codes = [code for code, _ in port.alerts]
        # A few failed cycles are normal on a forecourt link; a long outage is shown, and
        # the first successful cycle clears it.
        assert codes == (["sync_failing", ""] if alerted else []), port.alerts
        assert_delivered_once(port, cloud)


def test_run_forever_runs_again_at_once_while_progress_leaves_a_backlog() -> None:
    port, cloud = FakeStationPort(), FakeCloud()
    port.add_events(2)

    def busy_station(request: httpx.Request) -> httpx.Response:
        if request.url.path == EVENTS_PATH and len(port.events) < 6:
            port.add_events(1)  # a sale lands while the batch is in flight
        return cloud(request)

    engine = make_engine(port, httpx.MockTransport(busy_station), batch_size=1)
    stop = ScriptedStop(waits=1)
    engine.run_forever(stop, interval_s=15.0)
    assert stop.timeouts == [15.0]
    assert_delivered_once(port, cloud)


def test_run_forever_stops_promptly_when_the_event_is_set() -> None:
    port = FakeStationPort()
    port.add_events(1)
    engine = make_engine(port, httpx.MockTransport(lambda r: httpx.Response(503)))
    stop = threading.Event()
    worker = threading.Thread(target=engine.run_forever, args=(stop, 3600.0))
    worker.start()
    time.sleep(0.05)
    stop.set()
    worker.join(timeout=60.0)  # liveness only: the interval it must not wait out is 3600 s
    assert not worker.is_alive()


def test_setting_stop_ends_a_cycle_between_batches() -> None:
    port, cloud = FakeStationPort(), FakeCloud()
    port.add_events(10)
    stop = threading.Event()

    def stop_after_first(request: httpx.Request) -> httpx.Response:
        stop.set()
        return cloud(request)

    engine = make_engine(port, httpx.MockTransport(stop_after_first), batch_size=2)
    result = engine.run_cycle(stop)
    assert (result.ok, result.error, result.pushed) == (False, "stopped", 2)


def test_faulty_transport_applies_every_kind_of_fault() -> None:
    port, cloud = FakeStationPort(), FakeCloud()
    port.add_events(20)
    plan = random_plan(3, drop=0.2, lose_response=0.2, duplicate=0.2, unavailable=0.2)
    transport = FaultyTransport(httpx.MockTransport(cloud), plan)
    engine = make_engine(port, transport, batch_size=1)
    sync_until_drained(engine, port)
    assert {FaultKind.DROP, FaultKind.LOSE_RESPONSE, FaultKind.DUPLICATE} <= set(transport.counts)
    assert transport.counts[FaultKind.UNAVAILABLE] > 0
    assert_delivered_once(port, cloud)


class CountingPort(FakeStationPort):
    """Counts how batches are read: from the head of the queue, or prepared ahead."""

    def __init__(self) -> None:
        super().__init__()
        self.head_reads = 0
        self.reads_ahead = 0

    def pending_batch(self, limit: int) -> PushRequest | None:
        self.head_reads += 1
        return super().pending_batch(limit)

    def next_batch(self, epoch: int, after_seq: int, limit: int) -> PushRequest | None:
        self.reads_ahead += 1
        return super().next_batch(epoch, after_seq, limit)


def test_the_next_batch_is_read_while_the_cloud_works_and_used_only_after_the_ack() -> None:
    port, cloud = CountingPort(), FakeCloud()
    port.add_events(50)
    result = make_engine(port, httpx.MockTransport(cloud), batch_size=10).run_cycle()
    assert result.ok and result.pushed == 50
    assert port.reads_ahead == 5  # each batch's successor was prepared in the background
    assert port.head_reads == 2  # the first batch, and the final empty look
    assert_delivered_once(port, cloud)


def test_a_batch_prepared_ahead_is_dropped_when_the_cloud_asks_to_rewind() -> None:
    port, cloud = CountingPort(), FakeCloud()
    port.add_events(30)
    engine = make_engine(port, httpx.MockTransport(cloud), batch_size=10)
    assert engine.run_cycle().ok
    cloud.restore_backup(forget=18)  # the cloud forgets everything after seq 12
    port.add_events(10)
    result = engine.run_cycle()
    assert result.ok and result.rewound == 18
    assert_delivered_once(port, cloud)
