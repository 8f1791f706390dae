"""Undo rights on the page and the JSON API: the undo button only for who may press it, the
refusals in words (zh-CN) in the answer area, a manager's undo of another's attach with a
reason kept in the audit."""

from __future__ import annotations

from fastapi.testclient import TestClient

from edge_agent.services.members import MemberView, member_view
from edge_agent.services.station import Station
from edge_agent.store.audit import audit_entries
from tests.support import FakeClock
from tests.web.conftest import MakeSale, SignIn, refused, shows


def test_only_the_cashier_who_attached_sees_and_may_press_undo(
    sign_in: SignIn, station: Station, member: MemberView, make_sale: MakeSale, clock: FakeClock
) -> None:
    alice, bob, mia = sign_in("alice"), sign_in("bob"), sign_in("mia")
    sale = make_sale().sale_id
    shows(alice.post(f"/ui/sales/{sale}/attach", data={"member_id": member.member_id}), 200)
    undo_button = f'data-testid="undo-{sale}"'
    assert undo_button in alice.get("/ui/sales").text
    assert undo_button not in bob.get("/ui/sales").text
    assert undo_button in mia.get("/ui/sales").text

    asked = shows(bob.get(f"/ui/sales/{sale}/detach"), 403, "attach-error")
    assert "只能撤销自己做的关联" in asked
    form = {"member_id": member.member_id, "attach_no": "1"}
    shows(bob.post(f"/ui/sales/{sale}/detach", data=form), 403, "attach-error")
    assert member_view(station, member.member_id).points == 40

    clock.advance(minutes=11)  # past alice's own undo window, inside the attach window
    assert undo_button not in alice.get("/ui/sales").text
    late = shows(alice.get(f"/ui/sales/{sale}/detach"), 409, "attach-error")
    assert "已超过收银员自行撤销的时限" in late

    ask = shows(mia.get(f"/ui/sales/{sale}/detach"), 200, "detach-form", "detach-reason")
    assert "required" in ask.split('data-testid="detach-reason"')[1].split(">")[0]
    no_reason = shows(mia.post(f"/ui/sales/{sale}/detach", data=form), 422, "attach-error")
    assert "请填写原因" in no_reason
    done = mia.post(f"/ui/sales/{sale}/detach", data=form | {"reason": "收银员认错车"})
    shows(done, 200, "detach-result")
    assert member_view(station, member.member_id).points == 0
    with station.store.read() as tx:
        (undo,) = [e for e in audit_entries(tx, sale) if e["action"] == "sale.member_detached"]
    assert (undo["actor"], undo["details"]["reason"]) == ("user:mia", "收银员认错车")


def test_the_page_form_needs_which_attach(
    cashier: TestClient, member: MemberView, make_sale: MakeSale, station: Station
) -> None:
    sale = make_sale().sale_id
    receipt = cashier.post(f"/ui/sales/{sale}/attach", data={"member_id": member.member_id})
    shows(receipt, 200, "receipt-undo")
    vals = f'hx-vals=\'{{"attach_no": 1, "member_id": "{member.member_id}"}}\''
    assert vals in receipt.text  # the page's undo names the attach it undoes
    missing = cashier.post(f"/ui/sales/{sale}/detach", data={"member_id": member.member_id})
    assert missing.status_code == 422
    assert member_view(station, member.member_id).points == 40


def test_the_api_says_who_may_undo_and_refuses_the_others(
    sign_in: SignIn, member: MemberView, make_sale: MakeSale
) -> None:
    alice, bob, mia = sign_in("alice"), sign_in("bob"), sign_in("mia")
    sale = make_sale().sale_id
    alice.post(f"/api/v1/sales/{sale}/member", json={"q": "13800138000"})
    views = {
        name: client.get("/api/v1/till/sales").json()["sales"][0]
        for name, client in (("alice", alice), ("bob", bob), ("mia", mia))
    }
    assert {name: view["can_undo"] for name, view in views.items()} == {
        "alice": True,
        "bob": False,
        "mia": True,
    }
    assert views["bob"]["attached_by"] == "user:alice" and views["bob"]["undo_until"]
    path, body = (
        f"/api/v1/sales/{sale}/member/undo",
        {"member_id": member.member_id, "attach_no": 1},
    )
    refused(bob.post(path, json=body), 403, "detach.not_yours")
    refused(mia.post(path, json=body), 422, "reason.required")
    assert mia.post(path, json=body | {"reason": "认错车"}).json()["created"] is True
