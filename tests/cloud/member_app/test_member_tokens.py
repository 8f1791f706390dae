"""A member's token is the only key to `/m/api/v1/me…`: station, admin and expired or
revoked tokens are refused alike."""

from __future__ import annotations

import pytest

from cloud_sync.cloud.ledger.member_sessions import member_of_access, revoke_session
from cloud_sync.cloud.ledger.postings import millis
from tests.cloud.server.helpers import ADMIN_TOKEN

from .conftest import MemberApp

pytestmark = pytest.mark.usefixtures("cloud_db_url")


def _who(mapp: MemberApp, token: str) -> int:
    answer = mapp.client.get("/m/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    return int(answer.status_code)


def test_a_station_or_admin_token_is_not_a_member_token(mapp: MemberApp) -> None:
    station_token = mapp.ledger.rotate_token("S001")
    assert _who(mapp, station_token) == 401
    assert _who(mapp, ADMIN_TOKEN) == 401
    assert mapp.client.get("/m/api/v1/me").status_code == 401


def test_an_expired_or_revoked_token_is_refused(mapp: MemberApp) -> None:
    member = mapp.seeded.members[0]
    token = mapp.token_for(member)
    assert _who(mapp, token) == 200
    mapp.clock.advance(minutes=mapp.settings.member_app.access_minutes, seconds=1)
    assert _who(mapp, token) == 401
    token = mapp.token_for(member)
    now_ms = millis(mapp.clock())
    found = mapp.ledger.db.read(lambda conn: member_of_access(conn, token, now_ms=now_ms))
    assert found is not None
    session_id = found[1]
    mapp.ledger.db.transact(lambda conn: revoke_session(conn, session_id, now_ms=now_ms))
    assert _who(mapp, token) == 401
