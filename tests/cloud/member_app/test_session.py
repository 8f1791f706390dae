"""`POST/DELETE /m/api/v1/session` and `/session/refresh`: a right code signs in once, wrong
ones are counted, codes expire, refresh tokens rotate, signing out ends the session, and a
member's tokens only ever name that member."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import update

from cloud_sync.cloud.ledger.member_privacy import erase_member
from cloud_sync.cloud.ledger.member_sessions import member_of_access
from cloud_sync.cloud.ledger.postings import millis
from cloud_sync.cloud.ledger.schema import members

from .conftest import MemberApp
from .sign_in_support import API, ask_code, sign_in

pytestmark = pytest.mark.usefixtures("cloud_db_url")

M1_PHONE, M2_PHONE, M3_PHONE = "13800138001", "13800138002", "13800138003"
STRANGER = "13912345678"


def _session(mapp: MemberApp, phone: str, code: str, **more: Any) -> Any:
    return mapp.client.post(f"{API}/session", json={"phone": phone, "code": code, **more})


def _owner(mapp: MemberApp, access_token: str) -> str | None:
    now_ms = millis(mapp.clock())
    found = mapp.ledger.db.read(lambda c: member_of_access(c, access_token, now_ms=now_ms))
    return None if found is None else found[0]


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def _sign_out(mapp: MemberApp, access_token: str) -> int:
    headers = {"Authorization": f"Bearer {access_token}"}
    status: int = mapp.client.delete(f"{API}/session", headers=headers).status_code
    return status


def test_a_members_right_code_gives_their_tokens(mapp: MemberApp) -> None:
    body = sign_in(mapp.client, mapp.settings.data_dir, M2_PHONE)
    assert body["member_id"] == mapp.seeded.members[1] and body["new_member"] is False
    assert body["token_type"] == "Bearer" and body["expires_in"] == 15 * 60
    assert body["access_token"].startswith("lpm_a_")
    assert body["refresh_token"].startswith("lpm_r_")
    assert _owner(mapp, body["access_token"]) == mapp.seeded.members[1]


def test_a_code_signs_in_once(mapp: MemberApp) -> None:
    code = ask_code(mapp.client, mapp.settings.data_dir, M2_PHONE)
    assert _session(mapp, M2_PHONE, code).status_code == 200
    again = _session(mapp, M2_PHONE, code)
    assert again.status_code == 401 and again.json()["error"] == "member_app.otp_expired"


def test_of_parallel_sign_ins_with_one_code_exactly_one_wins(mapp: MemberApp) -> None:
    code = ask_code(mapp.client, mapp.settings.data_dir, M2_PHONE)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: _session(mapp, M2_PHONE, code), range(8)))
    assert Counter(a.status_code for a in answers) == {200: 1, 401: 7}
    assert {a.json()["error"] for a in answers if a.status_code == 401} == {
        "member_app.otp_expired"
    }


def test_a_code_expires_after_five_minutes(mapp: MemberApp) -> None:
    code = ask_code(mapp.client, mapp.settings.data_dir, M2_PHONE)
    mapp.clock.advance(minutes=5)
    late = _session(mapp, M2_PHONE, code)
    assert late.status_code == 401 and late.json()["error"] == "member_app.otp_expired"


def test_a_code_is_live_until_its_fifth_minute_ends(mapp: MemberApp) -> None:
    code = ask_code(mapp.client, mapp.settings.data_dir, M2_PHONE)
    mapp.clock.advance(minutes=4, seconds=59)
    assert _session(mapp, M2_PHONE, code).status_code == 200


def test_five_wrong_answers_kill_the_code(
    mapp: MemberApp, caplog: pytest.LogCaptureFixture
) -> None:
    code = ask_code(mapp.client, mapp.settings.data_dir, M2_PHONE)
    left = []
    for _ in range(5):
        answer = _session(mapp, M2_PHONE, _wrong(code))
        assert answer.status_code == 401 and answer.json()["error"] == "member_app.otp_wrong"
        left.append(answer.json()["tries_left"])
    assert left == [4, 3, 2, 1, 0]
    [warning] = [r.getMessage() for r in caplog.records if "died of wrong" in r.getMessage()]
    assert "138****8002" in warning and "13800138002" not in warning  # the operator is told
    right_too_late = _session(mapp, M2_PHONE, code)
    assert right_too_late.json()["error"] == "member_app.otp_expired"


def test_parallel_wrong_answers_are_all_counted(mapp: MemberApp) -> None:
    code = ask_code(mapp.client, mapp.settings.data_dir, M2_PHONE)
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: _session(mapp, M2_PHONE, _wrong(code)), range(10)))
    errors = Counter(a.json()["error"] for a in answers)
    assert errors == {"member_app.otp_wrong": 5, "member_app.otp_expired": 5}
    assert _session(mapp, M2_PHONE, code).json()["error"] == "member_app.otp_expired"


def test_a_phone_never_sent_a_code_reads_as_expired(mapp: MemberApp) -> None:
    member = _session(mapp, M2_PHONE, "123456")
    stranger = _session(mapp, STRANGER, "123456")
    assert member.status_code == stranger.status_code == 401
    assert member.json() == stranger.json()
    assert member.json()["error"] == "member_app.otp_expired"


def test_a_new_code_replaces_the_old_one(mapp: MemberApp) -> None:
    first = ask_code(mapp.client, mapp.settings.data_dir, M2_PHONE)
    mapp.clock.advance(seconds=60)  # the resend cooldown is over
    second = ask_code(mapp.client, mapp.settings.data_dir, M2_PHONE)
    if first != second:
        assert _session(mapp, M2_PHONE, first).json()["error"] == "member_app.otp_wrong"
    assert _session(mapp, M2_PHONE, second).status_code == 200


@pytest.mark.parametrize("code", ["12345", "1234567", "12a456", ""])
def test_a_code_that_is_not_six_digits_is_invalid_and_not_counted(
    mapp: MemberApp, code: str
) -> None:
    right = ask_code(mapp.client, mapp.settings.data_dir, M2_PHONE)
    answer = _session(mapp, M2_PHONE, code)
    assert answer.status_code == 422 and answer.json()["error"] == "invalid"
    assert _session(mapp, M2_PHONE, right).status_code == 200


def test_a_code_typed_with_full_width_digits_and_spaces_is_read(mapp: MemberApp) -> None:
    code = ask_code(mapp.client, mapp.settings.data_dir, "+86 138-0013-8002")
    typed = " ".join(chr(ord("０") + int(d)) for d in code)
    assert _session(mapp, "8613800138002", typed).status_code == 200


def test_a_merged_phone_signs_in_as_its_survivor(mapp: MemberApp) -> None:
    m1, m2, m3 = mapp.seeded.members
    # The seeded chain merged a second registration of m1's phone into m1.
    assert sign_in(mapp.client, mapp.settings.data_dir, M1_PHONE)["member_id"] == m1
    # A member merged into one with another phone: its phone leads to the survivor.
    mapp.ledger.db.transact(
        lambda c: c.execute(
            update(members).where(members.c.member_id == m3).values(status="merged", merged_into=m2)
        )
    )
    body = sign_in(mapp.client, mapp.settings.data_dir, M3_PHONE)
    assert body["member_id"] == m2 and body["new_member"] is False


def test_an_erased_members_phone_is_a_new_sign_up(mapp: MemberApp) -> None:
    m2 = mapp.seeded.members[1]
    now = mapp.clock()
    mapp.ledger.db.transact(lambda c: erase_member(mapp.ledger.db, c, m2, actor="t", now=now))
    code = ask_code(mapp.client, mapp.settings.data_dir, M2_PHONE)
    assert _session(mapp, M2_PHONE, code).json()["error"] == "member_app.consent_required"
    body = _session(mapp, M2_PHONE, code, consent=True).json()
    assert body["new_member"] is True and body["member_id"] != m2


def test_refresh_rotates_the_pair_and_kills_the_old_one(mapp: MemberApp) -> None:
    first = sign_in(mapp.client, mapp.settings.data_dir, M2_PHONE)
    mapp.clock.advance(minutes=14)
    answer = mapp.client.post(
        f"{API}/session/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert answer.status_code == 200
    second = answer.json()
    assert set(second) == {"access_token", "refresh_token", "expires_in", "token_type"}
    assert second["refresh_token"] != first["refresh_token"]
    assert _owner(mapp, second["access_token"]) == mapp.seeded.members[1]
    assert _owner(mapp, first["access_token"]) is None  # the old pair is dead
    reused = mapp.client.post(
        f"{API}/session/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert reused.status_code == 401 and reused.json()["error"] == "unauthorized"
    # The new access token outlives the old one's 15 minutes.
    mapp.clock.advance(minutes=14)
    assert _owner(mapp, second["access_token"]) == mapp.seeded.members[1]


def test_parallel_refreshes_with_one_token_give_one_pair(mapp: MemberApp) -> None:
    refresh = sign_in(mapp.client, mapp.settings.data_dir, M2_PHONE)["refresh_token"]
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(
            pool.map(
                lambda _: mapp.client.post(
                    f"{API}/session/refresh", json={"refresh_token": refresh}
                ),
                range(6),
            )
        )
    assert Counter(a.status_code for a in answers) == {200: 1, 401: 5}


@pytest.mark.parametrize("token", ["", "lpm_r_nothing", "lpm_a_" + "x" * 43, "y" * 257])
def test_a_forged_refresh_token_is_refused(mapp: MemberApp, token: str) -> None:
    answer = mapp.client.post(f"{API}/session/refresh", json={"refresh_token": token})
    assert answer.status_code in (401, 422)
    assert answer.json()["error"] in ("unauthorized", "invalid")


def test_signing_out_ends_the_session_and_its_refresh(mapp: MemberApp) -> None:
    body = sign_in(mapp.client, mapp.settings.data_dir, M2_PHONE)
    other = sign_in(mapp.client, mapp.settings.data_dir, M2_PHONE)  # another phone of theirs
    assert _sign_out(mapp, body["access_token"]) == 204
    assert _owner(mapp, body["access_token"]) is None
    assert _sign_out(mapp, body["access_token"]) == 401
    refreshed = mapp.client.post(
        f"{API}/session/refresh", json={"refresh_token": body["refresh_token"]}
    )
    assert refreshed.status_code == 401
    assert _owner(mapp, other["access_token"]) == mapp.seeded.members[1]


def test_signing_out_needs_a_member_token(mapp: MemberApp) -> None:
    assert mapp.client.delete(f"{API}/session").status_code == 401
    station = mapp.ledger.rotate_token("S001")
    assert _sign_out(mapp, station) == 401
    refresh = sign_in(mapp.client, mapp.settings.data_dir, M2_PHONE)["refresh_token"]
    assert _sign_out(mapp, refresh) == 401  # a refresh token is no access token


def test_one_members_tokens_never_act_as_anothers(mapp: MemberApp) -> None:
    _m1, m2, m3 = mapp.seeded.members
    two = sign_in(mapp.client, mapp.settings.data_dir, M2_PHONE)
    three = sign_in(mapp.client, mapp.settings.data_dir, M3_PHONE)
    assert _owner(mapp, two["access_token"]) == m2
    assert _owner(mapp, three["access_token"]) == m3
    # A code sent to one phone signs nobody in on another.
    code = ask_code(mapp.client, mapp.settings.data_dir, M2_PHONE)
    assert _session(mapp, M3_PHONE, code).status_code == 401
    # Signing m2 out leaves m3 signed in.
    assert _sign_out(mapp, two["access_token"]) == 204
    assert _owner(mapp, three["access_token"]) == m3
