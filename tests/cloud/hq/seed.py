"""A small seeded month for the rules tests: two stations, members of every tier, sales of
every grade at every hour (some without a member), pushed through the ledger as stations do."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.core.pricing import SaleFacts, price_sale
from cloud_sync.core.privacy import MemberKeys
from tests.cloud.ledger.fake_station import RULES, RULES_TEXT, SHANGHAI, FakeStation

START = datetime(2026, 2, 1, tzinfo=SHANGHAI)
END = datetime(2026, 3, 1, tzinfo=SHANGHAI)
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI)
TIERS = ("standard", "silver", "gold")
GRADES = ("92", "95", "0")


@dataclass
class Seeded:
    sale_ids: list[str]
    member_sales: int
    plain_sales: int
    booked_points: int
    tokens: dict[str, str]


def rules_with(**changes: object) -> str:
    """The sample rule set as a new version with top-level keys replaced."""
    document = json.loads(RULES_TEXT)
    document["version"] = 4
    document["effective_from"] = "2026-03-10T00:00:00+08:00"
    document.update(changes)
    return json.dumps(document, ensure_ascii=False)


def seed_month(ledger: CloudLedger, keys: MemberKeys, *, sales: int = 300) -> Seeded:
    """`sales` sales over February 2026 at S001 and S002; every fifth without a member."""
    stations = []
    tokens = {}
    for sid in ("S001", "S002"):
        tokens[sid] = ledger.add_station(sid, f"Station {sid}", START)
        ledger.enrol(sid, [], START)
        stations.append(FakeStation(sid, keys))
    ledger.publish_ruleset(RULES_TEXT, "c2lnbmF0dXJl", "test-key", START)
    members = [
        stations[0].register(f"1380000{n:04d}", START - timedelta(days=60)) for n in range(12)
    ]
    ledger.push("S001", stations[0].request(), START)
    ids: list[str] = []
    member_sales = plain = booked = 0
    step = (END - START) / sales
    for n in range(sales):
        at = START + step * n + timedelta(minutes=7 * (n % 13))
        station = stations[n % 2]
        mid = None if n % 5 == 0 else members[n % len(members)]
        tier = TIERS[n % 3]
        grade = GRADES[n % 3]
        litres = f"{10 + (n * 7) % 50}.{(n * 13) % 100:02d}"
        ids.append(station.sale(mid, litres, at, grade=grade, tier=tier))
        if mid is None:
            plain += 1
        else:
            member_sales += 1
            amount = (Decimal(litres) * Decimal("7.50")).quantize(Decimal("0.01"))
            booked += price_sale(RULES, SaleFacts(grade, Decimal(litres), amount, at), tier).points
    for station in stations:
        ledger.push(station.station_id, station.request(), NOW)  # 150 events each
    return Seeded(ids, member_sales, plain, booked, tokens)
