"""The till's services on a real store: each pump's sales still open for a member, the
short sale number, and the last-4 search with its pick list and its limits."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from edge_agent.errors import ServiceError
from edge_agent.services.members import register_member
from edge_agent.services.sales import SaleInput, attach_member, record_sale, reverse_sale
from edge_agent.services.station import Station
from edge_agent.services.till import (
    MAX_PICK,
    SearchLimiter,
    pump_sales,
    sale_no,
    search_members,
    till_sales,
    unattached_by_pump,
)
from tests.support import FakeClock


def _sale(station: Station, pump: int, litres: str = "30.00", member: str | None = None) -> str:
    volume = Decimal(litres)
    outcome = record_sale(
        station,
        SaleInput(
            source="manual",
            pump=pump,
            grade="92",
            litres=volume,
            amount=(volume * Decimal("7.50")).quantize(Decimal("0.01")),
            ended_at=station.now(),
            member_id=member,
            actor="cashier1",
        ),
    )
    return outcome.sale.sale_id


def _member(station: Station, phone: str, *plates: str) -> str:
    return register_member(
        station, phone=phone, plates=plates, consent_channel="test", actor="cashier1"
    ).member_id


def test_the_short_number_is_the_ids_last_six_characters_upper_cased() -> None:
    assert sale_no("01938a6e-1c2d-7e3f-9a4b-5c6d7e8fa1b2") == "8FA1B2"


def test_a_pump_lists_its_sales_still_open_for_a_member_newest_first(
    station: Station, clock: FakeClock
) -> None:
    member = _member(station, "13800138000")
    stale = _sale(station, 1, "10.00")
    clock.advance(minutes=31)  # past the attach window (30 minutes)
    first = _sale(station, 1, "20.00")
    clock.advance(seconds=5)
    _sale(station, 2, "25.00")  # another pump
    attached = _sale(station, 1, "26.00")
    attach_member(station, attached, member, actor="cashier1")
    reversed_ = _sale(station, 1, "27.00")
    reverse_sale(station, reversed_, actor="manager", reason="pump test")
    clock.advance(seconds=5)
    second = _sale(station, 1, "30.00")

    listed = pump_sales(station, 1)
    assert [s.sale.sale_id for s in listed] == [second, first]
    assert stale not in {s.sale.sale_id for s in listed}
    newest = listed[0]
    assert newest.sale_no == sale_no(second) and len(newest.sale_no) == 6
    assert newest.can_attach and not newest.can_undo and newest.attach_no == 1
    assert newest.to_dict()["litres"] == "30.00"
    assert newest.attach_until == (clock.now + timedelta(minutes=30)).isoformat()
    assert [s.sale.sale_id for s in pump_sales(station, 1, limit=1)] == [second]
    assert pump_sales(station, 9) == []

    clock.advance(minutes=31)
    assert pump_sales(station, 1) == []


def test_every_pump_at_once_is_bounded_per_pump(station: Station, clock: FakeClock) -> None:
    for _ in range(5):
        _sale(station, 1)
        _sale(station, 3)
        clock.advance(seconds=10)
    board = unattached_by_pump(station, per_pump=2)
    assert sorted(board) == [1, 3]
    assert [len(board[1]), len(board[3])] == [2, 2]
    assert board[1][0].sale.ended_at > board[1][1].sale.ended_at


@pytest.mark.parametrize(("pump", "limit"), [(0, 5), (100, 5), (1, 0), (1, 21)])
def test_pump_and_limit_are_bounded(station: Station, pump: int, limit: int) -> None:
    with pytest.raises(ServiceError) as refused:
        pump_sales(station, pump, limit=limit)
    assert refused.value.code in {"sale.pump", "limit"}


def test_the_till_view_of_an_attached_sale_offers_its_undo_inside_the_window(
    station: Station, clock: FakeClock
) -> None:
    member = _member(station, "13800138000")
    sale = _sale(station, 1)
    attach_member(station, sale, member, actor="cashier1")
    (view,) = till_sales(station, [sale, "no-such-sale"])
    assert (view.can_undo, view.can_attach, view.attach_no) == (True, False, 1)
    clock.advance(minutes=31)
    (late,) = till_sales(station, [sale])
    assert (late.can_undo, late.can_attach) == (False, False)


def test_the_last_four_digits_give_a_pick_list_of_masked_phones_and_plates(
    station: Station,
) -> None:
    one = _member(station, "13800138000", "京A12345")
    two = _member(station, "13900008000", "粤BD12345", "沪C54321")
    _member(station, "13700009000")
    limiter = SearchLimiter()
    found = search_members(station, "8000", who="cashier1", limiter=limiter)
    assert found.kind == "pick"
    assert [(p.member_id, p.phone_masked) for p in found.pick] == [
        (one, "138****8000"),
        (two, "139****8000"),
    ]
    # plates added together are ordered by their blind index, which differs per key
    assert sorted(found.pick[1].plates) == sorted(("粤BD12345", "沪C54321"))
    assert "13800138000" not in str(found.to_dict())  # never the full phone

    full = search_members(station, "13800138000", who="cashier1", limiter=limiter)
    assert full.kind == "member" and full.member is not None and full.member.member_id == one
    by_plate = search_members(station, "沪C54321", who="cashier1", limiter=limiter)
    assert by_plate.member is not None and by_plate.member.member_id == two

    with pytest.raises(ServiceError) as none:
        search_members(station, "4321", who="cashier1", limiter=limiter)
    assert none.value.code == "member.not_found"


def test_more_than_ten_matches_are_refused_not_listed(station: Station) -> None:
    for n in range(MAX_PICK + 1):
        _member(station, f"139{n:04d}1234")
    with pytest.raises(ServiceError) as refused:
        search_members(station, "1234", who="cashier1", limiter=SearchLimiter())
    assert refused.value.code == "search.too_many"


def test_with_more_than_ten_matches_the_stations_regulars_are_offered(
    station: Station, clock: FakeClock
) -> None:
    ids = [_member(station, f"139{n:04d}1234") for n in range(MAX_PICK + 5)]
    _sale(station, 1, member=ids[3])
    clock.advance(days=100)
    _sale(station, 1, member=ids[7])  # within the last 90 days
    _sale(station, 1, member=ids[12])
    found = search_members(station, "1234", who="cashier1", limiter=SearchLimiter())
    assert found.narrowed and [p.member_id for p in found.pick] == [ids[7], ids[12]]
    assert found.to_dict()["narrowed"] is True
    for member in ids[: MAX_PICK + 1]:
        _sale(station, 2, member=member)
    with pytest.raises(ServiceError) as refused:
        search_members(station, "1234", who="cashier1", limiter=SearchLimiter())
    assert refused.value.code == "search.too_many"


def test_exactly_ten_matches_are_all_listed(station: Station) -> None:
    for n in range(MAX_PICK):
        _member(station, f"138{n:04d}1234")
    found = search_members(station, "1234", who="cashier1", limiter=SearchLimiter())
    assert len(found.pick) == MAX_PICK


def test_last_four_searches_are_limited_per_login(station: Station) -> None:
    _member(station, "13800138000")
    now = [0.0]
    limiter = SearchLimiter(limit=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        search_members(station, "8000", who="cashier1", limiter=limiter)
    with pytest.raises(ServiceError) as refused:
        search_members(station, "8000", who="cashier1", limiter=limiter)
    assert refused.value.code == "search.rate_limited"
    # another login has its own allowance; full phones are never counted
    search_members(station, "8000", who="cashier2", limiter=limiter)
    search_members(station, "13800138000", who="cashier1", limiter=limiter)
    now[0] = 61.0
    assert search_members(station, "8000", who="cashier1", limiter=limiter).kind == "pick"


def test_the_limiter_forgets_stale_logins_so_memory_stays_bounded() -> None:
    now = [0.0]
    limiter = SearchLimiter(limit=1, window_s=10, max_keys=100, clock=lambda: now[0])
    for n in range(1000):
        now[0] = n * 0.001
        assert limiter.take(f"who{n}") == 0.0
    assert len(limiter._seen) <= 101
    assert limiter.take("who999") > 0  # the newest are kept and still counted


def test_the_last_four_search_uses_its_index(station: Station) -> None:
    with station.store.read() as tx:
        plan = tx.execute(
            "EXPLAIN QUERY PLAN SELECT member_id FROM members "
            "WHERE substr(phone_masked, -4) = '8000' AND status = 'active'"
        ).fetchall()
    assert "members_by_last4" in str(plan)
