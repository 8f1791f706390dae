"""`sale.detached` in the chain ledger, on SQLite and PostgreSQL: an attach undone at a
till takes the member's points back once, the sale is attached again to the right member,
and duplicates, gaps, a refused attach, another station's or another member's undo and a
late one all leave the ledger healthy."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import create_engine, text

from cloud_sync.cloud.ledger import CloudLedger, SequenceGap, TrustPolicy, aggregates_ledger
from cloud_sync.core.privacy import MemberKeys
from cloud_sync.core.wire import PushResponse

from .conftest import NOW
from .fake_station import RULES_TEXT, FakeStation


def _points(ledger: CloudLedger, mid: str) -> int:
    view = ledger.member(mid, NOW)
    assert view is not None
    return int(view["points"])


def _statuses(response: PushResponse) -> list[tuple[str, str]]:
    return [(r.status, (r.reason or "").split(":")[0]) for r in response.results]


def _sale_row(url: str, sale_id: str) -> tuple[str | None, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT member_id, points FROM sales WHERE sale_id = :s"), {"s": sale_id}
            ).one()
    finally:
        engine.dispose()
    return row[0], int(row[1])


def _healthy(ledger: CloudLedger) -> None:
    assert ledger.ledger_problems() == []
    assert ledger.db.read(aggregates_ledger.check) == []


def test_an_undone_attach_moves_the_points_to_the_right_member(
    ledger: CloudLedger, station: FakeStation, cloud_db_url: str
) -> None:
    wrong = station.register("13800138000", NOW)
    right = station.register("13900139000", NOW)
    sale = station.sale(None, "40.00", NOW)
    station.attach(sale, wrong, "40.00", NOW + timedelta(minutes=1))
    assert _statuses(ledger.push("S001", station.request(), NOW))[-1] == ("applied", "")
    assert _points(ledger, wrong) == 40

    station.detach(sale, wrong, 40, NOW + timedelta(minutes=2))
    assert _statuses(ledger.push("S001", station.request(), NOW)) == [("applied", "")]
    assert (_points(ledger, wrong), _sale_row(cloud_db_url, sale)) == (0, (None, 0))

    station.attach(sale, right, "40.00", NOW + timedelta(minutes=3))
    assert _statuses(ledger.push("S001", station.request(), NOW)) == [("applied", "")]
    assert (_points(ledger, wrong), _points(ledger, right)) == (0, 40)
    assert _sale_row(cloud_db_url, sale) == (right, 40)
    assert ledger.totals()["events_rejected"] == 0
    _healthy(ledger)

    # A reversal now takes back the right member's points, not the undone lot again.
    station.reverse(sale, right, 40, NOW + timedelta(minutes=4))
    ledger.push("S001", station.request(), NOW)
    assert (_points(ledger, wrong), _points(ledger, right)) == (0, 0)
    _healthy(ledger)


def test_attach_undo_and_attach_again_in_one_batch_and_its_replay(
    ledger: CloudLedger, station: FakeStation
) -> None:
    wrong = station.register("13800138000", NOW)
    right = station.register("13900139000", NOW)
    station.sale(wrong, "10.00", NOW - timedelta(hours=1))  # the same day: a visit that stays
    sale = station.sale(None, "25.00", NOW)
    station.attach(sale, wrong, "25.00", NOW + timedelta(minutes=1))
    station.detach(sale, wrong, 25, NOW + timedelta(minutes=2))
    station.attach(sale, right, "25.00", NOW + timedelta(minutes=2))
    station.detach(sale, right, 25, NOW + timedelta(minutes=3), attach_no=2)
    station.attach(sale, wrong, "25.00", NOW + timedelta(minutes=4))
    request = station.request()
    first = ledger.push("S001", request, NOW)
    assert all(status == "applied" for status, _ in _statuses(first))
    assert (_points(ledger, wrong), _points(ledger, right)) == (35, 0)

    replay = ledger.push("S001", request, NOW)  # the station never heard the answer
    assert {status for status, _ in _statuses(replay)} == {"duplicate"}
    assert (_points(ledger, wrong), _points(ledger, right)) == (35, 0)
    assert ledger.totals()["events_duplicate"] == len(request.events)
    _healthy(ledger)


def test_an_undo_sent_ahead_of_its_attach_is_a_gap_not_a_guess(
    ledger: CloudLedger, station: FakeStation
) -> None:
    wrong = station.register("13800138000", NOW)
    sale = station.sale(None, "40.00", NOW)
    ledger.push("S001", station.request(), NOW)
    station.attach(sale, wrong, "40.00", NOW + timedelta(minutes=1))
    station.detach(sale, wrong, 40, NOW + timedelta(minutes=2))
    attach_event, detach_event = station.request().events
    with pytest.raises(SequenceGap) as gap:
        ledger.push("S001", station.request([detach_event]), NOW)
    assert gap.value.expected_seq == attach_event["seq"]
    assert _points(ledger, wrong) == 0

    answered = ledger.push("S001", station.request([detach_event, attach_event]), NOW)
    assert [r.seq for r in answered.results] == [attach_event["seq"], detach_event["seq"]]
    assert _points(ledger, wrong) == 0
    _healthy(ledger)


def test_the_undo_of_an_attach_the_cloud_refused_is_refused_and_the_right_attach_lands(
    ledger: CloudLedger, station: FakeStation, chain_keys: MemberKeys
) -> None:
    right = station.register("13900139000", NOW)
    sale = station.sale(None, "30.00", NOW)
    ledger.push("S001", station.request(), NOW)
    unknown = "01900000-0000-7000-8000-999999999999"  # a member the cloud never heard of
    station.attach(sale, unknown, "30.00", NOW + timedelta(minutes=1))
    station.detach(sale, unknown, 30, NOW + timedelta(minutes=2))
    station.attach(sale, right, "30.00", NOW + timedelta(minutes=3))
    assert _statuses(ledger.push("S001", station.request(), NOW)) == [
        ("rejected", "member.unknown"),
        ("rejected", "sale.not_attached"),
        ("applied", ""),
    ]
    assert _points(ledger, right) == 30
    _healthy(ledger)


def test_only_the_recording_station_undoes_and_only_the_member_on_the_sale(
    ledger: CloudLedger, station: FakeStation, chain_keys: MemberKeys
) -> None:
    ledger.add_station("S002", "Station two", NOW)
    ledger.enrol("S002", [], NOW)
    thief = FakeStation("S002", chain_keys)
    member = station.register("13800138000", NOW)
    other = station.register("13900139000", NOW)
    sale = station.sale(member, "500.00", NOW)
    ledger.push("S001", station.request(), NOW)

    thief.detach(sale, member, 500, NOW + timedelta(minutes=1))
    assert _statuses(ledger.push("S002", thief.request(), NOW)) == [
        ("rejected", "sale.foreign_station")
    ]
    station.detach(sale, other, 500, NOW + timedelta(minutes=1))
    assert _statuses(ledger.push("S001", station.request(), NOW)) == [
        ("rejected", "sale.other_member")
    ]
    assert _points(ledger, member) == 500
    assert [f["code"] for f in ledger.station_flags("S002")] == ["sale.foreign_station"]
    _healthy(ledger)


def test_a_late_undo_is_refused_and_shown_to_hq(cloud_db_url: str, chain_keys: MemberKeys) -> None:
    ledger = CloudLedger.open(
        cloud_db_url, chain_keys=chain_keys, trust=TrustPolicy(detach_window_s=3600)
    )
    try:
        ledger.add_station("S001", "Station one", NOW)
        ledger.enrol("S001", [], NOW)
        ledger.publish_ruleset(RULES_TEXT, "c2lnbmF0dXJl", "test-key", NOW)
        station = FakeStation("S001", chain_keys)
        member = station.register("13800138000", NOW)
        sale = station.sale(None, "40.00", NOW)
        station.attach(sale, member, "40.00", NOW + timedelta(minutes=1))
        station.detach(sale, member, 40, NOW + timedelta(minutes=62))
        assert _statuses(ledger.push("S001", station.request(), NOW))[-1] == (
            "rejected",
            "detach.late",
        )
        assert _points(ledger, member) == 40
        (flag,) = ledger.station_flags("S001")
        assert flag["code"] == "detach.late"
        assert not any(row["suspended"] for row in ledger.review_list())
        _healthy(ledger)
    finally:
        ledger.close()


def test_points_spent_before_the_undo_are_written_off_not_owed(
    ledger: CloudLedger, station: FakeStation
) -> None:
    member = station.register("13800138000", NOW)
    right = station.register("13900139000", NOW)
    allowance = ledger.changes("S001", 0, 10, NOW).allowance
    assert allowance is not None
    sale = station.sale(None, "300.00", NOW)
    station.attach(sale, member, "300.00", NOW + timedelta(minutes=1))
    station.redeem(member, 200, NOW + timedelta(minutes=2), allowance_id=allowance.allowance_id)
    ledger.push("S001", station.request(), NOW)
    assert _points(ledger, member) == 100

    station.detach(sale, member, 300, NOW + timedelta(minutes=3))
    station.attach(sale, right, "300.00", NOW + timedelta(minutes=4))
    ledger.push("S001", station.request(), NOW)
    view = ledger.member(member, NOW)
    assert view is not None
    assert (view["points"], view["overdraft"], view["denied"]) == (0, 0, False)
    assert _points(ledger, right) == 300
    _healthy(ledger)


def test_hqs_visits_follow_the_undo(
    ledger: CloudLedger, station: FakeStation, chain_keys: MemberKeys
) -> None:
    """The wrong member's visit goes unless another sale of theirs that day remains; the
    day's active members, and their first and last sale times, follow."""
    ledger.add_station("S002", "Station two", NOW)
    ledger.enrol("S002", [], NOW)
    two = FakeStation("S002", chain_keys)
    regular = station.register("13800138000", NOW)
    passer = station.register("13900139000", NOW)
    ledger.push("S001", station.request(), NOW)
    station.sale(regular, "10.00", NOW - timedelta(hours=1))  # a real visit that day, here
    two.sale(passer, "10.00", NOW - timedelta(hours=2))  # a real visit that day, elsewhere
    first = station.sale(None, "20.00", NOW)
    second = station.sale(None, "30.00", NOW + timedelta(minutes=1))
    station.attach(first, regular, "20.00", NOW + timedelta(minutes=2))
    station.attach(second, passer, "30.00", NOW + timedelta(minutes=3))
    ledger.push("S002", two.request(), NOW)
    ledger.push("S001", station.request(), NOW)
    _healthy(ledger)

    station.detach(first, regular, 20, NOW + timedelta(minutes=4))
    station.detach(second, passer, 30, NOW + timedelta(minutes=5))
    ledger.push("S001", station.request(), NOW)
    assert (_points(ledger, regular), _points(ledger, passer)) == (10, 10)
    _healthy(ledger)
