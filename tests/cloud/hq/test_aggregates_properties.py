"""Property: after any soak-style mix of sales, attaches, redemptions (overdrawn too),
reversals, adjustments of both signs (write-offs included), merges and expiry, pushed by
stations as they would, the liability roll-forward balances to the point for every month
and station, the chain's closing equals the members' balances from the ledger, `check`
finds nothing, and a rebuild gives exactly the incremental tables. Both backends."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection

from cloud_sync.cloud.ledger import CloudLedger, aggregates_ledger
from cloud_sync.cloud.ledger import reports_hq as rh
from cloud_sync.core.privacy import MemberKeys
from tests.cloud.conftest import fresh_pg_schema
from tests.cloud.ledger.fake_station import RULES_TEXT, FakeStation, member_id

from .seed_chain import NOW
from .test_aggregates import _snapshot, active_balances, balanced

KINDS = ("sale", "sale", "anonymous", "attach", "redeem", "reverse", "adjust", "merge", "old")
_op = st.tuples(
    st.sampled_from(KINDS),
    st.integers(0, 3),  # member
    st.integers(1, 90),  # size
    st.integers(0, 1),  # station
    st.integers(1, 200),  # hours since the last operation
)
START = NOW - timedelta(days=80)


def _fresh_url(cloud_db_url: str, tmp_path: Path) -> str:
    if cloud_db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / f'{uuid.uuid4().hex}.sqlite3'}"
    fresh_pg_schema(cloud_db_url.replace("postgresql+psycopg://", "postgresql://", 1))
    return cloud_db_url


@pytest.mark.slow
@settings(
    max_examples=15,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),  # no shrinking: a ledger per example
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(_op, min_size=3, max_size=22))
def test_roll_forward_balances_after_any_history(
    cloud_db_url: str, tmp_path: Path, ops: list[tuple[str, int, int, int, int]]
) -> None:
    keys = MemberKeys.generate("chain-1")
    ledger = CloudLedger.open(_fresh_url(cloud_db_url, tmp_path), chain_keys=keys)
    try:
        stations = [FakeStation("S001", keys), FakeStation("S002", keys)]
        for station in stations:
            ledger.add_station(station.station_id, None, START - timedelta(days=500))
            ledger.enrol(station.station_id, [], START - timedelta(days=500))
        ledger.publish_ruleset(RULES_TEXT, "c2lnbmF0dXJl", "test-key", START - timedelta(days=500))
        allowance = {
            s.station_id: ledger.changes(s.station_id, 0, 1, START).allowance for s in stations
        }
        phones = [f"1380013{n:04d}" for n in range(4)]
        mids = [stations[0].register(p, START, mid=member_id(n + 1)) for n, p in enumerate(phones)]
        ledger.push("S001", stations[0].request(), START)
        sales: list[tuple[str, str | None, str, int]] = []  # sale, member, station, points
        anonymous: list[tuple[str, str, str]] = []  # sale, station, litres
        at = START
        merged = 0
        for kind, who, size, where, hours in ops:
            at += timedelta(hours=hours)
            station = stations[where]
            mid = mids[who]
            litres = f"{size}.00"
            if kind == "sale":
                sales.append((station.sale(mid, litres, at), mid, station.station_id, 0))
            elif kind == "anonymous":
                anonymous.append((station.sale(None, litres, at), station.station_id, litres))
            elif kind == "attach" and anonymous:
                sale_id, station_id, bought = anonymous.pop()
                station = stations[0 if station_id == "S001" else 1]
                station.attach(sale_id, mid, bought, at)
            elif kind == "redeem":
                grant = allowance[station.station_id]
                assert grant is not None
                station.redeem(mid, size * 3, at, allowance_id=grant.allowance_id)
            elif kind == "reverse" and sales:
                sale_id, owner, station_id, _ = sales.pop()
                station = stations[0 if station_id == "S001" else 1]
                station.reverse(sale_id, owner, 1, at)  # the cloud reverses what it booked
            elif kind == "adjust":
                station.adjust(mid, size * 4 if size % 2 else -size * 5, at)
            elif kind == "merge":
                merged += 1
                stations[1].register(phones[who], at, mid=member_id(100 + merged))
                station = stations[1]
            elif kind == "old":  # earned over a year ago: the expiry job books it
                station.sale(mid, litres, at - timedelta(days=400))
            if station.events:
                ledger.push(station.station_id, station.request(), at)
        end = at + timedelta(days=1)
        ledger.expire_lots(end)

        def read(conn: Connection) -> dict[str, Any]:
            return {
                "problems": aggregates_ledger.check(conn),
                "rows": rh.liability(conn, "2024-01", end.strftime("%Y-%m")),
                "balances": aggregates_ledger.ledger_outstanding(conn),
                "outstanding": rh.outstanding(conn, end),
            }

        got = ledger.db.read(read)
        assert got["problems"] == []
        balanced(got["rows"])
        chain_close = [r for r in got["rows"] if r["station_id"] == "*"][-1]["closing"]
        balances = got["balances"]
        assert chain_close == balances["member_accounts"] == balances["lots_less_overdraft"]
        assert got["outstanding"]["points"] == active_balances(ledger, end)
        kept = _snapshot(ledger)
        ledger.db.transact(aggregates_ledger.rebuild)
        assert _snapshot(ledger) == kept
    finally:
        ledger.close()
