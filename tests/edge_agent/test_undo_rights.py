"""Who may undo an attach: the cashier who made it, soon after; anyone else's, a later one,
or one with no recorded actor (a member given at the pump), only a manager with a reason.
Otherwise a cashier could move a customer's points to a friend's card."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from edge_agent.errors import ServiceError
from edge_agent.services.detach import detach_member, undo_refusal
from edge_agent.services.members import member_view, register_member
from edge_agent.services.sales import attach_member
from edge_agent.services.station import Station
from edge_agent.services.till import till_sales
from edge_agent.settings import StationSettings
from edge_agent.store.audit import AttachRecord, audit_entries
from tests.support import SHANGHAI, FakeClock, pump_sale

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)
TEN = timedelta(minutes=10)
MINE = AttachRecord("user:alice", T0.isoformat())


@pytest.mark.parametrize(
    ("attach", "actor", "manager", "reason", "after", "refusal"),
    [
        (MINE, "user:alice", False, "", TEN, None),  # own, at the last second
        (MINE, "user:alice", False, "", TEN + timedelta(seconds=1), "detach.undo_window"),
        (MINE, "user:bob", False, "朋友的卡", timedelta(0), "detach.not_yours"),
        (None, "user:alice", False, "", timedelta(0), "detach.not_yours"),  # at the pump
        (MINE, "user:mia", True, "", timedelta(0), "reason.required"),
        (MINE, "user:mia", True, "认错车", timedelta(minutes=29), None),
        (None, "user:mia", True, "会员在油机刷卡错了", timedelta(0), None),
        (AttachRecord("user:mia", T0.isoformat()), "user:mia", True, "", TEN, None),
    ],
)
def test_the_undo_rule(
    attach: AttachRecord | None,
    actor: str,
    manager: bool,
    reason: str,
    after: timedelta,
    refusal: str | None,
) -> None:
    found = undo_refusal(
        attach, actor=actor, manager=manager, reason=reason, now=T0 + after, cashier_window=TEN
    )
    assert (None if found is None else found[0]) == refusal


@pytest.fixture
def customer(station: Station) -> str:
    return register_member(
        station, phone="13800138000", consent_channel="test", actor="t"
    ).member_id


def _refused(call: Callable[[], object]) -> str:
    with pytest.raises(ServiceError) as refused:
        call()
    return refused.value.code


def test_another_cashier_cannot_move_a_customers_points(station: Station, customer: str) -> None:
    sale = pump_sale(station, 40, None).sale_id
    attach_member(station, sale, customer, actor="user:alice")
    code = _refused(lambda: detach_member(station, sale, customer, actor="user:bob", attach_no=1))
    assert code == "detach.not_yours"
    assert member_view(station, customer).points == 40  # nothing moved
    (view,) = till_sales(station, [sale])
    assert view.undoable_by("user:alice", manager=False)
    assert not view.undoable_by("user:bob", manager=False)
    assert view.undoable_by("user:mia", manager=True)


def test_the_cashiers_own_undo_closes_and_a_manager_needs_a_reason(
    station: Station, clock: FakeClock, customer: str
) -> None:
    sale = pump_sale(station, 40, None).sale_id
    clock.advance(minutes=5)  # the attach window counts from the sale, this one from the attach
    attach_member(station, sale, customer, actor="user:alice")
    clock.advance(minutes=10, seconds=1)
    code = _refused(lambda: detach_member(station, sale, customer, actor="user:alice", attach_no=1))
    assert code == "detach.undo_window"
    assert not till_sales(station, [sale])[0].undoable_by("user:alice", manager=False)
    with pytest.raises(ServiceError, match="needs a reason"):
        detach_member(station, sale, customer, actor="user:mia", manager=True, attach_no=1)
    done = detach_member(
        station, sale, customer, actor="user:mia", manager=True, attach_no=1, reason="认错车"
    )
    assert done.created and member_view(station, customer).points == 0
    (audit,) = [e for e in audit_entries_of(station, sale) if e["action"] == "sale.member_detached"]
    assert (audit["actor"], audit["details"]["reason"], audit["details"]["by_manager"]) == (
        "user:mia",
        "认错车",
        True,
    )


def test_a_member_given_at_the_pump_is_undone_by_a_manager_only(
    station: Station, customer: str
) -> None:
    sale = pump_sale(station, 40, customer).sale_id  # the member came with the sale
    code = _refused(lambda: detach_member(station, sale, customer, actor="user:alice", attach_no=1))
    assert code == "detach.not_yours"
    (view,) = till_sales(station, [sale])
    assert view.attached_by is None and not view.undoable_by("user:alice", manager=False)
    detach_member(station, sale, customer, actor="user:mia", manager=True, attach_no=1, reason="r")
    assert member_view(station, customer).points == 0


def test_a_reattach_belongs_to_whoever_made_it(station: Station, customer: str) -> None:
    other = register_member(station, phone="13900139000", consent_channel="t", actor="t")
    sale = pump_sale(station, 40, None).sale_id
    attach_member(station, sale, customer, actor="user:alice")
    detach_member(station, sale, customer, actor="user:alice", attach_no=1)
    attach_member(station, sale, other.member_id, actor="user:bob")
    (view,) = till_sales(station, [sale])
    assert view.attached_by == "user:bob" and view.attach_no == 2
    code = _refused(
        lambda: detach_member(station, sale, other.member_id, actor="user:alice", attach_no=2)
    )
    assert code == "detach.not_yours"


def audit_entries_of(station: Station, sale_id: str) -> list[dict[str, Any]]:
    with station.store.read() as tx:
        return audit_entries(tx, sale_id)


def _settings(tmp_path: Path, **station: int) -> StationSettings:
    base = {"id": "S001", "data_dir": str(tmp_path)}
    return StationSettings.model_validate({"station": base | station})


def test_the_undo_window_is_at_most_the_attach_window(tmp_path: Path) -> None:
    assert _settings(tmp_path).station.cashier_undo_min == 10
    assert _settings(tmp_path, attach_window_min=5).station.cashier_undo_min == 5
    assert _settings(tmp_path, undo_window_min=30).station.cashier_undo_min == 30
    with pytest.raises(ValidationError, match="undo_window_min"):
        _settings(tmp_path, undo_window_min=31)
    with pytest.raises(ValidationError):
        _settings(tmp_path, undo_window_min=0)
