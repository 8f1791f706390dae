"""`GET /m/api/v1/me`: what the member's home page shows, on SQLite and PostgreSQL.

Balance and its yuan value, points expiring by date, the tier with the way to the next one
and until when it holds, consent and freshness; a merged member reads as its survivor and
an erased member is signed out.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from cloud_sync.cloud.ledger.member_privacy import erase_member
from tests.cloud.hq.seed_chain import NOW
from tests.cloud.ledger.fake_station import member_id

from .conftest import MemberApp
from .reads_support import third_station

pytestmark = pytest.mark.usefixtures("cloud_db_url")


def _me(mapp: MemberApp, member: str) -> dict[str, Any]:
    answer = mapp.client.get("/m/api/v1/me", headers=mapp.auth(member))
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body: dict[str, Any] = answer.json()
    return body


def test_the_balance_its_yuan_value_and_the_points_expiring_by_date(mapp: MemberApp) -> None:
    s3 = third_station(mapp)
    member = s3.register("13900139001", NOW - timedelta(days=200))
    s3.station.adjust(
        member, 50, NOW - timedelta(days=1), expires_at=(NOW + timedelta(days=5)).isoformat()
    )
    s3.station.adjust(
        member, 70, NOW - timedelta(days=1), expires_at=(NOW + timedelta(days=40)).isoformat()
    )
    s3.station.adjust(
        member,
        20,
        NOW - timedelta(days=1),
        expires_at=(NOW + timedelta(days=40, hours=1)).isoformat(),
    )
    s3.station.adjust(
        member, 1000, NOW - timedelta(days=1), expires_at=(NOW + timedelta(days=100)).isoformat()
    )
    s3.station.adjust(member, 5, NOW - timedelta(days=1), expires_at=None)
    s3.station.adjust(
        member, 99, NOW - timedelta(days=9), expires_at=(NOW - timedelta(days=2)).isoformat()
    )
    s3.push(NOW - timedelta(minutes=5))

    home = _me(mapp, member)
    balance = home["balance"]
    assert balance["points"] == 50 + 70 + 20 + 1000 + 5  # the lot past its date is not spendable
    assert (balance["points_per_yuan"], balance["yuan_fen"]) == (100, 1145)  # 11.45 yuan
    assert balance["min_redeem_points"] == 100
    day = (NOW + timedelta(days=5)).date().isoformat()
    later = (NOW + timedelta(days=40)).date().isoformat()
    assert home["expiring"]["by_date"] == [
        {"date": day, "points": 50},
        {"date": later, "points": 90},
    ]
    assert home["expiring"]["within"] == [
        {"days": 30, "points": 50},
        {"days": 60, "points": 140},
        {"days": 90, "points": 140},
    ]
    assert home["as_of"] == NOW.isoformat()
    assert home["freshness"]["stations_synced_at"] == (NOW - timedelta(minutes=5)).isoformat()
    assert "几分钟" in home["freshness"]["note"] and "minutes" in home["freshness"]["note_en"]
    assert home["phone_masked"] == "139****9001" and home["member_id"] == member
    assert home["marketing"] == {"consent": False, "at": None}


def test_tier_progress_in_the_rule_sets_units_and_what_leaves_the_window(mapp: MemberApp) -> None:
    """Rules v3: silver at 300 L in 90 days, gold at 1000 L; the new-member trial is over."""
    s3 = third_station(mapp)
    member = s3.register("13900139002", NOW - timedelta(days=60))
    first = NOW - timedelta(days=80)
    s3.station.sale(member, "200.00", first)
    s3.station.sale(member, "150.00", NOW - timedelta(days=10))
    s3.station.sale(member, "40.00", NOW - timedelta(days=95))  # outside the window
    reversed_id = s3.station.sale(member, "500.00", NOW - timedelta(days=3))
    s3.station.reverse(reversed_id, member, 500, NOW - timedelta(days=3, minutes=-5))
    s3.push(NOW - timedelta(hours=1))

    home = _me(mapp, member)
    assert home["tier"]["code"] == "silver" and home["tier"]["name"] == "银卡"
    assert home["tier"]["via"] == "qualified" and home["tier"]["trial_until"] is None
    assert home["next"]["code"] == "gold" and home["next"]["window_days"] == 90
    assert home["next"]["measures"] == [
        {"unit": "litres", "have": "350.00", "need": "1000.00", "missing": "650.00"}
    ]
    keep = home["keep"]
    assert keep["code"] == "silver"
    # The 200 L sale leaves the 90-day window on day 10: 150 L is below silver's 300 L.
    assert keep["holds_until"] == (first + timedelta(days=90)).isoformat()
    assert keep["leaving"] == [
        {
            "date": (first + timedelta(days=90)).date().isoformat(),
            "litres": "200.00",
            "amount_fen": 150000,
            "visits": 1,
        }
    ]


def test_a_new_member_holds_the_trial_tier_and_sees_the_way_to_keep_it(mapp: MemberApp) -> None:
    s3 = third_station(mapp)
    registered = NOW - timedelta(days=3)
    member = s3.register("13900139003", registered)
    s3.station.sale(member, "30.00", NOW - timedelta(days=2))
    s3.push(NOW - timedelta(hours=1))
    home = _me(mapp, member)
    assert home["tier"]["code"] == "silver" and home["tier"]["via"] == "trial"
    assert home["tier"]["trial_until"] == (registered + timedelta(days=30)).isoformat()
    assert home["tier"]["qualified"]["code"] == "standard"
    assert home["keep"] is None  # qualified for the first tier only: nothing to lose
    assert home["next"]["code"] == "gold"


def test_a_merged_member_reads_as_its_survivor(mapp: MemberApp) -> None:
    survivor = mapp.seeded.members[0]
    home = _me(mapp, member_id(9))  # registered again at S002, merged into m1
    assert home["member_id"] == survivor
    assert home == _me(mapp, survivor)


def test_an_erased_member_is_signed_out_whatever_its_token(mapp: MemberApp) -> None:
    member = mapp.seeded.members[1]
    headers = mapp.auth(member)
    assert mapp.client.get("/m/api/v1/me", headers=headers).status_code == 200
    mapp.ledger.db.transact(
        lambda conn: erase_member(mapp.ledger.db, conn, member, actor="hq", now=NOW)
    )
    refused = mapp.client.get("/m/api/v1/me", headers=headers)
    assert refused.status_code == 401
    assert refused.json()["error"] == "unauthorized"
    assert mapp.client.get("/m/api/v1/me/sales", headers=headers).status_code == 401


def test_without_rules_the_reported_tier_and_no_yuan_value(mapp: MemberApp) -> None:
    mapp.clock.now = NOW - timedelta(days=500)  # before the rule set took effect
    home = _me(mapp, mapp.seeded.members[0])
    assert home["balance"]["yuan_fen"] is None and home["balance"]["points_per_yuan"] is None
    assert home["tier"]["via"] == "reported" and home["next"] is None and home["keep"] is None
