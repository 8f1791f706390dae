"""A member's plates in the app: added normalised and sealed, refused when another member
holds them (without saying whose), limited, removed; every station hears of both through the
changes feed, and a real station store drops a removed plate. SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cloud_sync.cloud.ledger.schema import hq_audit, plates
from cloud_sync.core.privacy import blind_index
from cloud_sync.core.wire import EnrolResponse, MemberDelta, MemberKeysWire
from edge_agent.errors import ServiceError
from edge_agent.services.members import add_plate, find_member
from edge_agent.services.station import Station, open_station
from edge_agent.services.sync import StationSyncPort
from tests.browser import serve_in_thread
from tests.cloud.hq.seed_chain import NOW
from tests.support import FakeClock, make_settings

from .conftest import MemberApp

pytestmark = pytest.mark.usefixtures("cloud_db_url")

PLATES = "/m/api/v1/me/plates"


def _add(mapp: MemberApp, member: str, plate: str) -> tuple[int, dict[str, Any]]:
    answer = mapp.client.post(PLATES, headers=mapp.auth(member), json={"plate": plate})
    return answer.status_code, answer.json()


def _plates(mapp: MemberApp, member: str) -> list[str]:
    answer = mapp.client.get(PLATES, headers=mapp.auth(member))
    assert answer.status_code == 200
    return [row["plate"] for row in answer.json()["plates"]]


@pytest.fixture
def station(tmp_path: Path) -> Iterator[Station]:
    """A real station store for S003 (the seeded chain's station that never pushed, so the
    cloud's snapshots of it are as of its sequence 0)."""
    opened = open_station(make_settings(tmp_path / "s3", "S003"), create=True, clock=FakeClock(NOW))
    yield opened
    opened.close()


def _delta(mapp: MemberApp, member: str, since: int) -> MemberDelta:
    page = mapp.ledger.changes("S003", since, 500, NOW)
    (found,) = [delta for delta in page.members if delta.member_id == member]
    return found


def _last_change(mapp: MemberApp) -> int:
    return mapp.ledger.changes("S003", 0, 500, NOW).next_cursor


def test_a_plate_is_added_normalised_once_and_stations_hear_of_it(mapp: MemberApp) -> None:
    member = mapp.seeded.members[0]
    since = _last_change(mapp)
    status, body = _add(mapp, member, " 京a·12345 ")
    assert (status, body["added"]) == (201, True)
    assert [row["plate"] for row in body["plates"]] == ["京A12345"]
    status, again = _add(mapp, member, "京A12345")  # the member's own plate: nothing changes
    assert (status, again["added"], again["plates"]) == (200, False, body["plates"])
    assert _plates(mapp, member) == ["京A12345"]
    index = blind_index(mapp.ledger.chain_keys, "plate", "京A12345")
    assert [plate.plate_index for plate in _delta(mapp, member, since).plates] == [index]
    audit = mapp.ledger.db.read(
        lambda conn: conn.execute(
            select(hq_audit.c.actor, hq_audit.c.action).where(hq_audit.c.target == member)
        ).all()
    )
    assert [tuple(row) for row in audit] == [(f"member:{member}", "member.plate_added")]


def test_another_members_plate_is_refused_without_saying_whose(mapp: MemberApp) -> None:
    first, second = mapp.seeded.members[:2]
    assert _add(mapp, first, "粤BD12345")[0] == 201
    status, body = _add(mapp, second, "粤BD12345")
    assert status == 409 and body["error"] == "member_app.plate_taken"
    assert first not in body["detail"] and "138" not in body["detail"]
    assert _plates(mapp, second) == [] and _plates(mapp, first) == ["粤BD12345"]
    # Removing it is "not found" for the other member, as for a plate nobody holds.
    for plate in ("粤BD12345", "沪C99999"):
        answer = mapp.client.delete(f"{PLATES}/{plate}", headers=mapp.auth(second))
        assert (answer.status_code, answer.json()["error"]) == (404, "not_found")
    assert _plates(mapp, first) == ["粤BD12345"]


def test_bad_plates_and_too_many_plates_are_refused(mapp: MemberApp) -> None:
    member = mapp.seeded.members[2]
    for bad in ("京AI2345", "12345", "京A1234567890"):
        status, body = _add(mapp, member, bad)
        assert status == 422 and body["error"].startswith("plate."), body
    assert _add(mapp, member, "x" * 33)[0] == 422
    for n in range(5):
        assert _add(mapp, member, f"京A1234{n}")[0] == 201
    status, body = _add(mapp, member, "京A12349")
    assert (status, body["error"]) == (409, "member_app.plate_limit")
    assert len(_plates(mapp, member)) == 5


def test_a_removed_plate_leaves_the_member_and_the_stations_copy(
    mapp: MemberApp, station: Station
) -> None:
    member = mapp.seeded.members[0]
    port = _enrolled(mapp, station)
    assert _add(mapp, member, "京A12345")[0] == 201
    _pull(mapp, port)
    assert find_member(station, plate="京A12345").member_id == member
    since = _last_change(mapp)
    answer = mapp.client.delete(f"{PLATES}/京A12345", headers=mapp.auth(member))
    assert answer.status_code == 200 and answer.json()["plates"] == []
    assert _delta(mapp, member, since).plates == []
    _pull(mapp, port)
    with pytest.raises(ServiceError):
        find_member(station, plate="京A12345")
    assert find_member(station, phone="13800138001").member_id == member


def test_a_plate_attached_at_the_station_after_the_snapshot_is_kept(
    mapp: MemberApp, station: Station
) -> None:
    """The cloud's list is the whole list, except what the station attached since."""
    member = mapp.seeded.members[0]
    port = _enrolled(mapp, station)
    _pull(mapp, port)
    add_plate(station, member, "苏E54321", actor="cashier1")  # not pushed yet
    assert _add(mapp, member, "京A12345")[0] == 201  # a change the station pulls
    _pull(mapp, port)
    assert find_member(station, plate="苏E54321").member_id == member
    assert find_member(station, plate="京A12345").member_id == member


def test_parallel_adds_keep_one_owner_and_the_limit(mapp: MemberApp) -> None:
    members = mapp.seeded.members
    tokens = {m: mapp.auth(m) for m in members}

    def add(args: tuple[str, str]) -> int:
        member, plate = args
        answer = mapp.client.post(PLATES, headers=tokens[member], json={"plate": plate})
        return int(answer.status_code)

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(add, [(members[i % 3], "浙A88888") for i in range(12)]))
    owners = mapp.ledger.db.read(
        lambda conn: conn.execute(select(plates.c.member_id)).scalars().all()
    )
    assert len(owners) == 1
    assert statuses.count(409) == 8 and sorted(set(statuses)) == [200, 201, 409]
    assert statuses.count(201) == 1
    member = members[1] if owners[0] != members[1] else members[2]
    mapp.clock.advance(days=1)  # a new day: the attempts above leave the daily count
    tokens = {m: mapp.auth(m) for m in members}
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(add, [(member, f"浙B1000{n}") for n in range(10)]))
    assert statuses.count(201) == 5 and statuses.count(409) == 5
    assert len(_plates(mapp, member)) == 5


def test_a_member_at_the_limit_learns_nothing_of_other_members_plates(mapp: MemberApp) -> None:
    owner, member = mapp.seeded.members[:2]
    assert _add(mapp, owner, "粤BD12345")[0] == 201
    for n in range(5):
        assert _add(mapp, member, f"京A1234{n}")[0] == 201
    taken, free = _add(mapp, member, "粤BD12345"), _add(mapp, member, "粤BD54321")
    assert taken == free  # both the limit, word for word: whose a plate is stays unsaid
    assert (taken[0], taken[1]["error"]) == (409, "member_app.plate_limit")
    assert _add(mapp, member, "京A12340")[0] == 200  # the member's own plate again


def test_plate_adds_are_limited_per_day_under_parallel_attempts(mapp: MemberApp) -> None:
    """Ten attempts a day, refused ones counted: a member cannot probe plates without end."""
    member, other = mapp.seeded.members[1], mapp.seeded.members[2]
    assert _add(mapp, other, "粤BD12345")[0] == 201
    headers = mapp.auth(member)
    with (
        serve_in_thread(mapp.app) as url,
        httpx.Client(base_url=url, timeout=30) as client,
        ThreadPoolExecutor(max_workers=8) as pool,
    ):
        answers = list(
            pool.map(
                lambda plate: client.post(PLATES, json={"plate": plate}, headers=headers),
                ["粤BD12345"] * 6 + [f"浙B1000{n}" for n in range(8)],
            )
        )
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(429) == 4 and statuses.count(201) + statuses.count(409) == 10
    throttled = next(a for a in answers if a.status_code == 429)
    assert throttled.json()["error"] == "member_app.plate_throttled"
    assert 0 < int(throttled.headers["Retry-After"]) <= 24 * 3600
    assert _add(mapp, member, "浙B19999")[0] == 429  # its own plates change nothing of that
    mapp.clock.advance(hours=24)
    assert _add(mapp, member, "浙B19999")[0] in (201, 409)  # a new day (201, or at the limit)
    audit = mapp.ledger.db.read(
        lambda conn: conn.execute(
            select(hq_audit.c.action).where(hq_audit.c.actor == f"member:{member}")
        ).all()
    )
    assert len(audit) == len(_plates(mapp, member))  # HQ sees each plate added


def _enrolled(mapp: MemberApp, station: Station) -> StationSyncPort:
    keys = mapp.ledger.chain_keys
    cloud = mapp.app.state.cloud
    port = StationSyncPort(station)
    port.complete_enrolment(
        EnrolResponse(
            station_id="S003",
            member_keys=MemberKeysWire(
                key_id=keys.key_id,
                encryption_key=base64.b64encode(keys.encryption_key).decode(),
                index_key=base64.b64encode(keys.index_key).decode(),
            ),
            signing_key_id=cloud.signing_key_id,
            signing_public_key=cloud.signing_public_key,
        )
    )
    return port


def _pull(mapp: MemberApp, port: StationSyncPort) -> None:
    """Every page of the cloud's changes feed, applied by the station as a sync would."""
    for _ in range(20):
        page = mapp.ledger.changes("S003", port.changes_cursor(), 500, NOW + timedelta(seconds=1))
        port.apply_changes(page)
        if not page.more:
            return
    raise AssertionError("the feed never ended")
