"""`POST /m/api/v1/otp`: a code for every valid phone, alike for members and strangers,
within the per-phone (hour, day) and per-address limits, however many requests arrive at
once; asking again within the resend cooldown keeps the live code and sends nothing."""

from __future__ import annotations

import hmac
import stat
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from cloud_sync.cloud.ledger.schema_app import member_otp_sends, member_otps
from cloud_sync.cloud.member_app.gateway import MESSAGES_FILE, GatewayError
from cloud_sync.cloud.member_app.sign_in import GATEWAY_KEY
from cloud_sync.core.privacy import blind_index

from .conftest import MemberApp
from .sign_in_support import API, last_code, messages

pytestmark = pytest.mark.usefixtures("cloud_db_url")

MEMBER_PHONE = "13800138002"  # the seeded chain's second member
STRANGER_PHONE = "13912345678"


def _otp(client: TestClient, phone: str, **headers: str) -> Any:
    return client.post(f"{API}/otp", json={"phone": phone}, headers=headers)


def _count(mapp: MemberApp, table: Any) -> int:
    return int(mapp.ledger.db.read(lambda c: c.execute(select(func.count()).select_from(table)))
               .scalar_one())  # fmt: skip


def test_a_code_is_written_where_the_log_gateway_keeps_messages(mapp: MemberApp) -> None:
    answer = _otp(mapp.client, "+86 138 0013 8002")
    assert answer.status_code == 202
    assert answer.json() == {"sent": True, "expires_in": 300}
    path = mapp.settings.data_dir / MESSAGES_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    [message] = messages(mapp.settings.data_dir)
    assert message["phone"] == "+8613800138002"
    code = last_code(mapp.settings.data_dir, MEMBER_PHONE)
    assert f"验证码 {code}" in message["text"] and "加油会员" in message["text"]


def test_the_code_is_stored_keyed_and_hashed_never_in_clear(mapp: MemberApp) -> None:
    _otp(mapp.client, MEMBER_PHONE)
    code = last_code(mapp.settings.data_dir, MEMBER_PHONE)
    [row] = mapp.ledger.db.read(lambda c: c.execute(select(member_otps)).all())
    assert row.phone_index == blind_index(mapp.ledger.chain_keys, "phone", "+8613800138002")
    assert code not in row.code_hash and "13800138002" not in row.code_hash
    assert not hmac.compare_digest(row.code_hash, code)
    assert row.expires_ms - row.sent_ms == 5 * 60_000 and row.tries == 0


def test_members_and_strangers_get_the_same_answer(mapp: MemberApp) -> None:
    member = _otp(mapp.client, MEMBER_PHONE)
    stranger = _otp(mapp.client, STRANGER_PHONE)
    assert (member.status_code, member.json()) == (stranger.status_code, stranger.json())
    assert set(member.headers) == set(stranger.headers)
    # Both get a code (a stranger may sign up with it).
    assert last_code(mapp.settings.data_dir, STRANGER_PHONE)


def test_sending_a_code_never_looks_the_member_up(mapp: MemberApp) -> None:
    """The same statements for a member and a stranger: no timing tells them apart."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))

    engine = mapp.ledger.db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        _otp(mapp.client, MEMBER_PHONE)
        for_member = list(seen)
        seen.clear()
        _otp(mapp.client, STRANGER_PHONE)
        for_stranger = list(seen)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert for_member == for_stranger
    assert not [s for s in for_member if " members" in s or " plates" in s]


@pytest.mark.parametrize(
    ("phone", "code"),
    [("", "invalid"), ("1380013800", "phone.length"), ("+1 415 555 0100", "phone.country"),
     ("1380013800a", "phone.letters"), ("1" * 40, "invalid")],
)  # fmt: skip
def test_a_malformed_phone_is_refused_with_its_reason(
    mapp: MemberApp, phone: str, code: str
) -> None:
    answer = _otp(mapp.client, phone)
    assert answer.status_code == 422
    assert answer.json()["error"] == code and answer.json()["detail"]
    assert messages(mapp.settings.data_dir) == []


def test_a_phone_gets_five_codes_an_hour(mapp: MemberApp) -> None:
    statuses = []
    for _ in range(5):
        statuses.append(_otp(mapp.client, MEMBER_PHONE).status_code)
        mapp.clock.advance(seconds=61)  # past the resend cooldown
    assert statuses == [202] * 5
    mapp.clock.advance(seconds=20 * 60 - 5 * 61)
    refused = _otp(mapp.client, MEMBER_PHONE)
    assert refused.status_code == 429
    assert refused.json()["error"] == "member_app.otp_throttled"
    assert int(refused.headers["Retry-After"]) == 40 * 60  # when the first send leaves the hour
    assert len(messages(mapp.settings.data_dir)) == 5
    assert _otp(mapp.client, STRANGER_PHONE).status_code == 202  # another phone is not held up
    mapp.clock.advance(minutes=40, seconds=1)
    assert _otp(mapp.client, MEMBER_PHONE).status_code == 202


def test_a_phone_gets_ten_codes_a_day_and_sends_are_kept_a_day(mapp: MemberApp) -> None:
    for _hour in range(2):
        for _ in range(5):
            assert _otp(mapp.client, MEMBER_PHONE).status_code == 202
            mapp.clock.advance(seconds=61)
        mapp.clock.advance(hours=1)
    refused = _otp(mapp.client, MEMBER_PHONE)
    assert refused.status_code == 429
    assert refused.json()["error"] == "member_app.otp_throttled"
    # Until the first send leaves the 24 hours.
    assert int(refused.headers["Retry-After"]) == 24 * 3600 - (2 * 3600 + 10 * 61)
    assert len(messages(mapp.settings.data_dir)) == 10
    mapp.clock.advance(hours=22, seconds=-10 * 61 + 1)
    assert _otp(mapp.client, MEMBER_PHONE).status_code == 202
    mapp.clock.advance(days=1)
    assert _otp(mapp.client, STRANGER_PHONE).status_code == 202
    assert _count(mapp, member_otp_sends) == 1  # sends older than a day are purged


def test_asking_again_within_a_minute_keeps_the_live_code_and_sends_nothing(
    mapp: MemberApp,
) -> None:
    first = _otp(mapp.client, MEMBER_PHONE)
    [before] = mapp.ledger.db.read(lambda c: c.execute(select(member_otps)).all())
    mapp.clock.advance(seconds=59)
    elsewhere = TestClient(mapp.app, client=("198.51.100.2", 40000))
    again = _otp(elsewhere, MEMBER_PHONE)
    # The same answer as a send: nobody learns that a code was asked for a minute ago.
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert set(again.headers) == set(first.headers)
    assert len(messages(mapp.settings.data_dir)) == 1
    assert _count(mapp, member_otp_sends) == 1  # not counted against the phone's sends
    assert mapp.ledger.db.read(lambda c: c.execute(select(member_otps)).all()) == [before]
    mapp.clock.advance(seconds=1)
    assert _otp(mapp.client, MEMBER_PHONE).status_code == 202
    assert len(messages(mapp.settings.data_dir)) == 2
    [after] = mapp.ledger.db.read(lambda c: c.execute(select(member_otps)).all())
    assert after.sent_ms == before.sent_ms + 60_000  # a new code replaced the old one
    assert _count(mapp, member_otp_sends) == 2


def test_an_address_gets_thirty_codes_an_hour_whatever_it_forwards(mapp: MemberApp) -> None:
    here = TestClient(mapp.app, client=("203.0.113.7", 40000))
    elsewhere = TestClient(mapp.app, client=("198.51.100.2", 40000))
    statuses = [
        _otp(here, f"1391234{n:04d}", **{"X-Forwarded-For": f"192.0.2.{n}"}).status_code
        for n in range(31)
    ]
    assert statuses == [202] * 30 + [429]
    refused = _otp(here, "13912349999")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) == 3600
    assert _otp(elsewhere, "13912349999").status_code == 202


def test_twenty_requests_at_once_within_the_cooldown_send_one_code(mapp: MemberApp) -> None:
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(lambda _: _otp(mapp.client, MEMBER_PHONE).status_code, range(20)))
    assert Counter(statuses) == {202: 20}
    assert len(messages(mapp.settings.data_dir)) == 1
    assert _count(mapp, member_otp_sends) == 1
    assert _count(mapp, member_otps) == 1


def test_requests_at_once_from_one_address_stop_at_its_limit(mapp: MemberApp) -> None:
    here = TestClient(mapp.app, client=("203.0.113.7", 40000))
    phones = [f"1391234{n:04d}" for n in range(35)]
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(lambda phone: _otp(here, phone).status_code, phones))
    assert Counter(statuses) == {202: 30, 429: 5}
    assert len(messages(mapp.settings.data_dir)) == 30


def test_a_gateway_that_fails_is_a_503_to_retry(mapp: MemberApp) -> None:
    class Down:
        def send(self, phone: str, text: str) -> None:
            raise GatewayError("the SMS provider timed out")

    setattr(mapp.app.state, GATEWAY_KEY, Down())
    answer = _otp(mapp.client, MEMBER_PHONE)
    assert answer.status_code == 503
    assert answer.json()["error"] == "member_app.gateway_unavailable"
    assert answer.headers["Retry-After"] == "30"
