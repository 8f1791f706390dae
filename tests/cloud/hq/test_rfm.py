"""RFM from its daily snapshot: the segments equal a direct computation from the definition
(hq-console.md) over the raw sales, the snapshot is stored and reused (no page view scans
the sales twice in a day), and a refresh recomputes it. Both backends."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from cloud_sync.cloud.ledger import CloudLedger, member_reports, rfm
from cloud_sync.cloud.ledger.schema import members, rfm_snapshots, sales
from cloud_sync.core.privacy import MemberKeys
from tests.cloud.ledger.fake_station import SHANGHAI, FakeStation, member_id

from .seed_chain import NOW, stations

END = NOW.date()
DAY_MS = 86_400_000


def _seed(ledger: CloudLedger, keys: MemberKeys) -> FakeStation:
    """Twenty members of varied habits: heavy, light, lapsed, new without a sale, one whose
    only sales fall before the 180 days, one merged into another with sales of its own."""
    fleet = stations(ledger, keys)
    a, b = fleet["S001"], fleet["S002"]
    long_ago = NOW - timedelta(days=300)
    for n in range(1, 21):
        at = NOW - timedelta(days=5) if n in (19, 20) else long_ago + timedelta(hours=n)
        a.register(f"138001380{n:02d}", at, mid=member_id(n))
    ledger.push("S001", a.request(), long_ago + timedelta(days=1))
    for n in range(1, 18):
        count = 1 + (n * 7) % 6
        last_days = (n * 13) % 170
        for k in range(count):
            at = NOW - timedelta(days=last_days + 9 * k, hours=n % 5)
            a.sale(member_id(n), f"{10 + (n * 3 + k) % 40}.00", at, grade="92")
    a.sale(member_id(18), "30.00", NOW - timedelta(days=200))  # outside the window
    ledger.push("S001", a.request(), NOW - timedelta(hours=1))
    b.register("13800138005", NOW - timedelta(days=50), mid=member_id(99))  # merged into m5
    b.sale(member_id(99), "44.00", NOW - timedelta(days=40))
    b.sale(member_id(99), "21.00", NOW - timedelta(days=3))
    ledger.push("S002", b.request(), NOW - timedelta(minutes=30))
    return a


def _quintile(values: dict[str, int], *, higher_is_better: bool) -> dict[str, int]:
    """1 + floor(5 × (members strictly worse) / buyers): chain-wide quintiles, ties shared."""
    n = len(values)
    return {
        m: 1 + 5 * sum(1 for w in values.values() if (w < v if higher_is_better else w > v)) // n
        for m, v in values.items()
    }


def _by_definition(conn: Connection, end: date) -> dict[str, Any]:
    """RFM straight from the raw sales and members, as hq-console.md defines it."""
    stop = datetime.combine(end + timedelta(days=1), time(), tzinfo=SHANGHAI)
    stop_ms = int(stop.timestamp() * 1000)
    owner = {
        r.member_id: r.merged_into or r.member_id
        for r in conn.execute(select(members.c.member_id, members.c.merged_into))
    }
    active = {
        r.member_id: int(datetime.fromisoformat(r.registered_at).timestamp() * 1000)
        for r in conn.execute(select(members).where(members.c.status == "active"))
    }
    last: dict[str, int] = {}
    freq: Counter[str] = Counter()
    money: Counter[str] = Counter()
    for row in conn.execute(select(sales).where(sales.c.member_id.is_not(None))):
        ms = int(datetime.fromisoformat(row.ended_at).timestamp() * 1000)
        who = owner[row.member_id]
        if ms < stop_ms:
            last[who] = max(last.get(who, ms), ms)
        if row.status == "recorded" and stop_ms - 180 * DAY_MS <= ms < stop_ms:
            freq[who] += 1
            money[who] += int(Decimal(row.amount) * 100)
    recency = {m: (stop_ms - ms) // DAY_MS for m, ms in last.items() if m in active}
    r = _quintile(recency, higher_is_better=False)
    f = _quintile({m: freq[m] for m in recency}, higher_is_better=True)
    mon = _quintile({m: money[m] for m in recency}, higher_is_better=True)
    segments: Counter[str] = Counter()
    for m, registered_ms in active.items():
        rs, fs = r.get(m, 0), f.get(m, 0)
        if m in r and rs >= 4 and fs >= 4:
            segments["champions"] += 1
        elif m in r and fs >= 4:
            segments["loyal"] += 1
        elif m in r and rs <= 2 and fs >= 3:
            segments["at_risk"] += 1
        elif m in r and rs <= 2 and fs <= 2:
            segments["hibernating"] += 1
        elif stop_ms - 30 * DAY_MS <= registered_ms < stop_ms:
            segments["new"] += 1
        else:
            segments["others"] += 1
    return {
        "segments": {s: segments[s] for s in rfm.SEGMENTS},
        "grid": Counter((r[m], f[m]) for m in r),
        "monetary": Counter(mon.values()),
    }


def _shape(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "segments": {s["segment"]: s["members"] for s in report["segments"]},
        "grid": Counter(
            {(g["recency"], g["frequency"]): g["members"] for g in report["grid"] if g["members"]}
        ),
        "monetary": Counter({s["score"]: s["members"] for s in report["monetary"] if s["members"]}),
    }


def test_segments_equal_the_definition_over_the_raw_sales(
    ledger: CloudLedger, chain_keys: MemberKeys
) -> None:
    _seed(ledger, chain_keys)
    for end in (END, END - timedelta(days=20)):

        def both(conn: Connection, end: date = end) -> tuple[dict[str, Any], dict[str, Any]]:
            return member_reports.rfm(conn, end, NOW), _by_definition(conn, end)

        got, want = ledger.db.transact(both)
        assert _shape(got) == want
        assert sum(want["segments"].values()) == 20  # m99 merged: counted once, under m5
        assert got["as_of"] == NOW.isoformat(timespec="seconds")
    segments = _shape(ledger.db.read(lambda c: member_reports.rfm(c, END, NOW)))["segments"]
    assert segments["new"] == 2 and segments["champions"] >= 1 and segments["hibernating"] >= 1


def test_the_snapshot_is_stored_reused_and_refreshed(
    ledger: CloudLedger, chain_keys: MemberKeys
) -> None:
    station = _seed(ledger, chain_keys)
    first = ledger.db.transact(lambda c: member_reports.rfm(c, END, NOW))
    stored = ledger.db.read(lambda c: c.execute(select(rfm_snapshots.c.end_day)).scalars().all())
    assert stored == [END.isoformat()]
    # A late sale for m20 (no sale yet: now scored): the day's snapshot keeps its figures and time.
    station.sale(member_id(20), "80.00", NOW - timedelta(hours=2))
    ledger.push("S001", station.request(), NOW)
    later = NOW + timedelta(hours=3)
    again = ledger.db.transact(lambda c: member_reports.rfm(c, END, later))
    assert again == first
    fresh = ledger.db.transact(lambda c: rfm.refresh(c, END, later))
    assert fresh["as_of"] == later.isoformat(timespec="seconds")
    assert _shape(fresh) == ledger.db.read(lambda c: _by_definition(c, END))
    assert sum(_shape(fresh)["grid"].values()) == sum(_shape(first)["grid"].values()) + 1
    assert ledger.db.read(lambda c: member_reports.rfm(c, END, NOW)) == fresh
