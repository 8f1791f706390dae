"""A station token acts only for its own station: its own sales, its own allowances, its
own bounded adjustments. Everything beyond is refused, flagged or held for HQ, on SQLite
and on PostgreSQL, and the victim station's members and sales stay as they were."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, inspect, text

from cloud_sync.cloud.ledger import (
    CloudLedger,
    EventConflict,
    LedgerError,
    StationLimits,
    TrustPolicy,
)
from cloud_sync.cloud.ledger.book import Book
from cloud_sync.cloud.ledger.database import SCHEMA_VERSION
from cloud_sync.core.privacy import MemberKeys
from cloud_sync.core.wire import PushResponse

from .conftest import NOW
from .fake_station import FakeStation


@pytest.fixture
def two(ledger: CloudLedger, station: FakeStation, chain_keys: MemberKeys) -> FakeStation:
    """A second enrolled station, S002, beside `station` (S001)."""
    ledger.add_station("S002", "Station two", NOW)
    ledger.enrol("S002", [], NOW)
    return FakeStation("S002", chain_keys)


def _only(response: PushResponse) -> tuple[str, str | None]:
    assert len(response.results) == 1
    result = response.results[0]
    return result.status, result.reason


def _points(ledger: CloudLedger, mid: str) -> int:
    view = ledger.member(mid, NOW)
    assert view is not None
    return int(view["points"])


def _allowance(ledger: CloudLedger, station_id: str) -> str:
    allowance = ledger.changes(station_id, 0, 1000, NOW).allowance
    assert allowance is not None
    return allowance.allowance_id


def test_a_station_cannot_attach_to_or_reverse_another_stations_sale(
    ledger: CloudLedger, station: FakeStation, two: FakeStation
) -> None:
    mid = station.register("13800138000", NOW)
    kept = station.sale(mid, "900.00", NOW + timedelta(minutes=1))
    open_sale = station.sale(None, "30.00", NOW + timedelta(minutes=2))
    ledger.push("S001", station.request(), NOW)
    assert _points(ledger, mid) == 900

    thief = two.register("13900139000", NOW)
    ledger.push("S002", two.request(), NOW)
    two.attach(open_sale, thief, "30.00", NOW + timedelta(minutes=3))
    status, reason = _only(ledger.push("S002", two.request(), NOW))
    assert status == "rejected" and reason is not None
    assert reason.startswith("sale.foreign_station")
    two.reverse(kept, mid, 900, NOW + timedelta(minutes=4))
    status, reason = _only(ledger.push("S002", two.request(), NOW))
    assert status == "rejected" and reason is not None
    assert reason.startswith("sale.foreign_station")

    # The victim's member and sales are as S001 booked them, and S001 can still attach.
    assert _points(ledger, mid) == 900
    assert _points(ledger, thief) == 0
    station.attach(open_sale, mid, "30.00", NOW + timedelta(minutes=5))
    assert _only(ledger.push("S001", station.request(), NOW)) == ("applied", None)
    assert _points(ledger, mid) == 930

    flags = ledger.station_flags("S002")
    assert [f["code"] for f in flags] == ["sale.foreign_station"] * 2
    assert ledger.station_flags("S001") == []
    review = {row["station_id"]: row for row in ledger.review_list()}
    assert review["S002"]["open_flags"] == 2 and "S001" not in review
    assert ledger.ledger_problems() == []


def test_a_redemption_beyond_the_stations_allowance_is_booked_but_flagged(
    ledger: CloudLedger, station: FakeStation, two: FakeStation
) -> None:
    own = _allowance(ledger, "S001")
    foreign = _allowance(ledger, "S002")
    mid = station.register("13800138000", NOW)
    station.sale(mid, "300.00", NOW + timedelta(minutes=1))
    ledger.push("S001", station.request(), NOW)

    station.redeem(mid, 100, NOW + timedelta(minutes=2), allowance_id=own)
    assert _only(ledger.push("S001", station.request(), NOW)) == ("applied", None)

    at = NOW + timedelta(minutes=3)
    station.redeem(mid, 1_000_000, at)  # no allowance at all: the attack of the report
    status, reason = _only(ledger.push("S001", station.request(), NOW))
    assert status == "applied" and reason is not None
    assert reason.startswith("flagged: redemption.no_allowance")
    station.redeem(mid, 100, at, allowance_id=foreign)
    status, reason = _only(ledger.push("S001", station.request(), NOW))
    assert reason is not None and "redemption.foreign_allowance" in reason
    later = NOW + timedelta(days=4)
    station.redeem(mid, 100, later, allowance_id=own)  # after its 72 h
    status, reason = _only(ledger.push("S001", station.request(), later))
    assert reason is not None and "redemption.allowance_expired" in reason
    station.redeem(mid, 4_901, at, allowance_id=own)  # 100 + 4901 > the member cap of 5000
    status, reason = _only(ledger.push("S001", station.request(), NOW))
    assert reason is not None and "redemption.member_cap_exceeded" in reason

    # Booked all the same (the customer has the goods); the overdraft is on the review list.
    view = ledger.member(mid, NOW)
    assert view is not None
    assert view["overdraft"] == 100 + 1_000_000 + 100 + 100 + 4_901 - 300
    flagged = ledger.station_flags("S001")
    assert sum(f["shortfall"] for f in flagged) == view["overdraft"]
    review = {row["station_id"]: row for row in ledger.review_list()}
    assert review["S001"]["flagged_overdraft"] == view["overdraft"]
    totals = ledger.totals()
    assert totals["flagged_overdraft"] == view["overdraft"]
    assert totals["station_flags_open"] == 4
    # The overdraft beyond every allowance is explained by the review list, not a problem.
    assert ledger.ledger_problems() == []


def test_redemptions_drawn_within_the_allowance_are_never_flagged(
    ledger: CloudLedger, station: FakeStation
) -> None:
    own = _allowance(ledger, "S001")
    mids = [station.register(f"1380013800{n}", NOW) for n in range(3)]
    for n, mid in enumerate(mids):
        station.sale(mid, "500.00", NOW + timedelta(minutes=n))
    ledger.push("S001", station.request(), NOW)
    for n, mid in enumerate(mids):
        for k in range(10):  # 3 x 10 x 400 = 12,000 of the 50,000; 4,000 of 5,000 each
            station.redeem(mid, 400, NOW + timedelta(minutes=10 + n * 10 + k), allowance_id=own)
    response = ledger.push("S001", station.request(), NOW + timedelta(hours=1))
    assert {(r.status, r.reason) for r in response.results} == {("applied", None)}
    assert ledger.station_flags() == [] and ledger.review_list() == []


def test_redemption_ids_are_the_stations_own(
    ledger: CloudLedger, station: FakeStation, two: FakeStation
) -> None:
    mid = station.register("13800138000", NOW)
    station.sale(mid, "300.00", NOW + timedelta(minutes=1))
    ledger.push("S001", station.request(), NOW)
    at = NOW + timedelta(minutes=2)
    station.redeem(mid, 100, at, allowance_id=_allowance(ledger, "S001"), redemption_id="R1")
    assert _only(ledger.push("S001", station.request(), NOW)) == ("applied", None)
    # S002 typed the same id for its own customer: booked, not quarantined.
    two.redeem(mid, 100, at, allowance_id=_allowance(ledger, "S002"), redemption_id="R1")
    assert _only(ledger.push("S002", two.request(), NOW)) == ("applied", None)
    # The same station using its id twice is still refused.
    station.redeem(mid, 50, at, allowance_id=_allowance(ledger, "S001"), redemption_id="R1")
    status, reason = _only(ledger.push("S001", station.request(), NOW))
    assert status == "rejected" and reason is not None
    assert reason.startswith("redemption.exists")
    assert _points(ledger, mid) == 100


def test_an_event_id_of_another_station_is_a_conflict(
    ledger: CloudLedger, station: FakeStation, two: FakeStation
) -> None:
    mid = station.register("13800138000", NOW)
    first = station.events[0]
    ledger.push("S001", station.request(), NOW)
    copied = {**first, "seq": 1}
    with pytest.raises(EventConflict):
        ledger.push("S002", two.request([copied]), NOW)
    assert ledger.member(mid, NOW) is not None


def test_an_adjustment_beyond_the_bound_waits_for_hq(
    ledger: CloudLedger, station: FakeStation
) -> None:
    mid = station.register("13800138000", NOW)
    station.sale(mid, "900.00", NOW + timedelta(minutes=1))
    ledger.push("S001", station.request(), NOW)

    station.adjust(mid, 5_000_000_000_000, NOW + timedelta(minutes=2))
    status, reason = _only(ledger.push("S001", station.request(), NOW))
    assert status == "applied" and reason is not None
    assert reason.startswith("held: adjustment.pending")
    assert _points(ledger, mid) == 900  # nothing moved
    station.adjust(mid, -900, NOW + timedelta(minutes=3))  # within the bound: booked
    assert _only(ledger.push("S001", station.request(), NOW)) == ("applied", None)
    assert _points(ledger, mid) == 0

    pending = ledger.adjustments("pending")
    assert [(a["member_id"], a["points"], a["station_id"]) for a in pending] == [
        (mid, 5_000_000_000_000, "S001")
    ]
    assert ledger.totals()["adjustments_pending"] == 1
    review = {row["station_id"]: row for row in ledger.review_list()}
    assert review["S001"]["pending_adjustments"] == 1
    assert review["S001"]["suspended"] is False  # a held adjustment breaks no rule

    event_id = pending[0]["event_id"]
    decided = ledger.decide_adjustment(event_id, approve=False, by="hq-li", note="typo", now=NOW)
    assert decided["status"] == "declined" and decided["decided_by"] == "hq-li"
    with pytest.raises(LedgerError) as refused:
        ledger.decide_adjustment(event_id, approve=True, by="hq-li", note=None, now=NOW)
    assert refused.value.code == "adjustment.decided"
    assert _points(ledger, mid) == 0 and ledger.review_list() == []


def test_an_approved_adjustment_is_booked_once_as_the_station_asked(
    ledger: CloudLedger, station: FakeStation
) -> None:
    mid = station.register("13800138000", NOW)
    station.adjust(mid, 25_000, NOW + timedelta(minutes=1))
    ledger.push("S001", station.request(), NOW)
    assert _points(ledger, mid) == 0
    (held,) = ledger.adjustments("pending")
    ledger.decide_adjustment(held["event_id"], approve=True, by="hq-wang", note=None, now=NOW)
    assert _points(ledger, mid) == 25_000
    with pytest.raises(LedgerError):
        ledger.decide_adjustment(held["event_id"], approve=True, by="hq-wang", note=None, now=NOW)
    assert _points(ledger, mid) == 25_000
    # Stations hear of the member's new balance in the changes feed.
    deltas = ledger.changes("S001", 0, 1000, NOW).members
    assert any(d.member_id == mid and sum(lot.points for lot in d.lots) == 25_000 for d in deltas)
    assert ledger.ledger_problems() == []


def test_the_daily_bound_counts_what_the_station_adjusted_in_24_hours(
    ledger: CloudLedger, station: FakeStation
) -> None:
    mid = station.register("13800138000", NOW)
    for n in range(11):  # 10 x 10,000 fill the 100,000 a day; the 11th waits
        station.adjust(mid, 10_000 if n % 2 == 0 else -10_000, NOW + timedelta(minutes=n))
    response = ledger.push("S001", station.request(), NOW)
    held = [r for r in response.results if r.reason is not None]
    assert [r.seq for r in held] == [12]  # seq 1 registered the member
    # A day later the bound is free again.
    station.adjust(mid, 10_000, NOW + timedelta(days=1, minutes=1))
    later = ledger.push("S001", station.request(), NOW + timedelta(days=1, minutes=1))
    assert _only(later) == ("applied", None)


def test_per_station_limits_replace_the_chains(cloud_db_url: str, chain_keys: MemberKeys) -> None:
    trust = TrustPolicy(per_station={"S001": StationLimits(adjust_max_points=100)})
    ledger = CloudLedger.open(cloud_db_url, chain_keys=chain_keys, trust=trust)
    try:
        for station_id in ("S001", "S002"):
            ledger.add_station(station_id, None, NOW)
            ledger.enrol(station_id, [], NOW)
        small, big = FakeStation("S001", chain_keys), FakeStation("S002", chain_keys)
        mid = small.register("13800138000", NOW)
        ledger.push("S001", small.request(), NOW)
        small.adjust(mid, 101, NOW)
        assert _only(ledger.push("S001", small.request(), NOW))[1] is not None
        big.adjust(mid, 9_000, NOW)
        assert _only(ledger.push("S002", big.request(), NOW)) == ("applied", None)
    finally:
        ledger.close()


def test_repeated_rule_breaks_suspend_the_stations_offline_redemption(
    cloud_db_url: str, chain_keys: MemberKeys
) -> None:
    ledger = CloudLedger.open(
        cloud_db_url, chain_keys=chain_keys, trust=TrustPolicy(suspend_after=3)
    )
    try:
        for station_id in ("S001", "S002"):
            ledger.add_station(station_id, None, NOW)
            ledger.enrol(station_id, [], NOW)
        bad = FakeStation("S001", chain_keys)
        mid = bad.register("13800138000", NOW)
        bad.sale(mid, "100.00", NOW)
        ledger.push("S001", bad.request(), NOW)
        for n in range(2):
            bad.redeem(mid, 10, NOW + timedelta(minutes=n))
        ledger.push("S001", bad.request(), NOW)
        assert ledger.changes("S001", 0, 1000, NOW).offline_redemption is True
        bad.redeem(mid, 10, NOW + timedelta(minutes=5))
        ledger.push("S001", bad.request(), NOW)
        assert ledger.changes("S001", 0, 1000, NOW).offline_redemption is False
        assert ledger.changes("S002", 0, 1000, NOW).offline_redemption is True
        (row,) = ledger.review_list()
        assert row["suspended"] is True and row["changed_by"] == "cloud"
        assert ledger.totals()["stations_suspended"] == 1

        lifted = ledger.set_station_suspended(
            "S001", suspended=False, by="hq-li", reason="spoke to the manager", now=NOW
        )
        assert lifted["suspended"] is False and lifted["open_flags"] == 0
        assert ledger.changes("S001", 0, 1000, NOW).offline_redemption is True
        # One more break does not suspend again: the old ones were resolved.
        bad.redeem(mid, 10, NOW + timedelta(minutes=6))
        ledger.push("S001", bad.request(), NOW)
        assert ledger.changes("S001", 0, 1000, NOW).offline_redemption is True
        with pytest.raises(LedgerError):
            ledger.set_station_suspended("S404", suspended=True, by="hq", reason=None, now=NOW)
    finally:
        ledger.close()


def test_points_claimed_beyond_the_rules_are_flagged(
    ledger: CloudLedger, station: FakeStation
) -> None:
    mid = station.register("13800138000", NOW)
    station.sale(mid, "40.00", NOW, claimed=4_000_000)
    response = ledger.push("S001", station.request(), NOW)
    reason = response.results[-1].reason
    assert reason is not None and "sale.points_over_rules" in reason
    (flag,) = ledger.station_flags("S001")
    assert (flag["code"], flag["points"]) == ("sale.points_over_rules", 4_000_000 - 40)


def test_a_ledger_of_schema_1_is_migrated_with_its_redemptions(
    cloud_db_url: str, chain_keys: MemberKeys
) -> None:
    """A ledger written by 0.6 (redemptions keyed by id alone, no review tables) opens."""
    CloudLedger.open(cloud_db_url, chain_keys=chain_keys).close()
    engine = create_engine(cloud_db_url)
    with engine.begin() as conn:
        for table in ("station_flags", "adjustments", "station_reviews", "redemptions"):
            conn.execute(text(f"DROP TABLE {table}"))
        for column in ("source", "source_key", "fuelling_point", "nozzle"):
            conn.execute(text(f"ALTER TABLE sales DROP COLUMN {column}"))
        conn.execute(
            text(
                "CREATE TABLE redemptions (redemption_id TEXT PRIMARY KEY, station_id TEXT NOT "
                "NULL, member_id TEXT NOT NULL, points BIGINT NOT NULL, value_fen BIGINT NOT "
                "NULL, allowance_id TEXT, shortfall BIGINT NOT NULL, at TEXT NOT NULL, "
                "event_id TEXT NOT NULL)"
            )
        )
        conn.execute(text("CREATE INDEX ix_redemptions_allowance ON redemptions (allowance_id)"))
        conn.execute(
            text(
                "INSERT INTO redemptions VALUES ('R1', 'S001', 'm1', 100, 100, 'a1', 0, "
                "'2026-03-02T10:00:00+08:00', 'e1')"
            )
        )
        conn.execute(text("UPDATE schema_version SET version = 1"))
    engine.dispose()

    ledger = CloudLedger.open(cloud_db_url, chain_keys=chain_keys)
    try:
        ledger.add_station("S001", None, NOW)
        ledger.enrol("S001", [], NOW)
        assert ledger.review_list() == []
    finally:
        ledger.close()
    engine = create_engine(cloud_db_url)
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT station_id, redemption_id, member_sent, flag FROM redemptions")
        ).one()
        assert tuple(row) == ("S001", "R1", "m1", None)
        columns = {c["name"] for c in inspect(conn).get_columns("sales")}
        assert {"source", "source_key", "fuelling_point", "nozzle"} <= columns
        assert conn.execute(text("SELECT version FROM schema_version")).scalar_one() == (
            SCHEMA_VERSION
        )
    engine.dispose()


def test_redemption_times_the_station_cannot_have_seen_are_flagged(
    ledger: CloudLedger, station: FakeStation
) -> None:
    """An old allowance's rest spent by backdating, or a time past the cloud's clock: HQ
    sees both, but a drifting PC clock could explain them, so neither suspends alone."""
    first = _allowance(ledger, "S001")
    mid = station.register("13800138000", NOW)
    station.sale(mid, "300.00", NOW)
    ledger.push("S001", station.request(), NOW)
    station.redeem(mid, 100, NOW - timedelta(hours=1), allowance_id=first)
    status, reason = _only(ledger.push("S001", station.request(), NOW))
    assert status == "applied" and reason is not None
    assert "redemption.before_allowance" in reason
    station.redeem(mid, 100, NOW + timedelta(hours=2), allowance_id=first)
    reason = _only(ledger.push("S001", station.request(), NOW))[1]
    assert reason is not None and "redemption.future" in reason
    assert all(flag["suspends"] is False for flag in ledger.station_flags("S001"))


def test_a_suspended_stations_redemptions_are_all_shown_to_hq(
    ledger: CloudLedger, station: FakeStation
) -> None:
    own = _allowance(ledger, "S001")
    mid = station.register("13800138000", NOW)
    station.sale(mid, "300.00", NOW)
    ledger.push("S001", station.request(), NOW)
    ledger.set_station_suspended("S001", suspended=True, by="hq-li", reason="audit", now=NOW)
    station.redeem(mid, 100, NOW, allowance_id=own)
    reason = _only(ledger.push("S001", station.request(), NOW))[1]
    assert reason is not None and "redemption.while_suspended" in reason


def test_unverifiable_points_beyond_a_generous_fill_wait_for_hq(
    ledger: CloudLedger, station: FakeStation, two: FakeStation
) -> None:
    """Another station's member credited 9e12 points by a sale the cloud cannot price (no
    published rule set of that version): 2,000 booked, the rest held and flagged."""
    mid = station.register("13800138000", NOW)
    ledger.push("S001", station.request(), NOW)
    two.sale(mid, "1.00", NOW, claimed=9_000_000_000_000, version=999)
    reason = _only(ledger.push("S002", two.request(), NOW))[1]
    assert reason is not None and "sale.points_unverified" in reason
    assert _points(ledger, mid) == 2_000
    (held,) = ledger.adjustments("pending")
    assert held["points"] == 9_000_000_000_000 - 2_000 and held["station_id"] == "S002"
    # A sale it can price earns what the rules give, the claim beyond waits too.
    two.sale(mid, "40.00", NOW, claimed=4_000)
    ledger.push("S002", two.request(), NOW)
    assert _points(ledger, mid) == 2_040
    assert sorted(a["points"] for a in ledger.adjustments("pending"))[0] == 3_960
    assert ledger.ledger_problems() == []


def test_parallel_pulls_grant_one_allowance(ledger: CloudLedger, station: FakeStation) -> None:
    with ThreadPoolExecutor(8) as pool:
        pages = list(pool.map(lambda _: ledger.changes("S001", 0, 100, NOW), range(8)))
    granted = {page.allowance.allowance_id for page in pages if page.allowance is not None}
    assert len(granted) == 1
    assert ledger.totals()["allowances_granted_points"] == 50_000


def test_parallel_epochs_share_one_daily_adjustment_bound(
    ledger: CloudLedger,
    station: FakeStation,
    chain_keys: MemberKeys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One token pushing in four epochs at once is still one station: 200,000 points of
    adjustments in a day, of which at most the 100,000 bound is booked without HQ. Each
    push dwells before writing, so pushes that were not serialised would overlap."""
    flush = Book.flush

    def slow_flush(self: Book) -> None:
        time.sleep(0.3)
        flush(self)

    monkeypatch.setattr(Book, "flush", slow_flush)
    mids = [station.register(f"1380013800{n}", NOW) for n in range(4)]
    ledger.push("S001", station.request(), NOW)
    epochs = []
    for epoch, mid in enumerate(mids, start=2):  # a member each: no member row to queue on
        forger = FakeStation("S001", chain_keys, epoch=epoch)
        for n in range(5):
            forger.adjust(mid, 10_000, NOW + timedelta(minutes=n))
        epochs.append(forger.request())
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda request: ledger.push("S001", request, NOW), epochs))
    assert sum(_points(ledger, mid) for mid in mids) == 100_000
    assert sum(a["points"] for a in ledger.adjustments("pending")) == 100_000
    assert ledger.ledger_problems() == []
