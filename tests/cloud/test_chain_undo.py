"""Undo attach end to end: a real `cloud run` (SQLite and PostgreSQL), a real station store
driven through its services, and the real sync engine over a link that drops requests,
loses answers and sends copies.

A cashier attaches the wrong member (synced), double-clicks undo, attaches the right member;
offline, another sale goes wrong, is undone and attached again before the station reaches
the cloud. After sync both ledgers agree: every member's points, every sale's member, every
event once; the station's `verify` and the cloud's invariants and HQ aggregates are clean.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from cloud_sync.cloud.ledger import aggregates_ledger
from edge_agent.services.detach import detach_member
from edge_agent.services.members import member_view, register_member
from edge_agent.services.points import verify_ledger
from edge_agent.services.sales import SaleInput, attach_member, list_sales, record_sale
from edge_agent.services.station import Station
from edge_agent.services.sync import build_engine
from tests.cloud.chain import CloudProcess, assert_cloud_matches, open_chain_station
from tests.cloud.faults import Fault, FaultKind, FaultyTransport, sequence_plan

pytestmark = pytest.mark.slow


def _sale(station: Station, litres: str) -> str:
    volume = Decimal(litres)
    return record_sale(
        station,
        SaleInput(
            source="dart",
            source_key=f"dart1:80:1:{uuid.uuid4()}",
            pump=1,
            nozzle=1,
            grade="92",
            litres=volume,
            amount=(volume * Decimal("7.50")).quantize(Decimal("0.01")),
            ended_at=station.now(),
        ),
    ).sale.sale_id


def _sync(station: Station, transport: httpx.BaseTransport | None = None) -> None:
    engine = build_engine(station, transport=transport, timeout=3.0)
    for _ in range(200):
        result = engine.run_cycle()
        if result.ok and result.backlog_after.pending == 0:
            return
    raise AssertionError(f"the backlog never drained: {result}")


def test_station_and_cloud_agree_after_undo_and_attach_again(
    tmp_path: Path, cloud: CloudProcess
) -> None:
    cloud.start()
    token = cloud.add_station("S001")
    station = open_chain_station(tmp_path / "S001", "S001", cloud.url, token)
    try:
        _sync(station)  # enrolled: every member and balance is now the chain's
        wrong, right, bystander = (
            register_member(station, phone=p, consent_channel="test", actor="cashier1").member_id
            for p in ("13800138000", "13900139000", "13700137000")
        )
        paid = _sale(station, "12.00")
        attach_member(station, paid, bystander, actor="cashier1")
        online = _sale(station, "40.00")
        attach_member(station, online, wrong, actor="cashier1")
        _sync(station)  # the cloud booked the wrong member's 40 points

        clicks = [
            detach_member(station, online, wrong, actor="cashier1", attach_no=1)
            for _ in range(2)  # a double click
        ]
        assert [c.created for c in clicks] == [True, False]
        attach_member(station, online, right, actor="cashier1")

        offline = _sale(station, "55.00")  # and, before the next sync, another slip
        attach_member(station, offline, right, actor="cashier1")
        detach_member(station, offline, right, actor="cashier1", attach_no=1)
        attach_member(station, offline, wrong, actor="cashier1")

        # The push of the undo is answered but the answer is lost, sent again twice, then
        # dropped and refused by a proxy before it goes through: the cloud applies it once.
        faulty = FaultyTransport(
            httpx.HTTPTransport(),
            sequence_plan(
                [Fault.lose_response(), Fault.duplicate(3), Fault.drop(), Fault.unavailable()]
            ),
            sleep=lambda _: None,
        )
        _sync(station, faulty)
        assert faulty.counts[FaultKind.LOSE_RESPONSE] == faulty.counts[FaultKind.DUPLICATE] == 1
        _sync(station)  # one clean pull, so the station's snapshots are the cloud's last word

        ledger = cloud.open_ledger()
        try:
            now = datetime.now(UTC)
            totals = assert_cloud_matches(ledger, [station], now)
            assert totals["events_rejected"] == 0 and totals["events_duplicate"] > 0
            for member_id, points in ((wrong, 55), (right, 40), (bystander, 12)):
                cloud_view = ledger.member(member_id, now)
                assert cloud_view is not None
                assert (member_view(station, member_id).points, cloud_view["points"]) == (
                    points,
                    points,
                ), member_id
            cloud_sales = {
                row["sale_id"]: row["member_id"]
                for row in ledger.db.read(
                    lambda conn: [
                        dict(r._mapping)
                        for r in conn.exec_driver_sql("SELECT sale_id, member_id FROM sales")
                    ]
                )
            }
            station_sales = {s.sale_id: s.member_id for s in list_sales(station, 100)}
            assert cloud_sales == station_sales
            assert (station_sales[online], station_sales[offline]) == (right, wrong)
            assert ledger.ledger_problems() == []
            assert ledger.db.read(aggregates_ledger.check) == []
        finally:
            ledger.close()
        assert verify_ledger(station) == []
    finally:
        station.close()
