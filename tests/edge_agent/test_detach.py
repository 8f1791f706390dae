"""Undoing an attach on a real store: the wrong member's points come back exactly once
(double clicks, retries, two tills at once), the sale is attached again to the right
member, and the ledger, the audit log and the outbox say so."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal

import pytest

from edge_agent.errors import ServiceError
from edge_agent.services.detach import detach_member
from edge_agent.services.members import member_view, register_member
from edge_agent.services.points import redeem_points, verify_ledger
from edge_agent.services.sales import SaleInput, attach_member, record_sale, reverse_sale
from edge_agent.services.station import Station
from edge_agent.services.till import till_sales
from edge_agent.store.audit import audit_entries
from edge_agent.store.outbox import event_for, pending_events
from tests.support import FakeClock

WRONG = "13800138000"
RIGHT = "13900139000"


def _member(station: Station, phone: str) -> str:
    return register_member(station, phone=phone, consent_channel="test", actor="cashier1").member_id


def _sale(station: Station, litres: str = "40.00", grade: str = "92") -> str:
    volume = Decimal(litres)
    return record_sale(
        station,
        SaleInput(
            source="dart",
            source_key=f"dart1:80:1:{uuid.uuid4()}",
            pump=1,
            nozzle=1,
            grade=grade,
            litres=volume,
            amount=(volume * Decimal("7.50")).quantize(Decimal("0.01")),
            ended_at=station.now(),
        ),
    ).sale.sale_id


def _points(station: Station, member_id: str) -> int:
    return member_view(station, member_id).points


@pytest.fixture
def two(station: Station) -> tuple[str, str]:
    """The member attached by mistake, and the one who really filled up."""
    return _member(station, WRONG), _member(station, RIGHT)


def test_an_undone_attach_gives_the_points_back_and_the_sale_to_the_right_member(
    station: Station, two: tuple[str, str]
) -> None:
    wrong, right = two
    sale = _sale(station)
    attached = attach_member(station, sale, wrong, actor="cashier1").sale
    assert attached.points == 40 and _points(station, wrong) == 40

    undone = detach_member(station, sale, wrong, actor="cashier1", attach_no=1, reason="错人")
    assert (undone.created, undone.points, undone.taken_back, undone.attach_no) == (
        True,
        40,
        40,
        1,
    )
    assert undone.sale.member_id is None and undone.sale.points == 0
    assert undone.sale.receipt is None
    assert _points(station, wrong) == 0
    (view,) = till_sales(station, [sale])
    assert (view.can_attach, view.attach_no) == (True, 2)

    again = attach_member(station, sale, right, actor="cashier1").sale
    assert again.member_id == right and again.points == 40
    assert (_points(station, wrong), _points(station, right)) == (0, 40)
    assert verify_ledger(station) == []

    with station.store.read() as tx:
        kinds = [e.kind for e in pending_events(tx, 100)]
        detached = event_for(tx, "sale.detached", "sale_id", sale)
        audit = [a for a in audit_entries(tx, sale) if a["action"] == "sale.member_detached"]
    assert kinds[-3:] == ["sale.member_attached", "sale.detached", "sale.member_attached"]
    (event,) = detached
    assert event.payload["member_id"] == wrong and event.payload["attach_no"] == 1
    assert event.payload["ledger"] == [
        {"kind": "reverse", "points": -40, "entry_id": event.payload["ledger"][0]["entry_id"],
         "expires_at": None}
    ]  # fmt: skip
    assert audit[0]["actor"] == "cashier1" and audit[0]["details"]["reason"] == "错人"


@pytest.mark.parametrize("attach_no", [1, None])
def test_a_double_click_or_a_retry_undoes_once(
    station: Station, two: tuple[str, str], attach_no: int | None
) -> None:
    wrong, _ = two
    sale = _sale(station)
    attach_member(station, sale, wrong, actor="cashier1")
    first = detach_member(station, sale, wrong, actor="cashier1", attach_no=attach_no)
    second = detach_member(station, sale, wrong, actor="cashier1", attach_no=attach_no)
    assert (first.created, second.created) == (True, False)
    assert second.taken_back == first.taken_back == 40 and second.at == first.at
    with station.store.read() as tx:
        assert len(event_for(tx, "sale.detached", "sale_id", sale)) == 1
    assert _points(station, wrong) == 0
    assert verify_ledger(station) == []


def test_two_tills_pressing_at_once_undo_once(station: Station, two: tuple[str, str]) -> None:
    wrong, _ = two
    sale = _sale(station)
    attach_member(station, sale, wrong, actor="cashier1")
    start = threading.Barrier(8)
    created: list[bool] = []
    failures: list[BaseException] = []

    def press() -> None:
        start.wait()
        try:
            created.append(
                detach_member(station, sale, wrong, actor="cashier1", attach_no=1).created
            )
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=press) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and sorted(created) == [False] * 7 + [True]
    with station.store.read() as tx:
        assert len(event_for(tx, "sale.detached", "sale_id", sale)) == 1
    assert verify_ledger(station) == []


def test_a_late_retry_never_undoes_the_right_members_attach(
    station: Station, two: tuple[str, str]
) -> None:
    wrong, right = two
    sale = _sale(station)
    attach_member(station, sale, wrong, actor="cashier1")
    detach_member(station, sale, wrong, actor="cashier1", attach_no=1)
    attach_member(station, sale, right, actor="cashier1")
    # the first undo's retry arrives now: answered as done, the right member keeps the sale
    for attach_no in (1, None):
        retry = detach_member(station, sale, wrong, actor="cashier1", attach_no=attach_no)
        assert retry.created is False and retry.sale.member_id == right
    assert _points(station, right) == 40
    with pytest.raises(ServiceError) as conflict:
        detach_member(station, sale, right, actor="cashier1", attach_no=1)
    assert conflict.value.code == "detach.conflict"
    with pytest.raises(ServiceError) as ahead:
        detach_member(station, sale, right, actor="cashier1", attach_no=3)
    assert ahead.value.code == "detach.not_attached"
    # the right member's own attach (the second) can be undone in its turn
    assert detach_member(station, sale, right, actor="cashier1", attach_no=2).created
    assert _points(station, right) == 0
    assert verify_ledger(station) == []


def test_an_undo_names_the_member_on_the_sale(station: Station, two: tuple[str, str]) -> None:
    wrong, right = two
    sale = _sale(station)
    with pytest.raises(ServiceError) as bare:
        detach_member(station, sale, wrong, actor="cashier1")
    assert bare.value.code == "detach.not_attached"
    attach_member(station, sale, wrong, actor="cashier1")
    with pytest.raises(ServiceError) as other:
        detach_member(station, sale, right, actor="cashier1")
    assert other.value.code == "detach.member_changed"
    with pytest.raises(ServiceError) as unknown:
        detach_member(station, "no-such-sale", wrong, actor="cashier1")
    assert unknown.value.code == "sale.not_found"
    with pytest.raises(ServiceError) as long_reason:
        detach_member(station, sale, wrong, actor="cashier1", reason="x" * 201)
    assert long_reason.value.code == "reason.too_long"
    assert _points(station, wrong) == 40


def test_the_undo_closes_with_the_attach_window(
    station: Station, clock: FakeClock, two: tuple[str, str]
) -> None:
    wrong, _ = two
    sale = _sale(station)
    attach_member(station, sale, wrong, actor="cashier1")
    clock.advance(minutes=30, seconds=1)
    with pytest.raises(ServiceError) as late:
        detach_member(station, sale, wrong, actor="cashier1", attach_no=1)
    assert late.value.code == "detach.window"
    assert _points(station, wrong) == 40


def test_a_reversed_sale_cannot_be_undone(station: Station, two: tuple[str, str]) -> None:
    wrong, _ = two
    sale = _sale(station)
    attach_member(station, sale, wrong, actor="cashier1")
    reverse_sale(station, sale, actor="manager", reason="pump test")
    with pytest.raises(ServiceError) as refused:
        detach_member(station, sale, wrong, actor="cashier1")
    assert refused.value.code == "sale.reversed"
    assert verify_ledger(station) == []


def test_points_already_spent_are_not_taken_twice(station: Station, two: tuple[str, str]) -> None:
    wrong, _ = two
    earlier = _sale(station, "100.00")
    attach_member(station, earlier, wrong, actor="cashier1")
    sale = _sale(station, "50.00")
    attach_member(station, sale, wrong, actor="cashier1")
    redeem_points(station, wrong, 100, actor="cashier1")  # spends the earlier lot first
    undone = detach_member(station, sale, wrong, actor="cashier1")
    assert undone.taken_back == 50 and _points(station, wrong) == 0

    spent_sale = _sale(station, "100.00")
    attach_member(station, spent_sale, wrong, actor="cashier1")
    redeem_points(station, wrong, 100, actor="cashier1")
    with pytest.raises(ServiceError) as refused:
        detach_member(station, spent_sale, wrong, actor="cashier1")
    assert refused.value.code == "points.insufficient"
    (view,) = till_sales(station, [spent_sale])
    assert view.sale.member_id == wrong  # nothing changed
    assert verify_ledger(station) == []


def test_an_attach_that_earned_nothing_is_undone_without_a_ledger_entry(
    station: Station, two: tuple[str, str]
) -> None:
    wrong, right = two
    sale = _sale(station, grade="98")  # no earn rule: 0 points
    attach_member(station, sale, wrong, actor="cashier1")
    undone = detach_member(station, sale, wrong, actor="cashier1")
    assert (undone.points, undone.taken_back) == (0, 0)
    with station.store.read() as tx:
        (event,) = event_for(tx, "sale.detached", "sale_id", sale)
    assert event.payload["ledger"] == [] and event.payload["points"] == 0
    attach_member(station, sale, right, actor="cashier1")
    assert verify_ledger(station) == []


def test_reversing_after_a_second_attach_takes_back_only_the_right_members_points(
    station: Station, two: tuple[str, str]
) -> None:
    wrong, right = two
    sale = _sale(station)
    attach_member(station, sale, wrong, actor="cashier1")
    detach_member(station, sale, wrong, actor="cashier1")
    attach_member(station, sale, right, actor="cashier1")
    reverse_sale(station, sale, actor="manager", reason="drive-off")
    assert (_points(station, wrong), _points(station, right)) == (0, 0)
    assert verify_ledger(station) == []


def test_the_ledger_check_sees_an_undo_that_does_not_add_up(
    station: Station, two: tuple[str, str]
) -> None:
    wrong, _ = two
    sale = _sale(station)
    attach_member(station, sale, wrong, actor="cashier1")
    detach_member(station, sale, wrong, actor="cashier1")
    other = _sale(station)
    attach_member(station, other, wrong, actor="cashier1")
    with station.store.write() as tx:  # a forged undo: the points were never taken back
        earn = tx.execute(
            "SELECT entry_id FROM ledger WHERE sale_id = ? AND kind = 'earn'", [other]
        ).fetchone()[0]
        tx.execute(
            "INSERT INTO detachments (sale_id, attach_no, member_id, points, taken_back, "
            "earn_entry_id, debit_entry_id, at, actor) VALUES (?, 1, ?, 40, 40, ?, NULL, '', '')",
            [other, wrong, earn],
        )
    problems = verify_ledger(station)
    assert any("take-back plus lapsed" in p and other in p for p in problems), problems
    assert any("sale points differ from its earning entry" in p for p in problems), problems
