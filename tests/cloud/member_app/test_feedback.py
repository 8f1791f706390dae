"""POST /m/api/v1/me/feedback: a rating and a comment about a sale (its station), a station
or the chain; one per sale; at most `feedback_per_day` per member, also under parallel posts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from cloud_sync.cloud.ledger.schema_app import feedback
from tests.browser import serve_in_thread

from .activity_support import sale_of
from .conftest import MemberApp

pytestmark = pytest.mark.usefixtures("cloud_db_url")

URL = "/m/api/v1/me/feedback"


def post(mapp: MemberApp, member: str, **body: Any) -> httpx.Response:
    answer = mapp.client.post(URL, json=body, headers=mapp.auth(member))
    assert isinstance(answer, httpx.Response)
    return answer


def stored(mapp: MemberApp) -> int:
    return int(
        mapp.ledger.db.read(
            lambda conn: conn.execute(select(func.count()).select_from(feedback)).scalar_one()
        )
    )


def test_feedback_on_a_sale_names_its_station_and_comes_once(mapp: MemberApp) -> None:
    member = mapp.seeded.members[2]
    sale = sale_of(mapp, member)  # sold at S002
    first = post(mapp, member, sale_id=sale.sale_id, rating=4, comment="  加油很快 \n 服务好  ")
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["station_id"], body["rating"], body["comment"]) == (
        "S002",
        4,
        "加油很快 \n 服务好",
    )
    again = post(mapp, member, sale_id=sale.sale_id, rating=4, comment="加油很快 \n 服务好")
    assert (again.status_code, again.json()) == (200, body)
    other = post(mapp, member, sale_id=sale.sale_id, rating=1, comment="changed my mind")
    assert (other.status_code, other.json()["error"]) == (409, "member_app.feedback_exists")
    assert other.json()["feedback"] == body
    mismatch = post(mapp, member, sale_id=sale.sale_id, station_id="S001", rating=3)
    assert mismatch.status_code == 422
    assert stored(mapp) == 1


def test_a_station_or_the_chain_without_a_sale(mapp: MemberApp) -> None:
    member = mapp.seeded.members[2]
    station = post(mapp, member, station_id="S003", rating=2, comment="厕所不干净")
    assert (station.status_code, station.json()["station_id"]) == (201, "S003")
    chain = post(mapp, member, rating=5)
    assert (chain.status_code, chain.json()["station_id"], chain.json()["comment"]) == (
        201,
        None,
        "",
    )
    unknown = post(mapp, member, station_id="S999", rating=5)
    assert (unknown.status_code, unknown.json()["error"]) == (404, "station.unknown")


def test_another_members_sale_is_no_sale(mapp: MemberApp) -> None:
    owner, other = mapp.seeded.members[1], mapp.seeded.members[2]
    theirs = post(mapp, other, sale_id=sale_of(mapp, owner).sale_id, rating=1)
    missing = post(mapp, other, sale_id="00000000-0000-4000-8000-000000000000", rating=1)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()
    assert stored(mapp) == 0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"rating": 0}, 422, "invalid"),
        ({"rating": 6}, 422, "invalid"),
        ({"rating": "5"}, 422, "invalid"),
        ({"rating": 3, "comment": "字" * 501}, 422, "member_app.comment"),
        ({"rating": 3, "comment": "a\x07b"}, 422, "member_app.comment"),
        ({"rating": 3, "comment": "x" * 2001}, 422, "invalid"),
        ({"rating": 3, "member_id": "someone"}, 422, "invalid"),
        ({"rating": 3, "station_id": "S" * 33}, 422, "invalid"),
    ],
)
def test_bad_feedback_is_refused(
    mapp: MemberApp, body: dict[str, Any], status: int, code: str
) -> None:
    answer = post(mapp, mapp.seeded.members[2], **body)
    assert (answer.status_code, answer.json()["error"]) == (status, code)
    assert stored(mapp) == 0


def test_500_characters_after_trimming_pass(mapp: MemberApp) -> None:
    answer = post(mapp, mapp.seeded.members[2], rating=3, comment="  " + "字" * 500 + "\n ")
    assert answer.status_code == 201
    assert len(answer.json()["comment"]) == 500


def test_the_daily_limit_holds_and_lifts_after_24_hours(mapp: MemberApp) -> None:
    member = mapp.seeded.members[2]
    per_day = mapp.settings.member_app.feedback_per_day
    sale = sale_of(mapp, member)
    assert post(mapp, member, sale_id=sale.sale_id, rating=5, comment="ok").status_code == 201
    for _ in range(per_day - 1):
        assert post(mapp, member, station_id="S001", rating=3).status_code == 201
    over = post(mapp, member, station_id="S001", rating=3)
    assert (over.status_code, over.json()["error"]) == (429, "member_app.feedback_limit")
    # A retry of feedback already given is no new feedback: answered, not limited.
    assert post(mapp, member, sale_id=sale.sale_id, rating=5, comment="ok").status_code == 200
    assert post(mapp, mapp.seeded.members[1], rating=3).status_code == 201  # per member
    mapp.clock.advance(hours=24, seconds=1)
    assert post(mapp, member, station_id="S001", rating=3).status_code == 201


def test_the_limit_holds_under_20_parallel_posts_on_a_real_server(mapp: MemberApp) -> None:
    member = mapp.seeded.members[2]
    per_day = mapp.settings.member_app.feedback_per_day
    headers = mapp.auth(member)
    with (
        serve_in_thread(mapp.app) as url,
        httpx.Client(base_url=url, timeout=30) as client,
        ThreadPoolExecutor(max_workers=20) as pool,
    ):
        answers = list(
            pool.map(
                lambda n: client.post(
                    URL,
                    json={"station_id": "S001", "rating": 4, "comment": f"#{n}"},
                    headers=headers,
                ),
                range(20),
            )
        )
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * per_day + [429] * (20 - per_day)
    assert stored(mapp) == per_day
