"""The chain ledger's points: earn, redeem, overdraft and its repayment, reversal, expiry,
adjustments and variance; every scenario ends with a healthy ledger."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import create_engine, text

from cloud_sync.cloud.ledger import CloudLedger

from .conftest import NOW
from .fake_station import FakeStation


def _accounts(url: str) -> dict[str, int]:
    """Every account's balance, read straight from the ledger's journal lines."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT account, SUM(points) FROM lines GROUP BY account"))
            found = {str(account): int(total) for account, total in rows}
    finally:
        engine.dispose()
    names = ("points_issued", "points_redeemed", "points_expired", "variance", "written_off")
    return {name: found.get(name, 0) for name in names} | found


def _view(ledger: CloudLedger, mid: str, days: float = 0) -> dict[str, object]:
    found = ledger.member(mid, NOW + timedelta(days=days))
    assert found is not None
    return found


def _allowance_id(ledger: CloudLedger) -> str:
    """The allowance the cloud grants S001 (on its first changes page)."""
    allowance = ledger.changes("S001", 0, 100, NOW).allowance
    assert allowance is not None
    return allowance.allowance_id


def test_overdraft_denies_the_member_and_later_earnings_repay_it(
    ledger: CloudLedger, station: FakeStation
) -> None:
    allowance_id = _allowance_id(ledger)
    mid = station.register("13800138000", NOW)
    station.sale(mid, "300.00", NOW + timedelta(minutes=1))
    station.redeem(mid, 200, NOW + timedelta(minutes=2), allowance_id=allowance_id)
    ledger.push("S001", station.request(), NOW)
    assert (_view(ledger, mid)["points"], _view(ledger, mid)["denied"]) == (100, False)

    # Redeemed offline at another till on a stale balance: the cloud never refuses it.
    station.redeem(mid, 250, NOW + timedelta(minutes=3), allowance_id=allowance_id)
    result = ledger.push("S001", station.request(), NOW)
    assert result.results[0].status == "applied"
    view = _view(ledger, mid)
    assert (view["points"], view["overdraft"], view["denied"]) == (-150, 150, True)
    deny = ledger.changes("S001", 0, 1000, NOW).deny
    assert [(d.member_id, d.denied, d.overdraft) for d in deny] == [(mid, True, 150)]

    station.sale(mid, "100.00", NOW + timedelta(minutes=4))
    ledger.push("S001", station.request(), NOW)
    view = _view(ledger, mid)
    assert (view["points"], view["overdraft"], view["denied"]) == (-50, 50, True)

    station.sale(mid, "80.00", NOW + timedelta(minutes=5))
    ledger.push("S001", station.request(), NOW)
    view = _view(ledger, mid)
    assert (view["points"], view["overdraft"], view["denied"]) == (30, 0, False)
    assert view["lots"] == [{"points": 30, "expires_at": "2027-03-02T10:05:00+08:00"}]
    deny = ledger.changes("S001", 0, 1000, NOW).deny
    assert [(d.member_id, d.denied, d.overdraft) for d in deny] == [(mid, False, 0)]

    totals = ledger.totals()
    assert totals["redemption_overdraft"] == 150
    assert totals["total_overdraft"] == 0
    assert totals["allowances_granted_points"] >= 50_000
    assert ledger.ledger_problems() == []


def test_redemption_spends_the_soonest_expiring_lot_first(
    ledger: CloudLedger, station: FakeStation
) -> None:
    mid = station.register("13800138000", NOW)
    station.sale(mid, "100.00", NOW)
    station.adjust(mid, 100, NOW, expires_at=(NOW + timedelta(days=10)).isoformat())
    station.redeem(mid, 150, NOW + timedelta(minutes=1))
    ledger.changes("S001", 0, 10, NOW)  # the station's allowance covers what it redeems
    ledger.push("S001", station.request(), NOW)
    lots = _view(ledger, mid)["lots"]
    assert lots == [{"points": 50, "expires_at": "2027-03-02T10:00:00+08:00"}]
    assert ledger.ledger_problems() == []


def test_reversal_takes_back_its_own_lot_then_writes_off_what_was_spent(
    ledger: CloudLedger, station: FakeStation
) -> None:
    mid = station.register("13800138000", NOW)
    first = station.sale(mid, "100.00", NOW)
    station.sale(mid, "50.00", NOW + timedelta(hours=1))
    station.redeem(mid, 120, NOW + timedelta(hours=2))  # 100 from the first lot, 20 from the second
    ledger.changes("S001", 0, 10, NOW)
    ledger.push("S001", station.request(), NOW)
    assert _view(ledger, mid)["points"] == 30

    station.reverse(first, mid, 100, NOW + timedelta(hours=3))
    ledger.push("S001", station.request(), NOW)
    view = _view(ledger, mid)
    # 30 taken back from the second lot; the 70 already spent are written off, not owed.
    assert (view["points"], view["overdraft"], view["denied"]) == (0, 0, False)
    assert ledger.totals()["redemption_overdraft"] == 0

    station.reverse(first, mid, 100, NOW + timedelta(hours=4))
    again = ledger.push("S001", station.request(), NOW)
    assert again.results[0].status == "rejected"
    assert (again.results[0].reason or "").startswith("sale.reversed")
    assert ledger.ledger_problems() == []


def test_attaching_a_member_later_earns_and_a_second_attach_is_rejected(
    ledger: CloudLedger, station: FakeStation
) -> None:
    mid = station.register("13800138000", NOW)
    other = station.register("13900139000", NOW)
    sale_id = station.sale(None, "40.00", NOW)
    station.attach(sale_id, mid, "40.00", NOW + timedelta(minutes=2))
    station.attach(sale_id, other, "40.00", NOW + timedelta(minutes=3))
    response = ledger.push("S001", station.request(), NOW)
    assert [r.status for r in response.results] == ["applied"] * 4 + ["rejected"]
    assert (response.results[-1].reason or "").startswith("sale.already_attached")
    assert _view(ledger, mid)["points"] == 40
    assert _view(ledger, other)["points"] == 0

    station.reverse(sale_id, mid, 40, NOW + timedelta(minutes=5))
    ledger.push("S001", station.request(), NOW)
    assert _view(ledger, mid)["points"] == 0
    assert ledger.ledger_problems() == []


def test_expiry_is_booked_by_the_cloud_once_and_never_taken_back_twice(
    ledger: CloudLedger, station: FakeStation
) -> None:
    mid = station.register("13800138000", NOW)
    sale_id = station.sale(mid, "40.00", NOW)  # expires after 12 months
    station.adjust(mid, 50, NOW, expires_at=(NOW + timedelta(days=1)).isoformat())
    station.adjust(mid, 20, NOW)  # no date given: the rules in force say 12 months
    station.emit("points.expired", {"member_id": mid, "points": 5, "lots": [1], "at": "x"}, NOW)
    response = ledger.push("S001", station.request(), NOW)
    assert [r.status for r in response.results] == ["applied"] * 5

    assert _view(ledger, mid)["points"] == 110
    assert _view(ledger, mid, days=2)["points"] == 60  # lapsed points never count, booked or not
    assert ledger.expire_lots(NOW + timedelta(days=2)) == 0  # within the offline grace
    assert ledger.expire_lots(NOW + timedelta(days=8)) == 50
    assert ledger.expire_lots(NOW + timedelta(days=8)) == 0
    assert _view(ledger, mid, days=8)["points"] == 60

    later = NOW + timedelta(days=400)
    assert _view(ledger, mid, days=400)["points"] == 0
    assert ledger.expire_lots(later) == 60
    station.reverse(sale_id, mid, 40, later)
    ledger.push("S001", station.request(), later)
    view = _view(ledger, mid, days=400)
    assert (view["points"], view["overdraft"]) == (0, 0)  # the lapsed points went once
    assert ledger.ledger_problems() == []


def test_negative_adjustment_beyond_the_balance_is_written_off(
    ledger: CloudLedger, station: FakeStation
) -> None:
    mid = station.register("13800138000", NOW)
    station.sale(mid, "40.00", NOW)
    station.adjust(mid, -100, NOW + timedelta(minutes=1))
    station.adjust(mid, 0, NOW + timedelta(minutes=1))
    response = ledger.push("S001", station.request(), NOW)
    assert [r.status for r in response.results] == ["applied"] * 3 + ["rejected"]
    view = _view(ledger, mid)
    assert (view["points"], view["overdraft"], view["denied"]) == (0, 0, False)
    assert ledger.ledger_problems() == []


def test_variance_report_compares_claims_with_the_rules(
    ledger: CloudLedger, station: FakeStation
) -> None:
    mid = station.register("13800138000", NOW)
    station.sale(mid, "40.00", NOW)  # priced right: 40
    station.sale(mid, "40.00", NOW, claimed=45)  # the station claims 45 for 40 litres
    station.sale(mid, "40.00", NOW, version=99)  # rules this cloud never published
    station.sale(None, "40.00", NOW)  # no member: no points, not in the report
    ledger.push("S001", station.request(), NOW)

    # Booked as the rules say; the 5 claimed beyond them wait for HQ (docs/sync.md, Trust).
    assert _view(ledger, mid)["points"] == 120
    (held,) = ledger.adjustments("pending")
    assert (held["member_id"], held["points"]) == (mid, 5)
    report = {row["ruleset_version"]: row for row in ledger.variance_report()}
    assert report[3] == {
        "station_id": "S001",
        "ruleset_version": 3,
        "sales": 2,
        "points_claimed": 85,
        "points_recomputed": 80,
        "variance": 5,
        "sales_differing": 1,
        "unverified": 0,
    }
    assert report[99]["unverified"] == 1
    assert report[99]["variance"] == 0
    assert ledger.ledger_problems() == []


def test_a_late_offline_redemption_dated_before_expiry_still_finds_its_points(
    ledger: CloudLedger, station: FakeStation
) -> None:
    allowance_id = _allowance_id(ledger)
    mid = station.register("13800138000", NOW)
    expires = NOW + timedelta(days=1)
    station.adjust(mid, 100, NOW, expires_at=expires.isoformat())
    ledger.push("S001", station.request(), NOW)
    # Offline at a station since the morning, the member redeems while the lot is live ...
    station.redeem(mid, 80, NOW + timedelta(hours=12), allowance_id=allowance_id)

    # ... the cloud's expiry job runs after the lot lapsed, but within the offline grace:
    # the lot no longer counts, yet its expiry is not booked yet.
    arrival = NOW + timedelta(days=4)
    assert ledger.expire_lots(arrival) == 0
    assert _view(ledger, mid, days=4)["points"] == 0

    # ... and the redemption arrives: the lot pays for it; no overdraft, no deny entry.
    response = ledger.push("S001", station.request(), arrival)
    assert response.results[0].status == "applied"
    view = _view(ledger, mid, days=4)
    assert (view["points"], view["overdraft"], view["denied"]) == (0, 0, False)
    assert _view(ledger, mid)["points"] == 20  # what the lot still held while it was live
    assert ledger.totals()["redemption_overdraft"] == 0

    # Past the grace (an allowance's life plus a snapshot's age: 6 days), expiry is booked.
    grace_end = expires + timedelta(hours=144)
    assert ledger.expire_lots(grace_end - timedelta(seconds=1)) == 0
    assert ledger.expire_lots(grace_end) == 20
    assert _view(ledger, mid, days=10)["points"] == 0
    assert ledger.ledger_problems() == []


def test_reversing_a_sale_that_repaid_an_overdraft_owes_it_again(
    ledger: CloudLedger, station: FakeStation, cloud_db_url: str
) -> None:
    allowance_id = _allowance_id(ledger)
    mid = station.register("13800138000", NOW)
    station.redeem(mid, 300, NOW, allowance_id=allowance_id)
    ledger.push("S001", station.request(), NOW)
    view = _view(ledger, mid)
    assert (view["points"], view["overdraft"], view["denied"]) == (-300, 300, True)

    sale_id = station.sale(mid, "300.00", NOW + timedelta(minutes=1))  # earns 300: repays it
    ledger.push("S001", station.request(), NOW)
    view = _view(ledger, mid)
    assert (view["points"], view["overdraft"], view["denied"]) == (0, 0, False)
    cursor = ledger.changes("S001", 0, 1000, NOW).next_cursor

    station.reverse(sale_id, mid, 300, NOW + timedelta(minutes=2))
    ledger.push("S001", station.request(), NOW)
    view = _view(ledger, mid)
    assert (view["points"], view["overdraft"], view["denied"]) == (-300, 300, True)
    deny = ledger.changes("S001", cursor, 1000, NOW).deny
    assert [(d.member_id, d.denied, d.overdraft) for d in deny] == [(mid, True, 300)]
    assert _accounts(cloud_db_url)["written_off"] == 0
    assert ledger.ledger_problems() == []


def test_reversing_a_sale_that_partly_repaid_an_overdraft(
    ledger: CloudLedger, station: FakeStation, cloud_db_url: str
) -> None:
    allowance_id = _allowance_id(ledger)
    mid = station.register("13800138000", NOW)
    station.redeem(mid, 100, NOW, allowance_id=allowance_id)  # overdraft 100
    sale_id = station.sale(mid, "300.00", NOW + timedelta(minutes=1))  # 100 repay, lot of 200
    station.redeem(mid, 150, NOW + timedelta(minutes=2), allowance_id=allowance_id)
    ledger.push("S001", station.request(), NOW)
    assert _view(ledger, mid)["points"] == 50

    station.reverse(sale_id, mid, 300, NOW + timedelta(minutes=3))
    ledger.push("S001", station.request(), NOW)
    view = _view(ledger, mid)
    # 50 taken back from the lot, the 150 spent written off, the 100 repaid owed again.
    assert (view["points"], view["overdraft"], view["denied"]) == (-100, 100, True)
    assert _accounts(cloud_db_url)["written_off"] == -150
    assert ledger.ledger_problems() == []


def test_reversing_a_sale_undoes_its_variance(
    ledger: CloudLedger, station: FakeStation, cloud_db_url: str
) -> None:
    mid = station.register("13800138000", NOW)
    kept = station.sale(mid, "40.00", NOW, claimed=45)  # the rules say 40
    over = station.sale(mid, "40.00", NOW, claimed=45)
    under = station.sale(mid, "40.00", NOW, claimed=0)  # the station gave nothing
    lapsed = station.sale(mid, "40.00", NOW, claimed=45)
    ledger.push("S001", station.request(), NOW)
    assert kept
    report = ledger.variance_report()
    assert (report[0]["sales"], report[0]["variance"]) == (4, 5 + 5 - 40 + 5)
    # Claims beyond the rules are held, not booked: only the station's shortfall is variance.
    assert _accounts(cloud_db_url)["variance"] == 40

    station.reverse(over, mid, 45, NOW + timedelta(hours=1))  # its lot taken back whole
    ledger.push("S001", station.request(), NOW)
    # The other lots lapse and their expiry is booked before the last reversals arrive.
    later = NOW + timedelta(days=400)
    assert ledger.expire_lots(later) == 80
    station.reverse(under, mid, 0, later)
    station.reverse(lapsed, mid, 45, later)
    response = ledger.push("S001", station.request(), later)
    assert {r.status for r in response.results} == {"applied"}

    accounts = _accounts(cloud_db_url)
    # What is left is the kept sale alone: issued and expired 40 (its extra 5 never booked).
    assert (accounts["points_issued"], accounts["variance"]) == (-40, 0)
    assert accounts["points_expired"] == 40
    (row,) = ledger.variance_report()
    assert (row["sales"], row["points_claimed"], row["points_recomputed"]) == (1, 45, 40)
    assert (row["variance"], row["sales_differing"]) == (5, 1)
    view = _view(ledger, mid, days=400)
    assert (view["points"], view["overdraft"]) == (0, 0)
    assert ledger.ledger_problems() == []
