"""Two pushes at once: one station's batches queue on its high-water row; two stations
registering one phone at the same moment still end with one member; two stations pushing
one set of event ids at once store them once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from cloud_sync.cloud.ledger import CloudLedger, EventConflict
from cloud_sync.core.privacy import MemberKeys
from cloud_sync.core.wire import PushResponse

from .conftest import NOW
from .fake_station import FakeStation, member_id


def _together(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls on threads released at the same instant; re-raise any failure."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except BaseException as exc:  # handed to the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if errors:
        raise errors[0]
    return results


def test_the_same_batch_pushed_twice_at_once_is_applied_once(
    ledger: CloudLedger, station: FakeStation
) -> None:
    mid = station.register("13800138000", NOW)
    for i in range(200):
        station.sale(mid, "1.00", NOW + timedelta(seconds=i))
    request = station.request()
    first, second = _together(
        lambda: ledger.push("S001", request, NOW), lambda: ledger.push("S001", request, NOW)
    )
    statuses = sorted({r.status for r in first.results} | {r.status for r in second.results})
    assert statuses == ["applied", "duplicate"]
    assert ledger.member(mid, NOW)["points"] == 200  # type: ignore[index]
    assert ledger.ledger_problems() == []


def test_one_phone_registered_at_two_stations_at_once_is_one_member(
    ledger: CloudLedger, station: FakeStation, chain_keys: MemberKeys
) -> None:
    ledger.add_station("S002", None, NOW)
    other = FakeStation("S002", chain_keys)
    for n in range(3):
        phone = f"1380013800{n}"
        station.register(phone, NOW, mid=member_id(10 * n + 2))
        other.register(phone, NOW, mid=member_id(10 * n + 1))
        station.sale(member_id(10 * n + 2), "10.00", NOW)
        other.sale(member_id(10 * n + 1), "20.00", NOW)
    a, b = station.request(), other.request()
    _together(lambda: ledger.push("S001", a, NOW), lambda: ledger.push("S002", b, NOW))
    for n in range(3):
        view = ledger.member(member_id(10 * n + 2), NOW)
        assert view is not None
        assert (view["member_id"], view["points"]) == (member_id(10 * n + 1), 30)
    assert ledger.totals()["members"] == 3
    assert ledger.ledger_problems() == []


def _outcomes(*calls: Callable[[], Any]) -> list[Any]:
    """As `_together`, each call's result or the exception it raised."""

    def caught(call: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            try:
                return call()
            except Exception as exc:  # the outcome under test
                return exc

        return run

    return _together(*(caught(c) for c in calls))


def test_two_stations_pushing_the_same_event_ids_at_once_store_them_once(
    ledger: CloudLedger, station: FakeStation, chain_keys: MemberKeys
) -> None:
    """A restored backup enrolled as a new station replays another station's deductions:
    events are keyed per station, so only `event_ids` stops both from being booked."""
    ledger.add_station("S002", None, NOW)
    copy = FakeStation("S002", chain_keys)
    mid = station.register("13800138000", NOW)
    station.sale(mid, "900.00", NOW)
    ledger.push("S001", station.request(), NOW)
    for i in range(20):  # redemptions are keyed per station: both could be booked
        station.redeem(mid, 10, NOW + timedelta(minutes=1, seconds=i))
    copied = [{**event, "seq": n} for n, event in enumerate(station.events, start=1)]
    a, b = station.request(), copy.request(copied)
    outcomes = _outcomes(lambda: ledger.push("S001", a, NOW), lambda: ledger.push("S002", b, NOW))
    conflicts = [o for o in outcomes if isinstance(o, EventConflict)]
    pushed = [o for o in outcomes if isinstance(o, PushResponse)]
    assert (len(conflicts), len(pushed)) == (1, 1), outcomes
    assert {r.status for r in pushed[0].results} == {"applied"}
    assert ledger.member(mid, NOW)["points"] == 900 - 200  # type: ignore[index]
    assert ledger.ledger_problems() == []
    # The station that lost stays refused; the winner's replay is a duplicate.
    loser, request = ("S002", b) if pushed[0].station_id == "S001" else ("S001", a)
    with pytest.raises(EventConflict):
        ledger.push(loser, request, NOW)
    winner = "S001" if loser == "S002" else "S002"
    again = ledger.push(winner, b if winner == "S002" else a, NOW)
    assert {r.status for r in again.results} == {"duplicate"}
