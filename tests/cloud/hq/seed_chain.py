"""A small chain with a known history, for the HQ console's tests (reusable by any screen).

Three stations (S003 never pushes), members registered at S001 and S002, one of them twice
(a merge), sales of two grades over two months, a redemption, a reversal, adjustments of
both signs (one taking back more than the member still holds: a write-off), and points
earned over a year ago that the expiry job books. Every figure the tests assert is listed in
`Seeded`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.core.privacy import MemberKeys
from tests.cloud.ledger.fake_station import RULES_TEXT, SHANGHAI, FakeStation, member_id

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI)  # a Monday


@dataclass
class Seeded:
    now: datetime
    members: list[str] = field(default_factory=list)
    sales: int = 0
    litres_ml: int = 0
    amount_fen: int = 0


def stations(ledger: CloudLedger, keys: MemberKeys, now: datetime = NOW) -> dict[str, FakeStation]:
    """S001 and S002 enrolled and pushing, S003 enrolled and silent; rules v3 published."""
    found = {}
    for station_id in ("S001", "S002", "S003"):
        ledger.add_station(station_id, f"站点{station_id[-1]}", now - timedelta(days=400))
        ledger.enrol(station_id, [], now - timedelta(days=400))
        found[station_id] = FakeStation(station_id, keys)
    ledger.publish_ruleset(RULES_TEXT, "c2lnbmF0dXJl", "test-key", now - timedelta(days=400))
    return found


def seed_chain(ledger: CloudLedger, keys: MemberKeys, now: datetime = NOW) -> Seeded:
    """The history above, pushed as the stations would; expiry booked at `now`."""
    fleet = stations(ledger, keys, now)
    a, b = fleet["S001"], fleet["S002"]
    seeded = Seeded(now)
    allowance = ledger.changes("S001", 0, 1, now - timedelta(days=400)).allowance
    assert allowance is not None
    old = now - timedelta(days=380)
    m1 = a.register("13800138001", old, mid=member_id(1))
    m2 = a.register("13800138002", now - timedelta(days=40), mid=member_id(2))
    m3 = b.register("13800138003", now - timedelta(days=10), mid=member_id(3))
    seeded.members = [m1, m2, m3]
    # Earned over a year ago: expires before now (the expiry job books it).
    a.sale(m1, "40.00", old + timedelta(hours=1))
    ledger.push("S001", a.request(), old + timedelta(hours=2))
    ledger.push("S002", b.request(), now - timedelta(days=10))
    sales = [
        (a, m1, "50.00", "92", now - timedelta(days=35, hours=2)),
        (a, m2, "30.00", "95", now - timedelta(days=20, hours=1)),
        (a, None, "20.00", "92", now - timedelta(days=3, hours=3)),
        (a, m2, "45.50", "92", now - timedelta(days=1, hours=2)),
        (b, m3, "60.00", "95", now - timedelta(days=2, hours=5)),
        (b, m1, "25.00", "92", now - timedelta(hours=3)),
    ]
    for station, mid, litres, grade, at in sales:
        station.sale(mid, litres, at, grade=grade)
        seeded.sales += 1
        seeded.litres_ml += int(float(litres) * 1000)
        seeded.amount_fen += round(float(litres) * 750)
    reversed_id = a.sale(m2, "10.00", now - timedelta(days=5))  # then reversed
    a.reverse(reversed_id, m2, 10, now - timedelta(days=5) + timedelta(minutes=10))
    a.redeem(m1, 100, now - timedelta(days=2), allowance_id=allowance.allowance_id)
    a.adjust(m2, 25, now - timedelta(days=4))
    a.adjust(m1, -1000, now - timedelta(days=1))  # more than m1 holds: the rest written off
    # The same phone registered at S002: merged into the smaller id (m1).
    b.register("13800138001", now - timedelta(days=6), mid=member_id(9))
    b.sale(member_id(9), "12.00", now - timedelta(days=6) + timedelta(hours=1))
    seeded.sales += 1
    seeded.litres_ml += 12_000
    seeded.amount_fen += 9_000
    ledger.push("S001", a.request(), now - timedelta(minutes=30))  # online
    ledger.push("S002", b.request(), now - timedelta(hours=2))  # late
    ledger.expire_lots(now)
    return seeded
