"""The station's side of sync on a real store: outbox batches, acknowledgements and rewinds,
pulled pages applied all or nothing, signed rule sets, chain balances, the offline
redemption allowance, enrolment and re-keying, and `edge sync` as a user runs it."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.core.privacy import MemberKeys, blind_index, encrypt_field
from cloud_sync.core.signing import generate_signing_key, key_id_of, public_key_b64, sign_document
from cloud_sync.core.wire import (
    Allowance,
    ChangesResponse,
    DenyEntry,
    EnrolResponse,
    EventResult,
    LotSnapshot,
    MemberDelta,
    MemberKeysWire,
    PlateDelta,
    PushResponse,
    SignedRuleSet,
    WireEvent,
)
from cloud_sync.station.client import CHANGES_PATH, ENROL_PATH, EVENTS_PATH
from edge_agent.daemon import run_station
from edge_agent.errors import ServiceError
from edge_agent.services.members import find_member, member_view, register_member
from edge_agent.services.points import (
    adjust_points,
    quote_redemption,
    redeem_points,
    verify_ledger,
)
from edge_agent.services.rules import install_ruleset, ruleset_now
from edge_agent.services.sales import list_sales, reverse_sale
from edge_agent.services.station import Station, open_station
from edge_agent.services.status import station_status
from edge_agent.services.sync import StationSyncPort, sync_once
from edge_agent.settings import StationSettings
from edge_agent.store import Store
from edge_agent.store.keys import install_chain_keys
from edge_agent.store.lock import AgentLock
from edge_agent.store.meta import set_meta
from edge_agent.store.migrations import MIGRATIONS, SCHEMA_VERSION
from edge_agent.store.outbox import event_for
from edge_agent.store.rulesets import get_ruleset
from edge_agent.store.sync import get_sync_state, record_enrolment_started
from tests.support import RULESETS, FakeClock, free_port, pump_sale

LOYALPUMP = str(Path(sys.executable).with_name("loyalpump"))


@dataclass
class Chain:
    """What the cloud holds: the chain's member keys and its rule-signing key."""

    keys: MemberKeys
    signing: Ed25519PrivateKey

    def enrolment(self, station_id: str = "S001") -> EnrolResponse:
        public = public_key_b64(self.signing)
        return EnrolResponse(
            station_id=station_id,
            member_keys=MemberKeysWire(
                key_id=self.keys.key_id,
                encryption_key=base64.b64encode(self.keys.encryption_key).decode(),
                index_key=base64.b64encode(self.keys.index_key).decode(),
            ),
            signing_key_id=key_id_of(public),
            signing_public_key=public,
        )

    def member(
        self,
        member_id: str,
        phone: str,
        *,
        plates: tuple[str, ...] = (),
        name: str | None = None,
        lots: tuple[tuple[int, datetime | None], ...] = (),
        overdraft: int = 0,
        as_of_seq: int = 0,
        as_of_epoch: int = 1,
        status: str = "active",
        merged_into: str | None = None,
    ) -> MemberDelta:
        return MemberDelta(
            member_id=member_id,
            status=status,  # type: ignore[arg-type]
            merged_into=merged_into,
            phone_index=blind_index(self.keys, "phone", phone),
            phone_sealed=encrypt_field(self.keys, "phone", phone),
            phone_masked=f"{phone[3:6]}****{phone[-4:]}",
            name_sealed=None if name is None else encrypt_field(self.keys, "name", name),
            key_id=self.keys.key_id,
            registered_at="2026-01-05T10:00:00+08:00",
            plates=[
                PlateDelta(
                    plate_index=blind_index(self.keys, "plate", plate),
                    plate_sealed=encrypt_field(self.keys, "plate", plate),
                )
                for plate in plates
            ],
            lots=[
                LotSnapshot(points=points, expires_at=None if at is None else at.isoformat())
                for points, at in lots
            ],
            overdraft=overdraft,
            as_of_epoch=as_of_epoch,
            as_of_seq=as_of_seq,
        )

    def ruleset(
        self, document: str, *, signed_by: Ed25519PrivateKey | None = None
    ) -> SignedRuleSet:
        key = signed_by or self.signing
        return SignedRuleSet(
            version=json.loads(document)["version"],
            document=document,
            signature=sign_document(key, document),
            signing_key_id=key_id_of(public_key_b64(key)),
        )


@pytest.fixture
def chain() -> Chain:
    return Chain(MemberKeys.generate("chain-1"), generate_signing_key())


@pytest.fixture
def port(station: Station, chain: Chain) -> StationSyncPort:
    """An enrolled station's sync port."""
    enrolled = StationSyncPort(station)
    enrolled.complete_enrolment(chain.enrolment())
    return enrolled


def page(cursor: int, next_cursor: int, **changes: Any) -> ChangesResponse:
    return ChangesResponse(cursor=cursor, next_cursor=next_cursor, more=False, **changes)


def allowance(
    station: Station,
    allowance_id: str = "A1",
    *,
    points: int = 10_000,
    cap: int = 5_000,
    hours: float = 72,
    max_age_s: int = 3600,
) -> Allowance:
    return Allowance(
        allowance_id=allowance_id,
        points=points,
        per_member_cap=cap,
        expires_at=(station.now() + timedelta(hours=hours)).isoformat(),
        max_snapshot_age_s=max_age_s,
    )


def sale(station: Station, litres: str, member_id: str | None) -> int:
    return pump_sale(station, litres, member_id).points


def member(station: Station, phone: str = "13800138000", **extra: Any) -> str:
    return register_member(
        station, phone=phone, consent_channel="test", actor="cashier1", **extra
    ).member_id


def high_water(station: Station) -> int:
    with station.store.read() as tx:
        return int(tx.execute("SELECT max(seq) FROM outbox").fetchone()[0])


def in_a_year(station: Station) -> datetime:
    return station.now() + timedelta(days=365)


def refused(code: str, action: Any) -> None:
    with pytest.raises(ServiceError) as refusal:
        action()
    assert refusal.value.code == code, refusal.value


SURVIVOR = "00000000-0000-7000-8000-000000000001"  # smaller than any id minted today
ELSEWHERE = "00000000-0000-7000-8000-000000000002"


# --- the store's second schema -----------------------------------------------------------


def test_a_first_schema_store_with_members_and_points_migrates_with_its_keys_intact(
    tmp_path: Path,
) -> None:
    path = tmp_path / "station.sqlite3"
    with sqlite3.connect(path) as raw:
        raw.executescript(MIGRATIONS[0])
        raw.executescript(
            """
            INSERT INTO members VALUES ('m1', 'pi', 'S001-1:x', '138****8000', NULL,
                '2026-11-23T09:00:00+08:00', 0, 'S001', '2026-11-23T09:00:00+08:00', 'cli',
                '', NULL, 'active');
            INSERT INTO plates VALUES ('pl', 'm1', 'S001-1:y', '2026-11-23T09:00:00+08:00');
            INSERT INTO ledger (member_id, kind, points, booked_at)
                VALUES ('m1', 'adjust', 50, '2026-11-23T09:00:00+08:00');
            INSERT INTO lots VALUES (1, 'm1', 50, NULL);
            INSERT INTO balances VALUES ('m1', 50);
            INSERT INTO meta VALUES ('last_cloud_contact', '2026-11-23T08:00:00+08:00');
            PRAGMA user_version = 1;
            """
        )
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.integrity_problems() == []
        with store.read() as tx:
            assert tx.execute("SELECT member_id, status, merged_into FROM members").fetchall() == [
                ("m1", "active", None)
            ]
            assert get_sync_state(tx).last_contact == "2026-11-23T08:00:00+08:00"
        with store.write() as tx:  # 'merged' is a status now, and it names its survivor
            tx.execute(
                "UPDATE members SET status = 'merged', merged_into = 'm0', phone_index = NULL"
            )
        with pytest.raises(sqlite3.IntegrityError), store.write() as tx:
            tx.execute("UPDATE members SET merged_into = NULL")


# --- push: batches, acknowledgements, rewinds ------------------------------------------


def test_a_batch_is_one_epoch_contiguous_by_seq_and_acknowledged_events_leave_it(
    station: Station,
) -> None:
    port = StationSyncPort(station)
    member_id = member(station)
    sale(station, "10", member_id)
    sale(station, "20", member_id)  # seq 1..3 in epoch 1
    with station.store.write() as tx:
        set_meta(tx, "epoch", "2")  # the station was restored from a backup
    sale(station, "30", member_id)
    sale(station, "40", member_id)  # seq 4..5 in epoch 2

    first = port.pending_batch(500)
    assert first is not None
    assert (first.station_id, first.epoch, first.epoch_first_seq) == ("S001", 1, 1)
    assert [event["seq"] for event in first.events] == [1, 2, 3]
    for event in first.events:
        WireEvent.model_validate(event)
    assert first.events[0]["kind"] == "member.registered"
    assert port.pending_batch(2) is not None
    assert [e["seq"] for e in port.pending_batch(2).events] == [1, 2]  # type: ignore[union-attr]

    port.acknowledge(_applied(first.events, epoch=1))
    second = port.pending_batch(500)
    assert second is not None
    assert (second.epoch, second.epoch_first_seq) == (2, 4)
    assert [event["seq"] for event in second.events] == [4, 5]
    port.acknowledge(_applied(second.events, epoch=2, rejected=5))
    assert port.pending_batch(500) is None
    assert port.backlog().pending == 0


def test_a_hole_in_the_pending_run_ends_the_batch(station: Station) -> None:
    port = StationSyncPort(station)
    member_id = member(station)
    for litres in ("10", "20", "30"):
        sale(station, litres, member_id)
    with station.store.write() as tx:
        tx.execute("UPDATE outbox SET acked_at = 'x' WHERE seq = 3")
    batch = port.pending_batch(500)
    assert batch is not None
    assert [event["seq"] for event in batch.events] == [1, 2]


def test_rewind_requeues_an_epoch_from_the_expected_seq_and_events_are_kept(
    station: Station,
) -> None:
    port = StationSyncPort(station)
    member_id = member(station)
    for litres in ("10", "20", "30"):
        sale(station, litres, member_id)
    batch = port.pending_batch(500)
    assert batch is not None
    port.acknowledge(_applied(batch.events, epoch=1))
    assert port.backlog().pending == 0
    assert port.rewind(1, 3) == 2  # a cloud restored from a backup lost seq 3 and 4
    assert port.rewind(1, 3) == 0
    again = port.pending_batch(500)
    assert again is not None
    assert [event["seq"] for event in again.events] == [3, 4]
    assert again.events[0]["event_id"] == batch.events[2]["event_id"]
    assert port.backlog().pending == 2
    with pytest.raises(sqlite3.DatabaseError, match="kept"), station.store.write() as tx:
        tx.execute("DELETE FROM outbox WHERE seq = 1")


def _applied(events: list[dict[str, Any]], *, epoch: int, rejected: int = 0) -> PushResponse:
    return PushResponse(
        station_id="S001",
        epoch=epoch,
        high_water=events[-1]["seq"],
        results=[
            EventResult(
                event_id=event["event_id"],
                seq=event["seq"],
                status="rejected" if event["seq"] == rejected else "applied",
                reason="bad payload" if event["seq"] == rejected else None,
            )
            for event in events
        ],
    )


# --- pull: pages, rule sets, members ---------------------------------------------------


def _ruleset_v2() -> str:
    document = json.loads((RULESETS / "field-examples.json").read_text(encoding="utf-8"))
    document.update(version=2, name="double 92", effective_from="2026-11-01T00:00:00+08:00")
    document["earn"][0]["points_per_litre"] = "2"
    return json.dumps(document, ensure_ascii=False)


def test_a_page_that_fails_half_way_leaves_cursor_and_data_untouched(
    station: Station, port: StationSyncPort, chain: Chain
) -> None:
    good = chain.member(ELSEWHERE, "+8613900139000", lots=((500, in_a_year(station)),))
    broken = chain.member(SURVIVOR, "+8613700137000").model_copy(
        update={"lots": [LotSnapshot(points=10, expires_at="next tuesday")]}
    )
    bad_page = page(
        0,
        7,
        rulesets=[chain.ruleset(_ruleset_v2())],
        members=[good, broken],
        deny=[DenyEntry(member_id=ELSEWHERE, denied=True, overdraft=3)],
        allowance=allowance(station),
    )
    before = station_status(station)
    with pytest.raises(ValueError, match="next tuesday"):
        port.apply_changes(bad_page)
    assert port.changes_cursor() == 0
    assert ruleset_now(station).version == 1  # type: ignore[union-attr]
    refused("member.not_found", lambda: find_member(station, phone="13900139000"))
    assert station_status(station) == before

    port.apply_changes(bad_page.model_copy(update={"members": [good]}))
    assert port.changes_cursor() == 7
    assert ruleset_now(station).version == 2  # type: ignore[union-attr]
    assert find_member(station, phone="13900139000").points == 500
    assert station_status(station)["sync"]["allowance"]["remaining"] == 10_000


def test_a_rule_set_whose_signature_fails_is_refused_and_the_rules_in_force_stay(
    station: Station, port: StationSyncPort, chain: Chain
) -> None:
    forged = chain.ruleset(_ruleset_v2(), signed_by=generate_signing_key())
    tampered = chain.ruleset(_ruleset_v2()).model_copy(
        update={"document": _ruleset_v2().replace('"2"', '"20"')}
    )
    port.apply_changes(page(0, 1, rulesets=[forged]))
    port.apply_changes(page(1, 2, rulesets=[tampered]))
    assert ruleset_now(station).version == 1  # type: ignore[union-attr]
    assert port.changes_cursor() == 2  # refused, not stuck: the feed moves on
    sync = station_status(station)["sync"]
    assert sync["rules_refused"]["count"] == 2
    assert "signature" in sync["rules_refused"]["last_reason"]
    assert sync["alert"]["code"] == "rules_refused"

    signed = chain.ruleset(_ruleset_v2())
    port.apply_changes(page(2, 3, rulesets=[signed]))
    assert ruleset_now(station).version == 2  # type: ignore[union-attr]
    with station.store.read() as tx:
        row = get_ruleset(tx, 2)
    assert row is not None
    assert (row.source, row.signature) == ("cloud", signed.signature)
    assert sale(station, "10", member(station)) == 20  # priced under the new rules


def test_a_station_not_enrolled_installs_no_cloud_rule_set(station: Station, chain: Chain) -> None:
    port = StationSyncPort(station)
    port.apply_changes(page(0, 1, rulesets=[chain.ruleset(_ruleset_v2())]))
    assert ruleset_now(station).version == 1  # type: ignore[union-attr]
    assert station_status(station)["sync"]["rules_refused"]["count"] == 1


def test_a_member_registered_elsewhere_is_found_by_phone_and_plate_with_the_chain_balance(
    station: Station, port: StationSyncPort, chain: Chain
) -> None:
    expired = station.now() - timedelta(days=1)
    delta = chain.member(
        ELSEWHERE,
        "+8613900139000",
        plates=("粤BD12345",),
        name="李四",
        lots=((300, in_a_year(station)), (50, expired), (25, None)),
        overdraft=20,
    )
    port.apply_changes(page(0, 1, members=[delta]))
    by_phone = find_member(station, phone="139 0013 9000")
    by_plate = find_member(station, plate="粤BD12345")
    assert by_phone.member_id == by_plate.member_id == ELSEWHERE
    assert (by_phone.points, by_phone.booked_points) == (305, 0)  # 300 + 25 - 20, 50 expired
    assert (by_phone.name, by_phone.plates, by_phone.phone_masked) == (
        "李四",
        ("粤BD12345",),
        "139****9000",
    )
    refused("member.exists", lambda: member(station, "13900139000"))
    earned = sale(station, "40", ELSEWHERE)  # earning here adds on top of the snapshot
    assert find_member(station, phone="13900139000").points == 305 + earned


def test_the_chain_view_adds_own_events_after_the_snapshot_only(
    station: Station, port: StationSyncPort, chain: Chain
) -> None:
    member_id = member(station)
    sale(station, "40", member_id)  # the cloud has seen this one...
    seen = high_water(station)
    sale(station, "30", member_id)  # ...but not this one
    adjust_points(station, member_id, -5, actor="manager1", reason="typo")
    snapshot = chain.member(
        member_id,
        "+8613800138000",
        lots=((40, in_a_year(station)), (100, in_a_year(station))),
        as_of_seq=seen,
    )
    port.apply_changes(page(0, 1, members=[snapshot]))
    shown = find_member(station, phone="13800138000")
    assert shown.points == 140 + 30 - 5
    assert shown.booked_points == 65  # the local ledger alone

    with station.store.write() as tx:
        set_meta(tx, "epoch", "2")  # a later epoch counts whatever its sequence numbers
    sale(station, "10", member_id)
    assert find_member(station, phone="13800138000").points == 175

    caught_up = snapshot.model_copy(
        update={
            "lots": [LotSnapshot(points=180, expires_at=None)],
            "as_of_epoch": 2,
            "as_of_seq": high_water(station),
        }
    )
    port.apply_changes(page(1, 2, members=[caught_up]))
    assert find_member(station, phone="13800138000").points == 180


def test_a_member_merged_into_another_leads_to_the_survivor(
    station: Station, port: StationSyncPort, chain: Chain
) -> None:
    local = member(station, "13800138000", plates=("京A12345",))
    before_merge = high_water(station)
    sale(station, "50", local)  # earned here, not yet seen by the cloud
    survivor = chain.member(
        SURVIVOR, "+8613800138000", lots=((200, in_a_year(station)),), as_of_seq=before_merge
    )
    merged = chain.member(local, "+8613800138000", status="merged", merged_into=SURVIVOR)
    port.apply_changes(page(0, 1, members=[survivor, merged]))
    assert find_member(station, phone="13800138000").member_id == SURVIVOR
    assert find_member(station, plate="京A12345").member_id == SURVIVOR
    shown = member_view(station, local)
    assert (shown.member_id, shown.points) == (SURVIVOR, 250)


def test_one_phone_from_the_cloud_and_an_unpushed_registration_here_keep_the_smallest_id(
    station: Station, port: StationSyncPort, chain: Chain
) -> None:
    local = member(station, "13800138000")
    port.apply_changes(page(0, 1, members=[chain.member(SURVIVOR, "+8613800138000")]))
    assert find_member(station, phone="13800138000").member_id == SURVIVOR
    assert member_view(station, local).member_id == SURVIVOR


def test_erasure_from_the_cloud_removes_personal_data(
    station: Station, port: StationSyncPort, chain: Chain
) -> None:
    local = member(station, "13800138000", plates=("京A12345",), name="张三")
    erased = chain.member(local, "+8613800138000", status="erased").model_copy(
        update={"phone_index": None, "phone_sealed": None, "phone_masked": ""}
    )
    port.apply_changes(page(0, 1, members=[erased]))
    refused("member.not_found", lambda: find_member(station, phone="13800138000"))
    refused("member.not_found", lambda: find_member(station, plate="京A12345"))
    assert verify_ledger(station) == []


# --- redemption at an enrolled station -------------------------------------------------


def test_an_enrolled_station_redeems_only_under_an_allowance_in_force(
    station: Station, port: StationSyncPort, clock: FakeClock
) -> None:
    member_id = member(station)
    sale(station, "500", member_id)
    refused("redeem.no_allowance", lambda: redeem_points(station, member_id, 100, actor="c"))
    port.apply_changes(page(0, 1, allowance=allowance(station, "A1", hours=1)))
    done = redeem_points(station, member_id, 100, actor="c")
    with station.store.read() as tx:
        (event,) = event_for(tx, "points.redeemed", "redemption_id", done.redemption_id)
    assert event.payload["allowance_id"] == "A1"
    clock.advance(hours=1)
    refused("redeem.no_allowance", lambda: redeem_points(station, member_id, 100, actor="c"))
    assert station_status(station)["sync"]["allowance"]["expired"] is True


def _local_and_elsewhere_with_1000(
    station: Station, port: StationSyncPort, chain: Chain, **terms: Any
) -> str:
    """A local member with a sale's points, then a page: ELSEWHERE (1,000 points) and an
    allowance of `terms`. Returns the local member's id."""
    local = member(station)
    sale(station, "500", local)
    port.apply_changes(
        page(
            0,
            1,
            members=[chain.member(ELSEWHERE, "+8613900139000", lots=((1000, None),))],
            allowance=allowance(station, **terms),
        )
    )
    return local


def test_the_allowance_and_the_member_cap_bound_what_is_redeemed(
    station: Station, port: StationSyncPort, chain: Chain
) -> None:
    local = _local_and_elsewhere_with_1000(station, port, chain, points=300, cap=200)
    redeem_points(station, local, 150, actor="c")
    refused("redeem.member_cap", lambda: redeem_points(station, local, 100, actor="c"))
    refused("redeem.allowance_spent", lambda: redeem_points(station, ELSEWHERE, 200, actor="c"))
    redeem_points(station, ELSEWHERE, 100, actor="c")
    assert station_status(station)["sync"]["allowance"]["remaining"] == 50
    port.apply_changes(page(1, 2, allowance=allowance(station, "A2", points=300, cap=200)))
    redeem_points(station, ELSEWHERE, 200, actor="c")  # a renewed allowance starts afresh
    assert verify_ledger(station) == []


def test_the_till_quote_refuses_what_the_allowance_refuses(
    station: Station, port: StationSyncPort, chain: Chain, clock: FakeClock
) -> None:
    local = _local_and_elsewhere_with_1000(station, port, chain, points=300, cap=200)
    assert quote_redemption(station, local).max_points == 200  # the member's cap, not 1000
    redeem_points(station, local, 150, actor="c")
    figures = quote_redemption(station, local, None, 100)
    assert figures.max_points == 0  # 50 left under the cap, below the minimum of 100
    assert figures.refused is not None and figures.refused.code == "redeem.member_cap"
    refused("redeem.member_cap", lambda: redeem_points(station, local, 100, actor="c"))
    clock.advance(hours=73)  # the allowance has expired: nothing can be redeemed here
    blocked = quote_redemption(station, ELSEWHERE)
    assert blocked.refused is not None and blocked.refused.code == "redeem.no_allowance"


def test_a_stale_snapshot_is_refused_while_a_local_only_member_is_judged_locally(
    station: Station, port: StationSyncPort, chain: Chain, clock: FakeClock
) -> None:
    local = _local_and_elsewhere_with_1000(station, port, chain, max_age_s=600)
    clock.advance(seconds=601)
    refused("redeem.snapshot_stale", lambda: redeem_points(station, ELSEWHERE, 100, actor="c"))
    redeem_points(station, local, 100, actor="c")
    port.record_contact(station.now().isoformat())  # a full pull since: nothing changed
    redeem_points(station, ELSEWHERE, 100, actor="c")


def test_the_deny_list_and_hqs_switch_refuse_redemptions(
    station: Station, port: StationSyncPort, chain: Chain, clock: FakeClock
) -> None:
    local = member(station)
    sale(station, "500", local)
    port.apply_changes(
        page(
            0,
            1,
            deny=[DenyEntry(member_id=local, denied=True, overdraft=40)],
            allowance=allowance(station),
        )
    )
    refused("redeem.denied", lambda: redeem_points(station, local, 100, actor="c"))
    port.apply_changes(
        page(1, 2, deny=[DenyEntry(member_id=local, denied=False)], offline_redemption=False)
    )
    refused("redeem.offline_off", lambda: redeem_points(station, local, 100, actor="c"))
    port.record_contact(station.now().isoformat())
    redeem_points(station, local, 100, actor="c")
    clock.advance(seconds=61)  # max(60 s, 3 x 15 s) without contact
    refused("redeem.offline_off", lambda: redeem_points(station, local, 100, actor="c"))
    assert station_status(station)["sync"]["offline_redemption"] is False


def test_the_chain_view_short_of_the_points_is_insufficient(
    station: Station, port: StationSyncPort, chain: Chain
) -> None:
    port.apply_changes(
        page(
            0,
            1,
            members=[chain.member(ELSEWHERE, "+8613900139000", lots=((250, None),), overdraft=100)],
            allowance=allowance(station),
        )
    )
    refused("points.insufficient", lambda: redeem_points(station, ELSEWHERE, 200, actor="c"))
    assert redeem_points(station, ELSEWHERE, 150, actor="c").balance_after == 0


def _chain_adds_400_to_the_local_100(
    station: Station, port: StationSyncPort, chain: Chain, member_id: str
) -> None:
    """The chain's view of a member who earned 100 points here and 400 elsewhere."""
    port.apply_changes(
        page(
            0,
            1,
            members=[
                chain.member(
                    member_id,
                    "+8613800138000",
                    lots=((100, in_a_year(station)), (400, None)),
                    as_of_seq=high_water(station),
                )
            ],
            allowance=allowance(station),
        )
    )


def _chain_draws(station: Station) -> list[int]:
    with station.store.read() as tx:
        draws = tx.execute("SELECT points FROM chain_draws ORDER BY debit_entry_id").fetchall()
    return [row[0] for row in draws]


def test_a_chain_draw_covers_what_local_lots_lack_and_the_ledger_verifies(
    station: Station, port: StationSyncPort, chain: Chain
) -> None:
    member_id = member(station)
    sale(station, "100", member_id)
    _chain_adds_400_to_the_local_100(station, port, chain, member_id)
    done = redeem_points(station, member_id, 300, actor="c")
    assert done.balance_after == 200
    assert adjust_points(station, member_id, -100, actor="manager1", reason="goodwill back") == 100
    shown = find_member(station, phone="13800138000")
    assert (shown.points, shown.booked_points) == (100, -300)
    assert _chain_draws(station) == [200, 100]
    assert verify_ledger(station) == []
    assert station.store.integrity_problems() == []
    with pytest.raises(sqlite3.DatabaseError, match="append-only"), station.store.write() as tx:
        tx.execute("DELETE FROM chain_draws")


def test_reversing_a_sale_whose_points_were_spent_draws_on_the_chain(
    station: Station, port: StationSyncPort, chain: Chain
) -> None:
    member_id = member(station)
    assert sale(station, "100", member_id) == 100
    sold = list_sales(station, limit=1)[0]
    _chain_adds_400_to_the_local_100(station, port, chain, member_id)
    redeem_points(station, member_id, 150, actor="c")  # the local lot is spent
    reversed_sale = reverse_sale(station, sold.sale_id, actor="manager1", reason="wrong card")
    assert reversed_sale.status == "reversed"
    assert find_member(station, phone="13800138000").points == 500 - 150 - 100
    assert _chain_draws(station) == [50, 100]
    assert verify_ledger(station) == []


def test_a_local_only_member_cannot_have_spent_points_reversed(station: Station) -> None:
    member_id = member(station)
    sale(station, "100", member_id)
    sold = list_sales(station, limit=1)[0]
    adjust_points(station, member_id, -100, actor="manager1", reason="spent")
    refused(
        "points.insufficient",
        lambda: reverse_sale(station, sold.sale_id, actor="manager1", reason="wrong card"),
    )


def test_a_positive_adjustment_event_carries_its_expiry(station: Station) -> None:
    member_id = member(station)
    adjust_points(station, member_id, 50, actor="manager1", reason="goodwill")
    with station.store.read() as tx:
        (event,) = event_for(tx, "points.adjusted", "member_id", member_id)
    assert event.payload["expires_at"].startswith("2027-11-23")


# --- enrolment and keys ----------------------------------------------------------------


def test_enrolment_reseals_members_under_the_chain_keys_and_keeps_the_old_keys(
    station: Station, chain: Chain
) -> None:
    port = StationSyncPort(station)
    member_id = member(station, "13800138000", plates=("京A12345",), name="张三")
    assert find_member(station, phone="13800138000").member_id == member_id
    request = port.enrolment_request()
    assert request is not None
    assert [keys.key_id for keys in request.station_keys] == ["S001-1"]
    assert "encryption_key" not in repr(request)

    port.complete_enrolment(chain.enrolment())
    assert port.enrolment_request() is None
    shown = find_member(station, phone="13800138000")
    assert (shown.member_id, shown.name, shown.plates) == (member_id, "张三", ("京A12345",))
    assert find_member(station, plate="京A12345").member_id == member_id
    with station.store.read() as tx:
        sealed = tx.execute("SELECT phone_sealed, name_sealed FROM members").fetchone()
        (registered,) = event_for(tx, "member.registered", "member_id", member_id)
        plate_sealed = tx.execute("SELECT plate_sealed FROM plates").fetchone()[0]
    assert all(text.startswith("chain-1:") for text in (*sealed, plate_sealed))
    assert registered.payload["phone_sealed"].startswith("S001-1:")
    assert station.decrypt("phone", registered.payload["phone_sealed"]) == "+8613800138000"
    keys_dir = station.settings.station.data_dir / "keys"
    assert (keys_dir / "member-keys-S001-1.json").stat().st_mode & 0o777 == 0o600
    assert json.loads((keys_dir / "member-keys.json").read_text())["key_id"] == "chain-1"
    assert station_status(station)["sync"]["enrolled"] is True

    settings, clock = station.settings, station.clock
    station.close()
    with open_station(settings, clock=clock) as reopened:
        assert find_member(reopened, phone="13800138000").member_id == member_id
        assert reopened.decrypt("phone", registered.payload["phone_sealed"]) == "+8613800138000"
        member(reopened, "13900139000")  # new members are sealed with the chain keys
        with reopened.store.read() as tx:
            newest = tx.execute(
                "SELECT phone_sealed FROM members ORDER BY member_id DESC LIMIT 1"
            ).fetchone()[0]
        assert newest.startswith("chain-1:")


def test_a_rekey_interrupted_after_the_key_files_changed_is_finished_at_open(
    station: Station, chain: Chain
) -> None:
    member_id = member(station, "13800138000", plates=("京A12345",))
    response = chain.enrolment()
    # The first two steps of complete_enrolment, then the process dies before the third.
    with station.store.write() as tx:
        record_enrolment_started(
            tx, chain.keys.key_id, response.signing_key_id, response.signing_public_key
        )
    install_chain_keys(station.settings.station.data_dir, chain.keys)
    settings, clock = station.settings, station.clock
    station.close()

    with open_station(settings, clock=clock) as reopened:
        assert StationSyncPort(reopened).enrolment_request() is None
        assert find_member(reopened, phone="13800138000").member_id == member_id
        assert find_member(reopened, plate="京A12345").member_id == member_id
        with reopened.store.read() as tx:
            sealed = tx.execute("SELECT phone_sealed FROM members").fetchone()[0]
        assert sealed.startswith("chain-1:")
    with open_station(settings, clock=clock) as again:  # idempotent
        assert find_member(again, phone="13800138000").member_id == member_id


def test_enrolling_again_with_the_same_keys_changes_nothing(
    station: Station, port: StationSyncPort, chain: Chain
) -> None:
    member_id = member(station)
    port.complete_enrolment(chain.enrolment())
    assert find_member(station, phone="13800138000").member_id == member_id
    with pytest.raises(ValueError, match="S002"):
        port.complete_enrolment(chain.enrolment("S002"))


# --- the engine over this port, `edge sync`, the daemon --------------------------------


class FakeCloud:
    """The cloud's three sync endpoints, just enough to drive one real engine cycle."""

    def __init__(self, chain: Chain, changes: ChangesResponse) -> None:
        self.chain = chain
        self.changes = changes
        self.pushed: list[int] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer station-token"
        if request.url.path == ENROL_PATH:
            return httpx.Response(200, text=self.chain.enrolment().model_dump_json())
        if request.url.path == EVENTS_PATH:
            body = json.loads(request.content)
            self.pushed += [event["seq"] for event in body["events"]]
            response = _applied(body["events"], epoch=body["epoch"])
            return httpx.Response(200, text=response.model_dump_json())
        assert request.url.path == CHANGES_PATH
        since = int(request.url.params["since"])
        answer = self.changes if since == 0 else page(since, since)
        return httpx.Response(200, text=answer.model_dump_json())


def _cloud_settings(station: Station, url: str) -> StationSettings:
    raw = station.settings.model_dump(mode="json")
    raw["cloud"] = {"url": url, "token": "station-token", "sync_interval_s": 15}
    return StationSettings.model_validate(raw)


def test_one_engine_cycle_enrols_pushes_and_pulls_through_the_port(
    station: Station, chain: Chain
) -> None:
    member(station)
    station.settings = _cloud_settings(station, "https://cloud.test")
    cloud = FakeCloud(
        chain,
        page(
            0,
            4,
            members=[chain.member(ELSEWHERE, "+8613900139000", lots=((600, None),))],
            allowance=allowance(station),
        ),
    )
    result = sync_once(station, transport=httpx.MockTransport(cloud))
    assert result.ok, result.error
    assert (result.pushed, result.pages, result.backlog_after.pending) == (1, 1, 0)
    assert cloud.pushed == [1]
    assert find_member(station, phone="13900139000").points == 600
    sync = station_status(station)["sync"]
    assert (sync["enrolled"], sync["cursor"], sync["backlog"]) == (True, 4, 0)
    assert sync["last_contact"] == station.now().isoformat()


def _edge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOYALPUMP, "edge", *args], capture_output=True, text=True, timeout=60, check=False
    )


def _config(tmp_path: Path, cloud: str) -> str:
    path = tmp_path / "station.toml"
    path.write_text(f'[station]\nid = "S001"\ndata_dir = "data"\n{cloud}', encoding="utf-8")
    assert _edge("init", "--config", str(path)).returncode == 0
    return str(path)


def test_edge_sync_exits_1_with_one_line_when_the_cloud_is_unreachable(tmp_path: Path) -> None:
    config = _config(tmp_path, '[cloud]\nurl = "http://127.0.0.1:9"\ntoken = "station-token"\n')
    result = _edge("sync", "--config", config, "--json")
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "sync failed" in lines[0], result.stderr
    assert json.loads(result.stdout)["ok"] is False


def test_edge_sync_without_a_cloud_url_is_bad_input(tmp_path: Path) -> None:
    config = _config(tmp_path, "")
    result = _edge("sync", "--config", config)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cloud.url is not set" in lines[0], result.stderr


def test_edge_sync_refuses_while_another_process_syncs_this_store(tmp_path: Path) -> None:
    config = _config(tmp_path, '[cloud]\nurl = "http://127.0.0.1:9"\ntoken = "station-token"\n')
    with AgentLock(tmp_path / "data"):  # as `edge run` holds it for its whole life
        result = _edge("sync", "--config", config)
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "in use by loyalpump" in lines[0], result.stderr


def test_a_page_for_another_cursor_is_not_applied(
    station: Station, port: StationSyncPort, chain: Chain
) -> None:
    port.apply_changes(page(0, 5))
    stale = page(0, 3, members=[chain.member(ELSEWHERE, "+8613900139000")])
    with pytest.raises(ValueError, match="cursor 0, the store is at 5"):
        port.apply_changes(stale)  # a second engine's late page must not move the cursor back
    assert port.changes_cursor() == 5
    refused("member.not_found", lambda: find_member(station, phone="13900139000"))


def test_an_enrolled_station_takes_rules_only_from_the_cloud(
    station: Station, port: StationSyncPort
) -> None:
    refused(
        "rules.cloud_managed",
        lambda: install_ruleset(station, _ruleset_v2(), actor="cli:someone"),
    )
    assert ruleset_now(station).version == 1  # type: ignore[union-attr]


def test_the_daemon_syncs_in_its_own_thread_and_stops_it_within_the_budget(
    station: Station,
) -> None:
    settings = _cloud_settings(station, "http://127.0.0.1:9").model_copy(
        update={"web": station.settings.web.model_copy(update={"port": free_port()})}
    )
    station.close()

    async def main() -> float:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(1.0, stop.set)
        started = asyncio.get_running_loop().time()
        await run_station(settings, stop, grace_s=4.0)
        return asyncio.get_running_loop().time() - started

    seen: list[bool] = []
    watcher = threading.Timer(
        0.5, lambda: seen.append(any(t.name == "sync" for t in threading.enumerate()))
    )
    watcher.start()
    asyncio.run(main())
    watcher.join()
    assert seen == [True]
    # run_station waits at most grace_s for the sync thread: gone now means it stopped in time
    assert not any(t.name == "sync" and t.is_alive() for t in threading.enumerate())
