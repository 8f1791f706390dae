"""Push semantics: exactly once, in order, never blocked by one bad event."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import create_engine, text

from cloud_sync.cloud.ledger import CloudLedger, EventConflict, LedgerError, SequenceGap

from .conftest import NOW
from .fake_station import FakeStation


def test_push_applies_and_replay_answers_the_stored_results(
    ledger: CloudLedger, station: FakeStation
) -> None:
    mid = station.register("13800138000", NOW)
    station.sale(mid, "40.00", NOW + timedelta(minutes=5))
    station.sale(None, "10.00", NOW + timedelta(minutes=6))
    request = station.request()

    first = ledger.push("S001", request, NOW)
    assert first.high_water == 3
    assert [r.status for r in first.results] == ["applied"] * 3
    assert ledger.member(mid, NOW)["points"] == 40  # type: ignore[index]

    again = ledger.push("S001", request, NOW)
    assert again.high_water == 3
    assert [r.status for r in again.results] == ["duplicate"] * 3
    assert [r.event_id for r in again.results] == [r.event_id for r in first.results]
    assert ledger.member(mid, NOW)["points"] == 40  # type: ignore[index]
    totals = ledger.totals()
    assert totals["events_applied"] == 3
    assert totals["events_duplicate"] == 3
    assert ledger.stations()[0]["high_water"] == 3
    assert ledger.ledger_problems() == []


def test_same_event_id_with_another_payload_is_a_conflict(
    ledger: CloudLedger, station: FakeStation
) -> None:
    mid = station.register("13800138000", NOW)
    station.sale(mid, "40.00", NOW)
    request = station.request()
    ledger.push("S001", request, NOW)
    altered = [dict(e) for e in request.events]
    altered[1] = {**altered[1], "payload": {**altered[1]["payload"], "points": 400}}

    with pytest.raises(EventConflict) as caught:
        ledger.push("S001", station.request(altered), NOW)
    assert caught.value.event_id == altered[1]["event_id"]
    assert caught.value.code == "event_conflict"
    assert ledger.member(mid, NOW)["points"] == 40  # type: ignore[index]
    assert ledger.ledger_problems() == []


def test_a_gap_answers_the_expected_sequence_and_writes_nothing(
    ledger: CloudLedger, station: FakeStation
) -> None:
    mid = station.register("13800138000", NOW)
    ledger.push("S001", station.request(), NOW)
    station.sale(mid, "40.00", NOW)  # seq 2, lost on the way
    station.request()
    station.sale(mid, "20.00", NOW)  # seq 3

    with pytest.raises(SequenceGap) as caught:
        ledger.push("S001", station.request(), NOW)
    assert (caught.value.expected_seq, caught.value.epoch) == (2, 1)
    assert ledger.member(mid, NOW)["points"] == 0  # type: ignore[index]
    assert ledger.ledger_problems() == []


def test_a_sequence_number_reused_for_another_event_is_a_conflict(
    ledger: CloudLedger, station: FakeStation
) -> None:
    mid = station.register("13800138000", NOW)
    ledger.push("S001", station.request(), NOW)
    station.seq = 0  # the station forgot it already used seq 1
    station.sale(mid, "40.00", NOW)
    request = station.request()

    with pytest.raises(EventConflict) as caught:
        ledger.push("S001", request, NOW)
    assert caught.value.event_id == request.events[0]["event_id"]
    assert ledger.ledger_problems() == []


def test_bad_events_are_rejected_quarantined_and_never_block_the_queue(
    ledger: CloudLedger, station: FakeStation
) -> None:
    mid = station.register("13800138000", NOW)
    station.emit("sale.recorded", {"sale_id": "x"}, NOW)  # payload missing its fields
    station.emit("coupon.issued", {"member_id": mid}, NOW)  # a kind this cloud does not know
    # A well-formed event naming a member the chain does not know. (A payload that is not a
    # valid event of its kind is rejected as payload.* before the ledger looks anything up.)
    station.redeem("nobody", 100, NOW, redemption_id="r")
    broken = station.emit("points.adjusted", {}, NOW)
    broken.pop("created_at")  # the envelope itself is malformed, but id and seq are readable
    station.sale(mid, "40.00", NOW)

    response = ledger.push("S001", station.request(), NOW)
    assert response.high_water == 6
    statuses = [(r.status, (r.reason or "").split(":")[0]) for r in response.results]
    assert statuses == [
        ("applied", ""),
        ("rejected", "payload.missing"),
        ("rejected", "kind.unknown"),
        ("rejected", "member.unknown"),
        ("rejected", "envelope.invalid"),
        ("applied", ""),
    ]
    quarantine = ledger.quarantined()
    assert len(quarantine) == 4
    assert {q["kind"] for q in quarantine} >= {"coupon.issued", "sale.recorded"}
    assert all(q["reason"] for q in quarantine)
    assert ledger.member(mid, NOW)["points"] == 40  # type: ignore[index]
    assert ledger.totals()["events_rejected"] == 4
    assert ledger.ledger_problems() == []


def test_unreadable_envelope_refuses_the_batch(ledger: CloudLedger, station: FakeStation) -> None:
    station.register("13800138000", NOW)
    request = station.request()
    events = [{"kind": "member.registered", "payload": {}}]  # no event id, no seq
    with pytest.raises(LedgerError) as caught:
        ledger.push("S001", station.request([*request.events, *events]), NOW)
    assert caught.value.code == "batch.invalid"
    with pytest.raises(LedgerError) as mismatch:
        ledger.push("S002", request, NOW)
    assert mismatch.value.code == "station.mismatch"


def test_a_new_epoch_starts_at_its_declared_first_sequence(
    ledger: CloudLedger, station: FakeStation
) -> None:
    mid = station.register("13800138000", NOW)
    ledger.push("S001", station.request(), NOW)
    station.epoch, station.seq = 2, 40  # restored from a backup: epoch 2 starts at 41
    station.sale(mid, "40.00", NOW)
    response = ledger.push("S001", station.request(epoch_first_seq=41), NOW)
    assert (response.epoch, response.high_water) == (2, 41)
    listed = ledger.stations()[0]
    assert listed["epochs"] == [{"epoch": 1, "high_water": 1}, {"epoch": 2, "high_water": 41}]
    assert ledger.ledger_problems() == []


def _sale_with(station: FakeStation, mid: str, **changes: object) -> None:
    """A sale priced normally, then altered the way a faulty station might send it."""
    station.sale(mid, "40.00", NOW)
    payload = station.events[-1]["payload"]
    for key, value in changes.items():
        if key == "earn_points":
            payload["ledger"][0]["points"] = value
        else:
            payload[key] = value


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"grade": "9" * 40}, "grade"),
        ({"points": 2**70, "earn_points": 2**70}, "points"),
        ({"points": 2**53, "earn_points": 2**53}, "points"),
        ({"tier": "t" * 40}, "tier"),
        ({"litres": "1e30"}, "litres"),
        ({"ruleset_version": 2**70}, "ruleset_version"),
        ({"ended_at": "9999-12-31T23:59:59+00:00"}, "ended_at"),
    ],
)
def test_values_no_column_could_hold_are_rejected_and_the_queue_goes_on(
    ledger: CloudLedger, station: FakeStation, changes: dict[str, object], field: str
) -> None:
    mid = station.register("13800138000", NOW)
    _sale_with(station, mid, **changes)
    station.sale(mid, "40.00", NOW)
    response = ledger.push("S001", station.request(), NOW)
    assert response.high_water == 3
    assert [r.status for r in response.results] == ["applied", "rejected", "applied"]
    reason = response.results[1].reason or ""
    assert reason.startswith("payload.invalid") and repr(field) in reason
    assert ledger.member(mid, NOW)["points"] == 40  # type: ignore[index]
    assert ledger.ledger_problems() == []


def test_oversized_redemptions_adjustments_and_envelopes_never_fail_the_database(
    ledger: CloudLedger, station: FakeStation
) -> None:
    mid = station.register("13800138000", NOW)
    station.redeem(mid, 2**70, NOW)
    station.emit(
        "points.redeemed",
        {"redemption_id": "r" * 65, "member_id": mid, "points": 1, "value_fen": 1, "at": "x"},
        NOW,
    )
    station.adjust(mid, -(2**70), NOW)
    station.adjust(mid, 5, NOW, expires_at="0001-01-01T00:00:00+05:00")
    station.adjust(mid, 5, NOW)
    response = ledger.push("S001", station.request(), NOW)
    assert [r.status for r in response.results] == ["applied"] + ["rejected"] * 4 + ["applied"]
    assert ledger.member(mid, NOW)["points"] == 5  # type: ignore[index]

    station.seq = 2**70 - 1
    station.sale(mid, "40.00", NOW)
    with pytest.raises(LedgerError) as caught:
        ledger.push("S001", station.request(), NOW)
    assert caught.value.code == "batch.invalid"
    station.epoch, station.seq = 2**60, 0
    station.sale(mid, "40.00", NOW)
    with pytest.raises(LedgerError) as epoch:
        ledger.push("S001", station.request(), NOW)
    assert epoch.value.code == "batch.invalid"
    assert ledger.ledger_problems() == []


def test_the_cloud_keeps_the_dispensers_facts_of_new_and_0_6_sales(
    ledger: CloudLedger, station: FakeStation, cloud_db_url: str
) -> None:
    mid = station.register("13800138000", NOW)
    new = station.sale(mid, "40.00", NOW)
    old = station.sale(None, "10.00", NOW)
    payload = station.events[-1]["payload"]
    payload["pump"] = payload.pop("fuelling_point") + 6  # as 0.6 wrote it
    payload["nozzle"] = None
    response = ledger.push("S001", station.request(), NOW)
    assert [r.status for r in response.results] == ["applied"] * 3
    engine = create_engine(cloud_db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT sale_id, source, source_key, fuelling_point, nozzle FROM sales")
            ).all()
    finally:
        engine.dispose()
    assert {row.sale_id: tuple(row)[1:] for row in rows} == {
        new: ("dart", f"dart:S001:{new}", 1, 1),
        old: ("dart", f"dart:S001:{old}", 7, None),
    }
