"""A stateful property test of the whole chain: stations going offline and online at random,
registering members (sometimes the same phone at two stations while apart), earning and
redeeming, syncing through the real cloud app and the real sync engine.

After every step: journals balance and every ledger invariant holds; each station's
acknowledged events are exactly what the cloud holds for it (nothing missing, nothing
twice); every member's chain balance equals the plain sum of its events (merged members
counted together); the overdraft is within the redemption allowances granted.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from starlette.testclient import TestClient

from cloud_sync.cloud.ledger import AllowancePolicy, CloudLedger
from cloud_sync.cloud.server.app import build_cloud_app
from cloud_sync.cloud.server.rules import publish_ruleset
from cloud_sync.cloud.server.settings import CloudSettings
from cloud_sync.core.privacy import MemberKeys
from cloud_sync.core.signing import generate_signing_key
from edge_agent.errors import ServiceError
from edge_agent.services.members import find_member, register_member
from edge_agent.services.points import redeem_points
from edge_agent.services.station import Station
from edge_agent.services.sync import build_engine
from tests.cloud.chain import ADMIN_TOKEN, open_chain_station, outbox_events
from tests.cloud.conftest import fresh_pg_schema
from tests.support import RULESETS, SHANGHAI, FakeClock, manual_sale

pytestmark = pytest.mark.slow

STATIONS = ("S1", "S2", "S3")
PHONES = tuple(f"1380013{n:04d}" for n in range(5))


class Link(httpx.BaseTransport):
    """A station's link to the cloud: up (the app in-process) or down (connect refused)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.up = True

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            raise httpx.ConnectError("link down", request=request)
        return self.inner.handle_request(request)


class ChainMachine(RuleBasedStateMachine):
    database_url: str = ""
    members_checked = 0  # across examples: proves the balance invariant was not vacuous
    redemptions = 0

    def __init__(self) -> None:
        super().__init__()
        self.home = Path(tempfile.mkdtemp(prefix="chain-"))
        self.clock = FakeClock(datetime(2026, 12, 1, 9, 0, tzinfo=SHANGHAI))
        url = self.database_url or f"sqlite:///{self.home / 'cloud.sqlite3'}"
        if url.startswith("postgresql"):
            fresh_pg_schema(url.replace("postgresql+psycopg://", "postgresql://", 1))
        self.chain_keys = MemberKeys.generate("chain-1")
        self.ledger = CloudLedger.open(
            url,
            chain_keys=self.chain_keys,
            policy=AllowancePolicy(points=3_000, per_member_cap=800),
        )
        settings_ = CloudSettings.model_validate(
            {"cloud": {"data_dir": str(self.home / "cloud"), "admin_token": ADMIN_TOKEN}}
        )
        signing_key = generate_signing_key()
        publish_ruleset(
            self.ledger,
            signing_key,
            (RULESETS / "field-examples.json").read_bytes(),
            self.clock.now,
        )
        app = build_cloud_app(
            settings_,
            ledger=self.ledger,
            signing_key=signing_key,
            clock=lambda: self.clock.now.astimezone(UTC),
            chain_keys=self.chain_keys,
        )
        self.client = TestClient(app)
        self.links: dict[str, Link] = {}
        self.stations: dict[str, Station] = {}
        self.engines: dict[str, Any] = {}
        self.phone_of: dict[str, str] = {}
        for station_id in STATIONS:
            token = self.ledger.add_station(station_id, None, self.clock.now)
            station = open_chain_station(
                self.home / station_id, station_id, "https://cloud.test", token, self.clock
            )
            link = Link(self.client._transport)
            self.links[station_id] = link
            self.stations[station_id] = station
            self.engines[station_id] = build_engine(station, transport=link)

    def teardown(self) -> None:
        for station in self.stations.values():
            station.close()
        self.client.close()
        self.ledger.close()
        shutil.rmtree(self.home, ignore_errors=True)

    @initialize()
    def members_at_the_first_station_then_everyone_syncs(self) -> None:
        for phone in PHONES[:3]:  # the last two phones stay free for offline double sign-ups
            self.register("S1", phone)
            self.sale("S1", phone, 150)  # points to redeem from the first step on
        for station_id in STATIONS:
            assert self.engines[station_id].run_cycle().ok

    @rule(station=st.sampled_from(STATIONS), phone=st.sampled_from(PHONES))
    def register(self, station: str, phone: str) -> None:
        try:
            view = register_member(
                self.stations[station], phone=phone, consent_channel="cli", actor="t"
            )
        except ServiceError as exc:
            if exc.code != "member.exists":
                raise
            return
        self.phone_of[view.member_id] = phone

    @rule(
        station=st.sampled_from(STATIONS),
        phone=st.sampled_from(PHONES),
        litres=st.integers(min_value=100, max_value=200),  # the default [sale_limits] bound
    )
    def sale(self, station: str, phone: str, litres: int) -> None:
        try:
            member = find_member(self.stations[station], phone=phone)
        except ServiceError:
            return
        manual_sale(self.stations[station], litres, member.member_id, actor="t", at=self.clock.now)

    @rule(
        station=st.sampled_from(STATIONS),
        phone=st.sampled_from(PHONES),
        points=st.sampled_from([100, 200]),
    )
    def redeem(self, station: str, phone: str, points: int) -> None:
        try:
            member = find_member(self.stations[station], phone=phone)
            redeem_points(self.stations[station], member.member_id, points, actor="t")
        except ServiceError:
            return
        ChainMachine.redemptions += 1

    @rule(station=st.sampled_from(STATIONS))
    def toggle_link(self, station: str) -> None:
        self.links[station].up = not self.links[station].up

    @rule(station=st.sampled_from(STATIONS))
    def sync(self, station: str) -> None:
        result = self.engines[station].run_cycle()
        assert result.ok == self.links[station].up, result

    @rule(minutes=st.integers(min_value=1, max_value=600))
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)

    def _acked_events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for station_id, station in self.stations.items():
            mine = outbox_events(station)
            acked = [event for event in mine if event["acked_at"] is not None]
            assert [e["seq"] for e in acked] == list(range(1, len(acked) + 1)), station_id
            cloud_side = {s["station_id"]: s for s in self.ledger.stations()}[station_id]
            assert int(cloud_side["high_water"] or 0) == len(acked), station_id
            events += acked
        return events

    @invariant()
    def chain_ledger_agrees_with_the_stations(self) -> None:
        if not hasattr(self, "ledger"):
            return
        assert self.ledger.ledger_problems() == []
        events = self._acked_events()
        totals = self.ledger.totals()
        assert totals["events_applied"] + totals["events_rejected"] == len(events)
        assert totals["events_rejected"] == 0, self.ledger.quarantined()
        by_phone: dict[str, int] = defaultdict(int)
        for event in events:
            payload, kind = event["payload"], event["kind"]
            member = payload.get("member_id")
            if not member or member not in self.phone_of:
                continue
            phone = self.phone_of[member]
            if kind in {"sale.recorded", "sale.member_attached", "sale.reversed"}:
                by_phone[phone] += sum(entry["points"] for entry in payload["ledger"])
            elif kind == "points.redeemed":
                by_phone[phone] -= payload["points"]
        now = self.clock.now
        for phone, points in by_phone.items():
            member = self.ledger.find_member(phone=phone, now=now)
            assert member is not None, phone
            assert member["points"] == points, (phone, member, points)
            ChainMachine.members_checked += 1
        assert totals["redemption_overdraft"] <= totals["allowances_granted_points"]
        assert totals["total_overdraft"] <= totals["allowances_granted_points"]


def _run(database_url: str, examples: int) -> None:
    class Chain(ChainMachine):
        pass

    Chain.database_url = database_url
    case = Chain.TestCase
    case.settings = settings(
        max_examples=examples,
        stateful_step_count=40,
        deadline=timedelta(seconds=30),
        derandomize=True,  # the same histories on every machine: CI never differs from here
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    before = (ChainMachine.members_checked, ChainMachine.redemptions)
    case().runTest()
    assert ChainMachine.members_checked - before[0] > examples
    assert ChainMachine.redemptions - before[1] > 0


def test_chain_invariants_hold_on_sqlite() -> None:
    _run("", examples=40)


def test_chain_invariants_hold_on_postgresql(pg_database: str) -> None:
    _run(pg_database.replace("postgresql://", "postgresql+psycopg://", 1), examples=15)
