"""Nobody but a phone's owner can lock them out or keep a stolen session: a code asked for
again within the cooldown stays good, one address gets a bounded number of wrong codes
(whatever the phones, however many at once), and a used refresh token presented again ends
its session, except for the loser of the app's own parallel refreshes."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cloud_sync.cloud.ledger.member_sessions import member_of_access
from cloud_sync.cloud.ledger.postings import millis
from cloud_sync.cloud.ledger.schema_app import member_otps, member_sign_in_failures

from .conftest import MemberApp
from .sign_in_support import API, ask_code, sign_in

pytestmark = pytest.mark.usefixtures("cloud_db_url")

M2_PHONE = "13800138002"
PHONES = [f"1391234{n:04d}" for n in range(8)]
FAILURES_PER_HOUR = 30  # [member_app] session_failures_per_address_per_hour's default


def _client(mapp: MemberApp, address: str) -> TestClient:
    return TestClient(mapp.app, client=(address, 40000))


def _session(client: TestClient, phone: str, code: str, **more: Any) -> Any:
    return client.post(f"{API}/session", json={"phone": phone, "code": code, **more})


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def _codes(mapp: MemberApp, phones: list[str]) -> dict[str, str]:
    return {phone: ask_code(mapp.client, mapp.settings.data_dir, phone) for phone in phones}


def _owner(mapp: MemberApp, access_token: str) -> str | None:
    now_ms = millis(mapp.clock())
    found = mapp.ledger.db.read(lambda c: member_of_access(c, access_token, now_ms=now_ms))
    return None if found is None else found[0]


def _refresh(mapp: MemberApp, token: str) -> Any:
    return mapp.client.post(f"{API}/session/refresh", json={"refresh_token": token})


def test_a_strangers_request_within_the_cooldown_leaves_the_members_code_good(
    mapp: MemberApp,
) -> None:
    code = ask_code(mapp.client, mapp.settings.data_dir, M2_PHONE)
    mapp.clock.advance(seconds=30)
    meddler = _client(mapp, "198.51.100.2")
    for _ in range(10):
        assert meddler.post(f"{API}/otp", json={"phone": M2_PHONE}).status_code == 202
    assert _session(mapp.client, M2_PHONE, code).status_code == 200


def test_an_address_gets_thirty_wrong_codes_an_hour_whatever_the_phones(
    mapp: MemberApp,
) -> None:
    codes = _codes(mapp, PHONES[:7])
    here, elsewhere = _client(mapp, "203.0.113.7"), _client(mapp, "198.51.100.2")
    errors = Counter(
        _session(here, phone, _wrong(codes[phone])).json()["error"]
        for phone in PHONES[:6]
        for _ in range(5)
    )
    assert errors == {"member_app.otp_wrong": FAILURES_PER_HOUR}
    last = PHONES[6]
    refused = _session(here, last, codes[last], consent=True)  # even the right code
    assert refused.status_code == 429
    assert refused.json()["error"] == "member_app.session_throttled"
    assert refused.headers["Retry-After"] == "3600"
    # The refused answer was not checked: the phone's code is untouched and signs in.
    [row] = mapp.ledger.db.read(lambda c: c.execute(select(member_otps)).all())
    assert row.tries == 0
    assert _session(elsewhere, last, codes[last], consent=True).status_code == 200
    mapp.clock.advance(hours=1)
    assert _session(here, last, "123456").json()["error"] == "member_app.otp_expired"


def test_right_codes_and_codes_for_no_live_code_are_not_counted(mapp: MemberApp) -> None:
    here = _client(mapp, "203.0.113.7")
    for _ in range(FAILURES_PER_HOUR + 5):
        assert _session(here, PHONES[0], "123456").json()["error"] == "member_app.otp_expired"
    for phone, code in _codes(mapp, PHONES[:3]).items():
        assert _session(here, phone, code, consent=True).status_code == 200
    kept = mapp.ledger.db.read(lambda c: c.execute(select(member_sign_in_failures)).all())
    assert kept == []


def test_wrong_codes_at_once_from_one_address_stop_at_the_limit(mapp: MemberApp) -> None:
    codes = _codes(mapp, PHONES)
    here = _client(mapp, "203.0.113.7")
    guesses = [(phone, _wrong(codes[phone])) for phone in PHONES for _ in range(5)]
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda guess: _session(here, *guess), guesses))
    assert Counter(a.status_code for a in answers) == {401: FAILURES_PER_HOUR, 429: 10}
    # Exactly the counted answers were tried against the phones' codes.
    rows = mapp.ledger.db.read(lambda c: c.execute(select(member_otps)).all())
    dead = len(PHONES) - len(rows)  # the 5th wrong answer deletes a code
    assert sum(row.tries for row in rows) + 5 * dead == FAILURES_PER_HOUR


def test_a_used_refresh_token_presented_again_ends_the_session(
    mapp: MemberApp, caplog: pytest.LogCaptureFixture
) -> None:
    first = sign_in(mapp.client, mapp.settings.data_dir, M2_PHONE)
    other = sign_in(mapp.client, mapp.settings.data_dir, M2_PHONE)  # the member's other phone
    second = _refresh(mapp, first["refresh_token"]).json()
    mapp.clock.advance(seconds=11)
    reused = _refresh(mapp, first["refresh_token"])  # a thief's copy, or the owner's
    assert reused.status_code == 401 and reused.json()["error"] == "unauthorized"
    assert "session is ended" in reused.json()["detail"]
    assert any("refresh token came back" in r.getMessage() for r in caplog.records)
    # Both holders must sign in again: the newest pair is dead too.
    assert _owner(mapp, second["access_token"]) is None
    assert _refresh(mapp, second["refresh_token"]).status_code == 401
    assert _owner(mapp, other["access_token"]) == mapp.seeded.members[1]
    assert _refresh(mapp, other["refresh_token"]).status_code == 200


def test_within_ten_seconds_a_used_token_is_refused_and_the_session_kept(
    mapp: MemberApp,
) -> None:
    first = sign_in(mapp.client, mapp.settings.data_dir, M2_PHONE)
    second = _refresh(mapp, first["refresh_token"]).json()
    mapp.clock.advance(seconds=10)
    assert _refresh(mapp, first["refresh_token"]).status_code == 401
    assert _owner(mapp, second["access_token"]) == mapp.seeded.members[1]
    assert _refresh(mapp, second["refresh_token"]).status_code == 200


def test_parallel_refreshes_give_one_winner_and_revoke_nothing(mapp: MemberApp) -> None:
    refresh = sign_in(mapp.client, mapp.settings.data_dir, M2_PHONE)["refresh_token"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: _refresh(mapp, refresh), range(8)))
    assert Counter(a.status_code for a in answers) == {200: 1, 401: 7}
    [winner] = [a.json() for a in answers if a.status_code == 200]
    assert _owner(mapp, winner["access_token"]) == mapp.seeded.members[1]
    assert _refresh(mapp, winner["refresh_token"]).status_code == 200
