"""Members chain-wide: deterministic merges, plates that move, station-sealed data
translated to the chain's keys, look-ups by phone and plate."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.core.identity import IdentityError, normalize_phone
from cloud_sync.core.privacy import MemberKeys, blind_index, decrypt_field

from .conftest import NOW
from .fake_station import FakeStation, member_id


def _merge_scenario(
    ledger: CloudLedger,
    chain: MemberKeys,
    phone: str,
    plate: str,
    small: str,
    big: str,
    *,
    big_first: bool,
) -> dict[str, Any]:
    """Two stations register one phone offline; the bigger id's member also overdraws."""
    a, b = FakeStation("S001", chain), FakeStation("S002", chain)
    a.seq, b.seq = _next_seq(ledger, "S001"), _next_seq(ledger, "S002")
    allowance = ledger.changes("S001", 0, 1, NOW).allowance
    assert allowance is not None
    a.register(phone, NOW, mid=big)
    a.plate(big, plate, NOW)
    a.sale(big, "100.00", NOW + timedelta(minutes=1))
    a.redeem(big, 150, NOW + timedelta(minutes=2), allowance_id=allowance.allowance_id)
    b.register(phone, NOW + timedelta(minutes=1), mid=small)
    b.sale(small, "40.00", NOW + timedelta(minutes=3))
    pushes = [("S001", a.request()), ("S002", b.request())]
    for station_id, request in pushes if big_first else reversed(pushes):
        response = ledger.push(station_id, request, NOW)
        assert {r.status for r in response.results} == {"applied"}
    # Later events naming the merged member land on the survivor.
    a.sale(big, "10.00", NOW + timedelta(minutes=4))
    ledger.push("S001", a.request(), NOW)
    view = ledger.member(big, NOW)
    assert view is not None
    return view


def _next_seq(ledger: CloudLedger, station_id: str) -> int:
    listed = {s["id"]: s for s in ledger.stations()}
    return int(listed[station_id]["high_water"] or 0)


def test_merge_keeps_the_smallest_id_whatever_the_arrival_order(
    ledger: CloudLedger, station: FakeStation, chain_keys: MemberKeys
) -> None:
    ledger.add_station("S002", None, NOW)
    one = _merge_scenario(
        ledger, chain_keys, "13800138000", "京A12345", member_id(1), member_id(2), big_first=True
    )
    two = _merge_scenario(
        ledger, chain_keys, "13900139000", "粤BD12345", member_id(3), member_id(4), big_first=False
    )
    assert one["member_id"] == member_id(1)
    assert one["merged_from"] == [member_id(2)]
    assert one["plates"] == ["京A12345"]
    assert two["member_id"] == member_id(3)
    assert two["merged_from"] == [member_id(4)]
    assert two["plates"] == ["粤BD12345"]
    shape = ("points", "overdraft", "denied", "lots", "status")
    assert {k: one[k] for k in shape} == {k: two[k] for k in shape}
    assert (one["points"], one["overdraft"], one["denied"]) == (0, 0, False)
    assert one["lots"] == []
    assert ledger.find_member(phone="13800138000", now=NOW)["member_id"] == member_id(1)  # type: ignore[index]
    assert ledger.totals()["members"] == 2

    feed = ledger.changes("S002", 0, 1000, NOW)
    merged = {m.member_id: m for m in feed.members}
    assert merged[member_id(2)].status == "merged"
    assert merged[member_id(2)].merged_into == member_id(1)
    assert merged[member_id(4)].merged_into == member_id(3)
    assert ledger.ledger_problems() == []


def test_a_plate_belongs_to_one_member_and_attaching_moves_it(
    ledger: CloudLedger, station: FakeStation, chain_keys: MemberKeys
) -> None:
    first = station.register("13800138000", NOW)
    second = station.register("13900139000", NOW)
    station.plate(first, "京A12345", NOW)
    station.plate(first, "京B54321", NOW)
    ledger.push("S001", station.request(), NOW)
    cursor = ledger.changes("S001", 0, 1000, NOW).next_cursor
    station.plate(second, "京a·12345", NOW + timedelta(minutes=1), from_member=first)
    ledger.push("S001", station.request(), NOW)

    assert ledger.member(first, NOW)["plates"] == ["京B54321"]  # type: ignore[index]
    assert ledger.member(second, NOW)["plates"] == ["京A12345"]  # type: ignore[index]
    found = ledger.find_member(plate="京A 12345", now=NOW)
    assert found is not None and found["member_id"] == second
    page = ledger.changes("S001", cursor, 1000, NOW)
    deltas = {m.member_id: m for m in page.members}
    assert set(deltas) == {first, second}
    index = blind_index(chain_keys, "plate", "京A12345")
    assert [p.plate_index for p in deltas[second].plates] == [index]
    assert len(deltas[first].plates) == 1
    with pytest.raises(IdentityError):
        ledger.find_member(plate="not a plate", now=NOW)
    assert ledger.ledger_problems() == []


def test_station_sealed_members_are_translated_to_the_chain_keys(
    ledger: CloudLedger, station: FakeStation, chain_keys: MemberKeys
) -> None:
    own = MemberKeys.generate("S002-1")
    ledger.add_station("S002", "never online", NOW)
    ledger.enrol("S002", [own], NOW)
    ledger.enrol("S002", [own], NOW)  # idempotent
    offline = FakeStation("S002", own)
    mid = offline.register("13800138000", NOW, mid=member_id(9), name="王小明")
    offline.plate(mid, "粤BD12345", NOW)
    offline.sale(mid, "40.00", NOW)
    # The same phone was registered online at S001 under the chain's keys, later id.
    station.register("+86 138 0013 8000", NOW, mid=member_id(10))
    ledger.push("S001", station.request(), NOW)
    response = ledger.push("S002", offline.request(), NOW)
    assert {r.status for r in response.results} == {"applied"}

    view = ledger.find_member(phone="13800138000", now=NOW)
    assert view is not None
    assert view["member_id"] == member_id(9)
    assert view["merged_from"] == [member_id(10)]
    assert (view["name"], view["plates"], view["points"]) == ("王小明", ["粤BD12345"], 40)
    assert view["phone_masked"] == "138****8000"
    delta = next(m for m in ledger.changes("S001", 0, 1000, NOW).members if m.member_id == mid)
    assert delta.phone_index == blind_index(chain_keys, "phone", normalize_phone("13800138000"))
    assert delta.phone_sealed is not None and delta.phone_sealed.startswith("chain-1:")
    assert decrypt_field(chain_keys, "phone", delta.phone_sealed) == "+8613800138000"
    assert delta.plates[0].plate_sealed.startswith("chain-1:")
    assert delta.key_id == "chain-1"
    assert ledger.ledger_problems() == []


def test_data_sealed_with_a_key_never_uploaded_is_rejected(
    ledger: CloudLedger, station: FakeStation
) -> None:
    ledger.add_station("S003", None, NOW)
    stranger = FakeStation("S003", MemberKeys.generate("S003-1"))
    stranger.register("13800138000", NOW)
    response = ledger.push("S003", stranger.request(), NOW)
    assert response.results[0].status == "rejected"
    assert (response.results[0].reason or "").startswith("keys.unknown")
    assert response.high_water == 1
    assert ledger.find_member(phone="13800138000", now=NOW) is None
    assert ledger.ledger_problems() == []


def test_tier_changes_and_unknown_members(ledger: CloudLedger, station: FakeStation) -> None:
    mid = station.register("13800138000", NOW)
    station.emit("member.tier_changed", {"member_id": mid, "from": "", "to": "gold"}, NOW)
    ledger.push("S001", station.request(), NOW)
    assert ledger.member(mid, NOW)["tier"] == "gold"  # type: ignore[index]
    assert ledger.member(member_id(999), NOW) is None
    assert ledger.find_member(phone="13700137000", now=NOW) is None
    assert ledger.ledger_problems() == []


def test_a_blind_index_that_does_not_match_the_sealed_value_is_rejected(
    ledger: CloudLedger, station: FakeStation, chain_keys: MemberKeys
) -> None:
    victim = station.register("13800138000", NOW, mid=member_id(20))
    station.plate(victim, "京A12345", NOW)
    ledger.push("S001", station.request(), NOW)

    # A station claims the victim's phone index for a member whose phone is another one
    # (it would merge into the victim), and the victim's plate index for another plate.
    intruder = station.register("13900139000", NOW, mid=member_id(5))
    station.events[-1]["payload"]["phone_index"] = blind_index(
        chain_keys, "phone", normalize_phone("13800138000")
    )
    honest = station.register("13700137000", NOW, mid=member_id(6))
    station.plate(honest, "粤BD12345", NOW)
    station.events[-1]["payload"]["plate_index"] = blind_index(chain_keys, "plate", "京A12345")
    # The same lie under a station's own uploaded key.
    own = MemberKeys.generate("S002-1")
    ledger.add_station("S002", None, NOW)
    ledger.enrol("S002", [own], NOW)
    offline = FakeStation("S002", own)
    offline.register("13600136000", NOW, mid=member_id(7))
    offline.events[-1]["payload"]["phone_index"] = blind_index(
        own, "phone", normalize_phone("13800138000")
    )

    response = ledger.push("S001", station.request(), NOW)
    reasons = [(r.status, (r.reason or "").split(":")[0]) for r in response.results]
    assert reasons == [
        ("rejected", "member.index_mismatch"),
        ("applied", ""),
        ("rejected", "member.index_mismatch"),
    ]
    response = ledger.push("S002", offline.request(), NOW)
    assert (response.results[0].reason or "").startswith("member.index_mismatch")

    view = ledger.member(victim, NOW)
    assert view is not None
    assert (view["merged_from"], view["plates"]) == ([], ["京A12345"])
    assert ledger.member(intruder, NOW) is None
    assert ledger.member(honest, NOW)["plates"] == []  # type: ignore[index]
    assert ledger.find_member(phone="13800138000", now=NOW)["member_id"] == victim  # type: ignore[index]
    assert ledger.ledger_problems() == []
