"""Whatever k stations push (honest, forged, duplicated, out of their authority), the chain's
overdraft stays within the allowances granted plus the excess HQ sees on its review list,
and no station ever moves another station's sales.

Each example is a fresh ledger on SQLite: a list of station actions, pushed in the order
drawn, some batches pushed twice (a replay answers the stored results and changes nothing).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, func, select

from cloud_sync.cloud.ledger import CloudLedger, TrustPolicy
from cloud_sync.cloud.ledger.schema import redemptions, sales, station_flags
from cloud_sync.core.privacy import MemberKeys

from .conftest import NOW
from .fake_station import FakeStation

STATIONS = ("S001", "S002", "S003")
PHONES = ("13800138000", "13900139000", "13700137000")

_action = st.tuples(
    st.sampled_from(("sale", "redeem", "adjust", "attach_foreign", "reverse_foreign")),
    st.sampled_from(STATIONS),
    st.integers(min_value=0, max_value=len(PHONES) - 1),
    st.integers(min_value=1, max_value=60_000),  # points or litres
    st.sampled_from(("own", "none", "foreign", "forged")),  # which allowance a redemption names
    st.booleans(),  # push this batch twice
)


def _read(url: str, stmt: Any) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(stmt))
    finally:
        engine.dispose()


def _allowance_id(ledger: CloudLedger, station_id: str, at: Any) -> str:
    allowance = ledger.changes(station_id, 0, 1000, at).allowance
    assert allowance is not None
    return allowance.allowance_id


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(actions=st.lists(_action, min_size=1, max_size=25))
def test_overdraft_stays_within_allowances_plus_the_review_list(
    tmp_path: Path, actions: list[tuple[str, str, int, int, str, bool]]
) -> None:
    url = f"sqlite:///{tmp_path / f'{uuid.uuid4().hex}.sqlite3'}"
    keys = MemberKeys.generate("chain-1")
    ledger = CloudLedger.open(url, chain_keys=keys, trust=TrustPolicy(suspend_after=4))
    try:
        stations = {s: FakeStation(s, keys) for s in STATIONS}
        for station_id in STATIONS:
            ledger.add_station(station_id, None, NOW)
            ledger.enrol(station_id, [], NOW)
        home = stations["S001"]
        members = [home.register(phone, NOW) for phone in PHONES]
        ledger.push("S001", home.request(), NOW)
        sales_of: dict[str, list[str]] = {s: [] for s in STATIONS}
        expected: dict[str, str | None] = {}  # each sale's member, as its own station gave it
        for n, (kind, station_id, who, amount, allowance, twice) in enumerate(actions):
            station = stations[station_id]
            at = NOW + timedelta(minutes=n + 1)
            mid = members[who]
            if kind == "sale":
                buyer = mid if amount % 3 else None
                sale_id = station.sale(buyer, f"{amount % 500 + 1}.00", at)
                sales_of[station_id].append(sale_id)
                expected[sale_id] = buyer
            elif kind == "redeem":
                neighbour = STATIONS[(STATIONS.index(station_id) + 1) % len(STATIONS)]
                named = {
                    "own": _allowance_id(ledger, station_id, at),
                    "none": None,
                    "foreign": _allowance_id(ledger, neighbour, at),
                    "forged": str(uuid.uuid4()),
                }[allowance]
                station.redeem(mid, amount, at, allowance_id=named)
            elif kind == "adjust":
                station.adjust(mid, amount * 1_000_000 if amount % 2 else -amount, at)
            else:
                victims = [s for s in STATIONS if s != station_id and sales_of[s]]
                if not victims:
                    continue
                victim_sale = sales_of[victims[0]][-1]
                if kind == "attach_foreign":
                    station.attach(victim_sale, mid, "10.00", at)
                else:
                    station.reverse(victim_sale, mid, 10, at)
            request = station.request()
            ledger.push(station_id, request, at)
            if twice:
                again = ledger.push(station_id, request, at)
                assert {r.status for r in again.results} == {"duplicate"}

        assert ledger.ledger_problems() == []
        totals = ledger.totals()
        excess = totals["flagged_overdraft"]
        assert totals["total_overdraft"] <= totals["allowances_granted_points"] + excess
        (listed,) = _read(url, select(func.coalesce(func.sum(station_flags.c.shortfall), 0)))
        assert int(listed[0]) == excess
        (flagged,) = _read(
            url,
            select(func.coalesce(func.sum(redemptions.c.shortfall), 0)).where(
                redemptions.c.flag.is_not(None)
            ),
        )
        assert int(flagged[0]) == excess
        # No sale changed hands or was reversed: only other stations tried, and were refused.
        held = {
            row.sale_id: (row.member_id, row.status)
            for row in _read(url, select(sales.c.sale_id, sales.c.member_id, sales.c.status))
        }
        assert held == {sale_id: (buyer, "recorded") for sale_id, buyer in expected.items()}
    finally:
        ledger.close()
