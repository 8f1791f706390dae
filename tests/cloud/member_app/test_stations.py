"""The station finder and where HQ says stations are: `loyalpump cloud station locate`, the
console's `PUT /api/v1/hq/stations/{id}/location`, and the public
`GET /m/api/v1/stations?lat=&lng=`; SQLite and PostgreSQL."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cloud_sync.cloud.cli import cloud_app
from cloud_sync.cloud.ledger.schema import hq_audit
from cloud_sync.cloud.ledger.station_admin import revoke_station
from cloud_sync.cloud.ledger.station_locations import distance_m, set_station_location
from tests.cloud.hq.seed_chain import NOW
from tests.cloud.server.helpers import ADMIN_TOKEN

from .conftest import MemberApp

pytestmark = pytest.mark.usefixtures("cloud_db_url")

FINDER = "/m/api/v1/stations"


def _locate(mapp: MemberApp, *args: str) -> Any:
    return CliRunner().invoke(
        cloud_app, ["station", "locate", "-c", str(mapp.config), *args], catch_exceptions=False
    )


def _degrees(e6: int) -> str:
    return str(Decimal(e6).scaleb(-6))


def _find(mapp: MemberApp, **params: Any) -> list[dict[str, Any]]:
    answer = mapp.client.get(FINDER, params=params)  # no token: the finder is public
    assert answer.status_code == 200, answer.text
    return list(answer.json()["stations"])


def test_hq_locates_stations_and_members_find_the_nearest_first(mapp: MemberApp) -> None:
    done = _locate(
        mapp, "--id", "S001", "--lat", "31.2304", "--lng", "121.4737", "--address", "上海市人民广场"
    )
    assert done.exit_code == 0, done.stderr
    assert "S001" in done.stdout
    as_json = _locate(mapp, "--id", "S002", "--lat", "39.9042", "--lng", "116.4074", "--json")
    assert json.loads(as_json.stdout)["lat_e6"] == 39_904_200
    found = _find(mapp, lat="31.2", lng="121.5")
    assert [s["station_id"] for s in found] == ["S001", "S002", "S003"]
    first, second, unlocated = found
    assert first["address"] == "上海市人民广场" and first["name"] == "站点1"
    assert (first["lat"], first["lng"]) == ("31.230400", "121.473700")
    assert first["distance_m"] == distance_m(31_200_000, 121_500_000, 31_230_400, 121_473_700)
    assert 4_000 < first["distance_m"] < 4_500
    assert 1_060_000 < second["distance_m"] < 1_075_000  # Shanghai to Beijing
    assert unlocated["distance_m"] is None and unlocated["lat"] is None
    assert [s["station_id"] for s in _find(mapp, lat="39.9", lng="116.4", limit=1)] == ["S002"]
    assert [s["station_id"] for s in _find(mapp)] == ["S001", "S002", "S003"]  # no point: by id
    audit = mapp.ledger.db.read(
        lambda conn: conn.execute(
            select(hq_audit.c.actor, hq_audit.c.target).where(hq_audit.c.action == "station.locate")
        ).all()
    )
    assert [tuple(row) for row in audit] == [("cli", "S001"), ("cli", "S002")]


def test_a_revoked_station_is_not_shown(mapp: MemberApp) -> None:
    _locate(mapp, "--id", "S002", "--lat", "39.9042", "--lng", "116.4074")
    mapp.ledger.db.transact(lambda conn: revoke_station(conn, "S002", actor="hq", now=NOW))
    assert [s["station_id"] for s in _find(mapp, lat="39.9", lng="116.4")] == ["S001", "S003"]


@pytest.mark.parametrize(
    "args",
    [
        ("--id", "S001", "--lat", "91", "--lng", "121"),
        ("--id", "S001", "--lat", "31.1234567", "--lng", "121"),  # beyond the millionth
        ("--id", "S001", "--lat", "31", "--lng", "-180.5"),
        ("--id", "S001", "--lat", "north", "--lng", "121"),
        ("--id", "S001", "--lat", "NaN", "--lng", "121"),
        ("--id", "S009", "--lat", "31", "--lng", "121"),
        ("--id", "S001", "--lat", "31", "--lng", "121", "--address", "a\x07b"),
        ("--id", "S001", "--lat", "31", "--lng", "121", "--address", "路" * 201),
    ],
)
def test_bad_input_is_exit_2_with_one_line(mapp: MemberApp, args: tuple[str, ...]) -> None:
    refused = _locate(mapp, *args)
    assert refused.exit_code == 2, refused.stdout
    assert len(refused.stderr.strip().splitlines()) == 1
    assert _find(mapp, lat="31", lng="121")[0]["distance_m"] is None  # nothing was set


def test_the_console_route_sets_a_location_for_admins_only(mapp: MemberApp) -> None:
    url = "/api/v1/hq/stations/S003/location"
    body = {"lat": "22.5431", "lng": "114.0579", "address": "深圳市福田区"}
    assert mapp.client.put(url, json=body).status_code == 401
    member_token = mapp.auth(mapp.seeded.members[0])
    assert mapp.client.put(url, json=body, headers=member_token).status_code == 401
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-HQ-Actor": "wang.ops"}
    answer = mapp.client.put(url, json=body, headers=admin)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "station_id": "S003",
        "address": "深圳市福田区",
        "lat_e6": 22_543_100,
        "lng_e6": 114_057_900,
    }
    assert _find(mapp, lat="22.54", lng="114.05", limit=1)[0]["station_id"] == "S003"
    for wrong, code in (
        ({"lat": 22.5431, "lng": "114"}, "invalid"),  # a JSON number would pass a float
        ({"lat": "22.5", "lng": "200"}, "station.location"),
        ({"lat": "22.5", "lng": "114", "extra": 1}, "invalid"),
    ):
        refused = mapp.client.put(url, json=wrong, headers=admin)
        assert (refused.status_code, refused.json()["error"]) == (422, code)
    unknown = mapp.client.put("/api/v1/hq/stations/S404/location", json=body, headers=admin)
    assert (unknown.status_code, unknown.json()["error"]) == (404, "station.unknown")
    actors = mapp.ledger.db.read(
        lambda conn: conn.execute(
            select(hq_audit.c.actor).where(hq_audit.c.action == "station.locate")
        ).all()
    )
    assert [row.actor for row in actors] == ["wang.ops"]


def test_the_finder_checks_its_query(mapp: MemberApp) -> None:
    for params, code in (
        ({"lat": "31.2"}, "member_app.location"),
        ({"lng": "121.2"}, "member_app.location"),
        ({"lat": "95", "lng": "121"}, "member_app.location"),
        ({"lat": "abc", "lng": "121"}, "member_app.location"),
        ({"lat": "31.2", "lng": "121", "limit": 51}, "invalid"),
        ({"lat": "3" * 25, "lng": "121"}, "invalid"),
    ):
        answer = mapp.client.get(FINDER, params=params)
        assert (answer.status_code, answer.json()["error"]) == (422, code), params
    # A phone's fix with nine decimals is taken, to the millionth.
    assert _find(mapp, lat="31.230416789", lng="121.473701234")


def test_the_band_search_finds_exactly_the_nearest(mapp: MemberApp) -> None:
    """Against a brute-force sort over scattered stations, from scattered points."""
    rng = random.Random(17)
    now = NOW
    points: dict[str, tuple[int, int]] = {}
    for n in range(40):
        station_id = f"R{n:02d}"
        mapp.ledger.add_station(station_id, f"随机{n}", now)
        lat = rng.randint(-60_000_000, 60_000_000) if n % 4 else rng.randint(30_000_000, 31_000_000)
        lng = (
            rng.randint(-179_000_000, 179_000_000)
            if n % 4
            else rng.randint(121_000_000, 122_000_000)
        )
        points[station_id] = (lat, lng)
    for station_id, (lat, lng) in points.items():

        def place(conn: Any, s: str = station_id, la: int = lat, ln: int = lng) -> Any:
            return set_station_location(
                conn, s, lat_e6=la, lng_e6=ln, address=None, actor="test", now=now
            )

        mapp.ledger.db.transact(place)
    for _ in range(12):
        lat, lng = rng.randint(-70_000_000, 70_000_000), rng.randint(-180_000_000, 180_000_000)
        expected = sorted(
            (distance_m(lat, lng, *where), station_id) for station_id, where in points.items()
        )[:7]
        found = _find(mapp, lat=_degrees(lat), lng=_degrees(lng), limit=7)
        assert [(s["distance_m"], s["station_id"]) for s in found] == expected
