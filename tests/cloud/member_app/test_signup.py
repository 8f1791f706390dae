"""Signing up in the app: a phone that is no member joins with consent after the right code,
becomes one member however many sign-ups race, and reaches every station's changes feed."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from cloud_sync.cloud.ledger.member_signup import sign_up
from cloud_sync.cloud.ledger.schema import members
from cloud_sync.core.privacy import blind_index, decrypt_field

from .conftest import MemberApp
from .sign_in_support import API, ask_code

pytestmark = pytest.mark.usefixtures("cloud_db_url")

PHONE = "13912345678"
E164 = "+8613912345678"


def _session(mapp: MemberApp, code: str, **more: Any) -> Any:
    return mapp.client.post(f"{API}/session", json={"phone": PHONE, "code": code, **more})


def _members_with_phone(mapp: MemberApp) -> list[Any]:
    index = blind_index(mapp.ledger.chain_keys, "phone", E164)
    return list(
        mapp.ledger.db.read(
            lambda c: c.execute(select(members).where(members.c.phone_index == index)).all()
        )
    )


def test_without_consent_the_app_is_told_to_ask_and_the_code_stays(mapp: MemberApp) -> None:
    code = ask_code(mapp.client, mapp.settings.data_dir, PHONE)
    refused = _session(mapp, code)
    assert refused.status_code == 409
    assert refused.json()["error"] == "member_app.consent_required"
    assert _session(mapp, code, consent=False).status_code == 409
    assert _members_with_phone(mapp) == []
    joined = _session(mapp, code, consent=True, name="  张  三 ")
    assert joined.status_code == 200
    assert joined.json()["new_member"] is True


def test_a_new_member_is_sealed_registered_at_hq_with_app_consent(mapp: MemberApp) -> None:
    code = ask_code(mapp.client, mapp.settings.data_dir, PHONE)
    body = _session(mapp, code, consent=True, name="张 三").json()
    [row] = _members_with_phone(mapp)
    keys = mapp.ledger.chain_keys
    assert row.member_id == body["member_id"] and row.status == "active"
    assert decrypt_field(keys, "phone", row.phone_sealed) == E164
    assert decrypt_field(keys, "name", row.name_sealed) == "张 三"
    assert row.phone_masked == "139****5678"
    assert row.registered_station is None and row.consent_channel == "app"
    assert row.consent_at == mapp.clock().isoformat() == row.registered_at
    assert row.key_id == keys.key_id


def test_a_member_signing_in_with_consent_stays_who_they_are(mapp: MemberApp) -> None:
    code = ask_code(mapp.client, mapp.settings.data_dir, "13800138002")
    answer = mapp.client.post(
        f"{API}/session",
        json={"phone": "13800138002", "code": code, "consent": True, "name": "someone"},
    )
    assert answer.json()["member_id"] == mapp.seeded.members[1]
    assert answer.json()["new_member"] is False


def test_every_station_hears_of_the_new_member(mapp: MemberApp) -> None:
    code = ask_code(mapp.client, mapp.settings.data_dir, PHONE)
    member_id = _session(mapp, code, consent=True).json()["member_id"]
    for station in ("S001", "S002", "S003"):
        page = mapp.ledger.changes(station, 0, 1000, mapp.clock())
        [delta] = [m for m in page.members if m.member_id == member_id]
        assert delta.status == "active" and delta.phone_masked == "139****5678"
        assert delta.phone_index == blind_index(mapp.ledger.chain_keys, "phone", E164)
        assert delta.lots == [] and delta.overdraft == 0


@pytest.mark.parametrize(
    ("name", "status", "error"),
    [("名" * 41, 422, "member_app.name"), ("a\x07b", 422, "member_app.name"),
     ("x" * 121, 422, "invalid")],
)  # fmt: skip
def test_a_bad_name_is_refused_before_the_code_is_used(
    mapp: MemberApp, name: str, status: int, error: str
) -> None:
    code = ask_code(mapp.client, mapp.settings.data_dir, PHONE)
    answer = _session(mapp, code, consent=True, name=name)
    assert (answer.status_code, answer.json()["error"]) == (status, error)
    assert _session(mapp, code, consent=True, name="张三").status_code == 200


def test_parallel_sign_ups_with_one_code_make_one_member(mapp: MemberApp) -> None:
    code = ask_code(mapp.client, mapp.settings.data_dir, PHONE)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: _session(mapp, code, consent=True), range(8)))
    assert Counter(a.status_code for a in answers) == {200: 1, 401: 7}
    assert len(_members_with_phone(mapp)) == 1


def test_racing_sign_ups_of_one_phone_make_one_member(mapp: MemberApp) -> None:
    """The ledger's sign-up alone, in parallel transactions (as the app's and a second
    worker's would be without the code's row lock): the unique index keeps one member."""
    db, keys = mapp.ledger.db, mapp.ledger.chain_keys
    racers = 6
    start = threading.Barrier(racers)
    now = mapp.clock()

    def race(_: int) -> tuple[str, bool]:
        start.wait()
        return db.transact(lambda c: sign_up(db, c, keys, phone=E164, name=None, now=now))

    with ThreadPoolExecutor(max_workers=racers) as pool:
        results = list(pool.map(race, range(racers)))
    assert len({member_id for member_id, _ in results}) == 1
    assert [created for _, created in results].count(True) == 1
    index = blind_index(keys, "phone", E164)
    count = db.read(
        lambda c: c.execute(
            select(func.count()).select_from(members).where(members.c.phone_index == index)
        ).scalar_one()
    )
    assert count == 1
