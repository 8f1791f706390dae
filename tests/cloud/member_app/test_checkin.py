"""POST /m/api/v1/me/checkin: once a day per member in the chain's time zone, the points
booked with it (and nothing when it is refused), streak bonuses, and what HQ's reports and
the stations see of it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from cloud_sync.cloud.ledger import aggregates_ledger
from cloud_sync.cloud.ledger import reports_hq as rh
from cloud_sync.cloud.ledger.member_privacy import erase_member
from cloud_sync.cloud.ledger.schema import changes, journals, lines, lots
from cloud_sync.cloud.ledger.schema_app import checkins
from tests.browser import serve_in_thread
from tests.cloud.hq.test_aggregates import balanced
from tests.cloud.ledger.fake_station import SHANGHAI, member_id

from .activity_support import publish_checkin
from .conftest import MemberApp

pytestmark = pytest.mark.usefixtures("cloud_db_url")

URL = "/m/api/v1/me/checkin"


def balance(mapp: MemberApp, member: str) -> int:
    view = mapp.ledger.member(member, mapp.clock())
    assert view is not None
    return int(view["points"])


def check_in(mapp: MemberApp, member: str) -> httpx.Response:
    answer = mapp.client.post(URL, headers=mapp.auth(member))
    assert isinstance(answer, httpx.Response)
    return answer


def count(mapp: MemberApp, table: Any, *where: Any) -> int:
    return int(
        mapp.ledger.db.read(
            lambda conn: conn.execute(
                select(func.count()).select_from(table).where(*where)
            ).scalar_one()
        )
    )


def test_check_in_is_off_without_a_checkin_section(mapp: MemberApp) -> None:
    member = mapp.seeded.members[1]
    before = balance(mapp, member)
    answer = check_in(mapp, member)
    assert answer.status_code == 409
    assert answer.json()["error"] == "member_app.checkin_off"
    assert balance(mapp, member) == before
    assert count(mapp, checkins) == 0


def test_once_a_day_and_the_second_is_refused_with_the_days_record(mapp: MemberApp) -> None:
    publish_checkin(mapp)
    member = mapp.seeded.members[1]
    before = balance(mapp, member)
    first = check_in(mapp, member)
    assert first.status_code == 201, first.text
    body = first.json()
    assert {k: body[k] for k in ("day", "streak", "points", "bonus")} == {
        "day": "2026-03-02",
        "streak": 1,
        "points": 5,
        "bonus": 0,
    }
    assert body["balance"] == before + 5 == balance(mapp, member)
    assert body["as_of"] == mapp.clock().isoformat()
    assert "minutes" in body["freshness"]["note_en"]
    mapp.clock.advance(hours=5)
    second = check_in(mapp, member)
    assert second.status_code == 409
    assert second.json()["error"] == "member_app.checked_in"
    assert second.json()["checkin"] == {
        k: body[k] for k in ("day", "streak", "points", "bonus", "at")
    }
    assert balance(mapp, member) == before + 5


def test_streak_and_bonuses_over_days_and_a_missed_day_starts_again(mapp: MemberApp) -> None:
    publish_checkin(mapp)  # 5 a day; +20 every 3rd day in a row, +100 every 6th
    member = mapp.seeded.members[1]
    start = balance(mapp, member)
    got = []
    for _ in range(7):
        answer = check_in(mapp, member)
        assert answer.status_code == 201, answer.text
        got.append((answer.json()["streak"], answer.json()["points"], answer.json()["bonus"]))
        mapp.clock.advance(days=1)
    assert got == [
        (1, 5, 0),
        (2, 5, 0),
        (3, 25, 20),
        (4, 5, 0),
        (5, 5, 0),
        (6, 125, 120),  # both entries divide 6
        (7, 5, 0),
    ]
    mapp.clock.advance(days=1)  # a day missed
    again = check_in(mapp, member).json()
    assert (again["streak"], again["points"]) == (1, 5)
    assert balance(mapp, member) == start + sum(p for _, p, _ in got) + 5


def test_the_day_turns_at_midnight_in_shanghai_not_utc(mapp: MemberApp) -> None:
    publish_checkin(mapp)
    member = mapp.seeded.members[1]
    # 07:00 in Shanghai is 23:00 UTC the evening before; 09:00 is 01:00 UTC: one Shanghai day.
    mapp.clock.now = datetime(2026, 3, 3, 7, 0, tzinfo=SHANGHAI)
    assert check_in(mapp, member).json()["day"] == "2026-03-03"
    mapp.clock.now = datetime(2026, 3, 3, 9, 0, tzinfo=SHANGHAI)
    assert check_in(mapp, member).status_code == 409
    mapp.clock.now = datetime(2026, 3, 3, 23, 59, 59, tzinfo=SHANGHAI)
    assert check_in(mapp, member).status_code == 409
    mapp.clock.now = datetime(2026, 3, 4, 0, 0, 0, tzinfo=SHANGHAI)
    nextday = check_in(mapp, member).json()
    assert (nextday["day"], nextday["streak"]) == ("2026-03-04", 2)


def test_points_are_booked_as_issued_by_hq_and_reach_the_stations(mapp: MemberApp) -> None:
    publish_checkin(mapp)
    member = mapp.seeded.members[1]
    cursor = mapp.ledger.db.read(
        lambda conn: conn.execute(select(func.max(changes.c.id))).scalar_one()
    )
    assert check_in(mapp, member).status_code == 201

    def read(conn: Any) -> dict[str, Any]:
        journal = conn.execute(select(journals).where(journals.c.kind == "checkin")).one()
        return {
            "journal": journal,
            "lines": sorted(
                (r.account, int(r.points))
                for r in conn.execute(select(lines).where(lines.c.journal_id == journal.journal_id))
            ),
            "lot": conn.execute(select(lots).where(lots.c.journal_id == journal.journal_id)).one(),
            "feed": [
                (r.kind, r.ref)
                for r in conn.execute(
                    select(changes.c.kind, changes.c.ref).where(changes.c.id > cursor)
                )
            ],
            "problems": aggregates_ledger.check(conn),
            "rows": rh.liability(conn, "2025-01", "2026-03"),
            "outstanding": aggregates_ledger.ledger_outstanding(conn),
        }

    got = mapp.ledger.db.read(read)
    assert got["journal"].station_id is None  # HQ's own posting: the roll-forward's "HQ" row
    assert got["lines"] == [(f"member:{member}", 5), ("points_issued", -5)]
    assert (got["lot"].source, int(got["lot"].remaining)) == ("checkin", 5)
    assert got["lot"].expires_at.startswith("2027-03-02")  # the rules' 12 months
    assert ("member", member) in got["feed"]
    assert got["problems"] == []
    balanced(got["rows"])
    march = {r["station_id"]: r for r in got["rows"] if r["month"] == "2026-03"}
    assert march[""]["issued"] == 5  # counted as issued (the dashboard's points issued)
    assert march["*"]["closing"] == got["outstanding"]["member_accounts"]


def test_a_merged_id_checks_in_as_its_survivor_and_an_erased_member_is_signed_out(
    mapp: MemberApp,
) -> None:
    publish_checkin(mapp)
    survivor = mapp.seeded.members[0]
    merged = member_id(9)  # the same phone registered again, merged into m1
    assert check_in(mapp, merged).status_code == 201
    assert check_in(mapp, survivor).status_code == 409  # one member, one check-in a day
    stored = mapp.ledger.db.read(
        lambda conn: conn.execute(select(checkins.c.member_id)).scalars().all()
    )
    assert stored == [survivor]
    token = mapp.token_for(mapp.seeded.members[2])
    mapp.ledger.db.transact(
        lambda conn: erase_member(
            mapp.ledger.db, conn, mapp.seeded.members[2], actor="hq", now=mapp.clock()
        )
    )
    mapp.clock.advance(days=1)
    gone = mapp.client.post(URL, headers={"Authorization": f"Bearer {token}"})
    assert gone.status_code == 401


def test_exactly_once_under_20_concurrent_requests_on_a_real_server(mapp: MemberApp) -> None:
    publish_checkin(mapp)
    member = mapp.seeded.members[1]
    before = balance(mapp, member)
    headers = mapp.auth(member)
    with (
        serve_in_thread(mapp.app) as url,
        httpx.Client(base_url=url, timeout=30) as client,
        ThreadPoolExecutor(max_workers=20) as pool,
    ):
        answers = list(pool.map(lambda _: client.post(URL, headers=headers), range(20)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * 19, [a.text for a in answers if a.status_code >= 500]
    assert {a.json()["error"] for a in answers if a.status_code == 409} == {"member_app.checked_in"}
    assert count(mapp, checkins) == 1
    assert count(mapp, journals, journals.c.kind == "checkin") == 1
    assert balance(mapp, member) == before + 5
    mapp.clock.advance(days=1)
    assert check_in(mapp, member).json()["streak"] == 2


def test_zero_points_a_day_books_no_journal(mapp: MemberApp) -> None:
    publish_checkin(mapp, {"points": 0, "streak": [{"days": 2, "bonus": 7}], "daily_cap": 1})
    member = mapp.seeded.members[1]
    assert check_in(mapp, member).json()["points"] == 0
    assert count(mapp, journals, journals.c.kind == "checkin") == 0
    mapp.clock.advance(days=1)
    assert check_in(mapp, member).json()["points"] == 7
    assert count(mapp, journals, journals.c.kind == "checkin") == 1
