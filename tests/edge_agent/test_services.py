"""Station use cases on a real store: members, sales and their points, tiers, redemption."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from edge_agent.errors import ServiceError
from edge_agent.services.members import add_plate, find_member, register_member
from edge_agent.services.points import adjust_points, expire_points, redeem_points, verify_ledger
from edge_agent.services.rules import install_ruleset
from edge_agent.services.sales import (
    SaleInput,
    attach_member,
    list_sales,
    record_sale,
    reverse_sale,
)
from edge_agent.services.station import Station
from edge_agent.services.tiers import recalculate_tiers
from edge_agent.store.audit import audit_entries
from edge_agent.store.outbox import event_for, pending_events
from tests.support import RULESETS, SHANGHAI, FakeClock


def _member(station: Station, phone: str = "13800138000", plates: tuple[str, ...] = ()) -> str:
    view = register_member(
        station, phone=phone, plates=plates, consent_channel="test", actor="cashier1"
    )
    return view.member_id


def _sale(
    station: Station,
    litres: str,
    *,
    member_id: str | None = None,
    grade: str = "92",
    at: datetime | None = None,
    key: str | None = None,
) -> SaleInput:
    return SaleInput(
        source="dart" if key else "manual",
        source_key=key,
        pump=1,
        nozzle=1,
        grade=grade,
        litres=Decimal(litres),
        amount=(Decimal(litres) * Decimal("7.50")).quantize(Decimal("0.01")),
        ended_at=at or station.now(),
        member_id=member_id,
        actor=None if key else "cashier1",
    )


# --- members ---------------------------------------------------------------------------


def test_register_and_find_by_phone_in_any_format_and_by_plate(station: Station) -> None:
    member_id = _member(station, "+86 138-0013-8000", plates=("粤b·d12345", "京A12345"))
    by_phone = find_member(station, phone="13800138000")
    by_plate = find_member(station, plate="粤BD12345")
    by_query = find_member(station, q="京a12345")
    assert by_phone.member_id == by_plate.member_id == by_query.member_id == member_id
    assert by_phone.phone_masked == "138****8000"
    assert sorted(by_phone.plates) == ["京A12345", "粤BD12345"]


def test_registration_records_consent_and_queues_the_member_for_the_cloud(
    station: Station,
) -> None:
    member_id = _member(station)
    with station.store.read() as tx:
        audit = audit_entries(tx, member_id)
        events = event_for(tx, "member.registered", "member_id", member_id)
    assert audit[0]["action"] == "member.registered"
    assert audit[0]["details"]["consent_channel"] == "test"
    assert len(events) == 1
    assert "13800138000" not in str(events[0].payload)  # sealed, never in clear


def test_same_phone_cannot_register_twice(station: Station) -> None:
    _member(station)
    with pytest.raises(ServiceError) as refused:
        _member(station, "138 0013 8000")
    assert refused.value.code == "member.exists"


@pytest.mark.parametrize(
    ("phone", "code"),
    [("1380013800a", "phone.letters"), ("12345", "phone.length"), ("01012345678", "phone.invalid")],
)
def test_invalid_phone_is_refused_with_a_code(station: Station, phone: str, code: str) -> None:
    with pytest.raises(ServiceError) as refused:
        _member(station, phone)
    assert refused.value.code == code


def test_a_plate_belongs_to_one_member_and_moves_only_on_request(station: Station) -> None:
    first = _member(station, "13800138000", plates=("京A12345",))
    second = _member(station, "13900139000")
    with pytest.raises(ServiceError) as refused:
        add_plate(station, second, "京A12345", actor="m")
    assert refused.value.code == "plate.taken"
    assert find_member(station, plate="京A12345").member_id == first
    add_plate(station, second, "京A12345", actor="manager1", move=True)
    assert find_member(station, plate="京A12345").member_id == second
    assert find_member(station, phone="13800138000").plates == ()


def test_unknown_member_is_not_found(station: Station) -> None:
    with pytest.raises(ServiceError) as refused:
        find_member(station, plate="沪B99999")
    assert refused.value.code == "member.not_found"


# --- sales and points ------------------------------------------------------------------


def test_field_examples_92_gasoline_and_0_diesel(station: Station) -> None:
    member_id = _member(station)
    gasoline = record_sale(station, _sale(station, "40", member_id=member_id))
    diesel = record_sale(station, _sale(station, "41", member_id=member_id, grade="0"))
    assert gasoline.sale.points == 40  # 1 point per litre
    assert diesel.sale.points == 20  # 1 point per 2 litres, floor(20.5)
    assert find_member(station, phone="13800138000").points == 60


def test_tuesday_member_day_doubles_points(station: Station, clock: FakeClock) -> None:
    member_id = _member(station)
    tuesday = datetime(2026, 11, 24, 20, 0, tzinfo=SHANGHAI)
    outcome = record_sale(
        station, _sale(station, "40", member_id=member_id, at=tuesday, key="dart:tuesday")
    )
    assert outcome.sale.points == 80
    assert outcome.sale.receipt is not None
    assert outcome.sale.receipt["bonus_name"] == "周二会员日"


def test_a_driver_sale_seen_twice_is_recorded_once(station: Station) -> None:
    member_id = _member(station)
    first = record_sale(station, _sale(station, "30", member_id=member_id, key="dart:S001:P1:7"))
    again = record_sale(station, _sale(station, "30", member_id=member_id, key="dart:S001:P1:7"))
    assert first.created and not again.created
    assert again.sale.sale_id == first.sale.sale_id
    assert find_member(station, phone="13800138000").points == 30
    assert len(list_sales(station, 10)) == 1


def test_sale_ledger_and_outbox_event_commit_together(station: Station) -> None:
    member_id = _member(station)
    outcome = record_sale(station, _sale(station, "12.34", member_id=member_id))
    with station.store.read() as tx:
        events = event_for(tx, "sale.recorded", "sale_id", outcome.sale.sale_id)
    assert len(events) == 1
    payload = events[0].payload
    assert payload["litres"] == "12.34"
    assert payload["points"] == 12
    assert payload["ledger"][0]["points"] == 12
    assert verify_ledger(station) == []


def test_outbox_sequence_is_dense_and_ids_are_time_ordered(station: Station) -> None:
    member_id = _member(station)
    for litres in ("10", "20", "30"):
        record_sale(station, _sale(station, litres, member_id=member_id))
    with station.store.read() as tx:
        events = pending_events(tx, 100)
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert [event.event_id for event in events] == sorted(event.event_id for event in events)


def test_manual_sale_is_audited_with_who_keyed_it(station: Station) -> None:
    outcome = record_sale(station, _sale(station, "20"))
    with station.store.read() as tx:
        audit = audit_entries(tx, outcome.sale.sale_id)
    assert outcome.sale.source == "manual"
    assert audit[0]["action"] == "sale.manual"
    assert audit[0]["actor"] == "cashier1"


@pytest.mark.parametrize(
    ("litres", "amount", "code"),
    [
        ("1.2345", "10.00", "sale.litres"),
        ("10", "10.001", "sale.amount"),
        ("-1", "5", "sale.litres"),
    ],
)
def test_bad_quantities_are_refused(station: Station, litres: str, amount: str, code: str) -> None:
    sale = SaleInput(
        source="manual",
        pump=1,
        grade="92",
        litres=Decimal(litres),
        amount=Decimal(amount),
        ended_at=station.now(),
        actor="c",
    )
    with pytest.raises(ServiceError) as refused:
        record_sale(station, sale)
    assert refused.value.code == code
    assert list_sales(station, 10) == []


def test_attach_member_later_prices_at_the_sale_time_and_first_cashier_wins(
    station: Station, clock: FakeClock
) -> None:
    tuesday = datetime(2026, 11, 24, 23, 50, tzinfo=SHANGHAI)
    clock.now = tuesday
    sale = record_sale(station, _sale(station, "25", key="ifsf:fdc1:1:42"))
    assert sale.sale.member_id is None and sale.sale.points == 0
    first = _member(station, "13800138000")
    second = _member(station, "13900139000")
    clock.advance(minutes=15)  # Wednesday now; the sale still ended on member day
    attached = attach_member(station, sale.sale.sale_id, first, actor="cashier1")
    assert attached.sale.points == 50
    with pytest.raises(ServiceError) as refused:
        attach_member(station, sale.sale.sale_id, second, actor="cashier2")
    assert refused.value.code == "sale.already_attached"
    assert find_member(station, phone="13900139000").points == 0
    assert verify_ledger(station) == []


def test_attaching_a_member_is_refused_after_the_window(station: Station, clock: FakeClock) -> None:
    sale = record_sale(station, _sale(station, "25", key="dart:link1:50:1:1234.56"))
    member_id = _member(station)
    clock.advance(minutes=31)
    with pytest.raises(ServiceError) as refused:
        attach_member(station, sale.sale.sale_id, member_id, actor="cashier1")
    assert refused.value.code == "sale.attach_window"


# --- tiers -----------------------------------------------------------------------------


def test_crossing_a_threshold_upgrades_from_the_next_sale(
    station: Station, clock: FakeClock
) -> None:
    member_id = _member(station)
    monday = clock.now
    first = record_sale(
        station, _sale(station, "990", member_id=member_id, at=monday, key="dart:big:1")
    )
    later = monday + timedelta(hours=1)
    crossing = record_sale(
        station, _sale(station, "20", member_id=member_id, at=later, key="dart:crossing")
    )
    after = record_sale(
        station,
        _sale(station, "10", member_id=member_id, at=later + timedelta(hours=1), key="dart:after"),
    )
    assert (first.sale.tier, crossing.sale.tier, after.sale.tier) == ("standard", "silver", "gold")
    assert after.sale.points == 15  # gold x1.5
    assert crossing.sale.points == 20


def test_tier_falls_when_the_window_rolls_past(station: Station, clock: FakeClock) -> None:
    member_id = _member(station)
    record_sale(station, _sale(station, "400", member_id=member_id, key="dart:big:2"))
    clock.advance(hours=1)
    assert find_member(station, phone="13800138000").tier == "silver"
    assert [c.new for c in recalculate_tiers(station)] == ["silver"]
    clock.advance(days=91)
    changes = recalculate_tiers(station)
    assert [(c.old, c.new) for c in changes] == [("silver", "standard")]
    assert recalculate_tiers(station) == []  # idempotent
    assert find_member(station, phone="13800138000").tier == "standard"


def test_new_member_trial_tier_from_the_sample_rule_set(station: Station, clock: FakeClock) -> None:
    install_ruleset(station, (RULESETS / "sample.json").read_bytes(), actor="test")
    member_id = _member(station)
    trial = record_sale(station, _sale(station, "10", member_id=member_id))
    assert trial.sale.tier == "silver"
    assert trial.sale.ruleset_version == 3
    clock.advance(days=31)
    later = record_sale(station, _sale(station, "10", member_id=member_id))
    assert later.sale.tier == "standard"


# --- redemption, adjustment, reversal, expiry ------------------------------------------


def test_redeem_spends_points_for_yuan_and_refuses_beyond_balance(station: Station) -> None:
    member_id = _member(station)
    record_sale(station, _sale(station, "250", member_id=member_id, key="dart:big:3"))
    redemption = redeem_points(station, member_id, 200, actor="cashier1")
    assert (redemption.value_fen, redemption.balance_after) == (200, 50)
    with pytest.raises(ServiceError) as refused:
        redeem_points(station, member_id, 100, actor="cashier1")
    assert refused.value.code == "points.insufficient"
    with pytest.raises(ServiceError) as too_small:
        redeem_points(station, member_id, 50, actor="cashier1")
    assert too_small.value.code == "redeem.min_points"
    assert find_member(station, phone="13800138000").points == 50


def test_a_retried_redemption_is_booked_once(station: Station) -> None:
    member_id = _member(station)
    record_sale(station, _sale(station, "500", member_id=member_id, key="dart:big:4"))
    first = redeem_points(station, member_id, 100, actor="c", redemption_id="r-1")
    retry = redeem_points(station, member_id, 100, actor="c", redemption_id="r-1")
    assert first.created and not retry.created
    assert find_member(station, phone="13800138000").points == 400
    with pytest.raises(ServiceError) as conflict:
        redeem_points(station, member_id, 200, actor="c", redemption_id="r-1")
    assert conflict.value.code == "redeem.conflict"


def test_points_expire_after_twelve_months_oldest_first(station: Station, clock: FakeClock) -> None:
    member_id = _member(station)
    record_sale(station, _sale(station, "100", member_id=member_id))
    clock.advance(days=200)
    record_sale(station, _sale(station, "50", member_id=member_id))
    redeem_points(station, member_id, 120, actor="c")  # 100 from the old lot, 20 from the new
    clock.advance(days=170)  # the first lot is past its 12 months; nothing left in it anyway
    assert find_member(station, phone="13800138000").points == 30
    clock.advance(days=200)  # now the second lot has expired too, before the job ran
    assert find_member(station, phone="13800138000").points == 0
    assert expire_points(station) == 30
    assert expire_points(station) == 0
    assert find_member(station, phone="13800138000").booked_points == 0
    assert verify_ledger(station) == []


def test_adjustments_need_a_reason_and_are_audited(station: Station) -> None:
    member_id = _member(station)
    with pytest.raises(ServiceError):
        adjust_points(station, member_id, 50, actor="manager1", reason=" ")
    assert adjust_points(station, member_id, 50, actor="manager1", reason="goodwill") == 50
    with pytest.raises(ServiceError) as refused:
        adjust_points(station, member_id, -60, actor="manager1", reason="typo")
    assert refused.value.code == "points.insufficient"
    assert adjust_points(station, member_id, -20, actor="manager1", reason="typo") == 30
    with station.store.read() as tx:
        actions = [(e["actor"], e["details"]["reason"]) for e in audit_entries(tx, member_id)[1:]]
    assert actions == [("manager1", "goodwill"), ("manager1", "typo")]


def test_reversal_takes_back_the_sale_points_and_its_tier_credit(station: Station) -> None:
    member_id = _member(station)
    record_sale(station, _sale(station, "100", member_id=member_id))
    big = record_sale(station, _sale(station, "300", member_id=member_id, key="dart:big:5"))
    reversed_sale = reverse_sale(station, big.sale.sale_id, actor="manager1", reason="pump test")
    assert reversed_sale.status == "reversed"
    member = find_member(station, phone="13800138000")
    assert (member.points, member.tier) == (100, "standard")
    with pytest.raises(ServiceError) as twice:
        reverse_sale(station, big.sale.sale_id, actor="manager1", reason="again")
    assert twice.value.code == "sale.reversed"
    assert verify_ledger(station) == []
