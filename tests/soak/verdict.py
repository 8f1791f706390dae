"""The verdict: after the faults stop and the chain drains, does the cloud hold the truth?

The truth is what the simulated pumps sold (their ground-truth files), not what any part
of loyalpump says. Each check is one promise a chain operator relies on; a failed check
names what broke, with enough detail to start looking.
"""

from __future__ import annotations

import subprocess
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Connection, create_engine, func, select

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.cloud.ledger.schema import high_water, redemptions, sales
from cloud_sync.core.pricing import SaleFacts, price_sale
from cloud_sync.core.ruleset import RuleSet
from tests.cloud.chain import LOYALPUMP, reference_balances, store_outbox

from .nodes import SaleKey, StationNode

__all__ = [
    "CashierAnswers",
    "Check",
    "CloudSale",
    "cashier_answers_hold",
    "check_chain",
    "cloud_progress",
    "cloud_sales",
    "points_follow_rules",
    "rule_update_reached_every_station",
    "sales_match_truth",
]

_SHOWN = 5  # examples shown per failed check
_T = TypeVar("_T")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class CloudSale:
    sale_id: str
    station_id: str
    key: SaleKey
    member_id: str | None
    points: int
    recomputed: int | None
    tier: str | None
    ruleset_version: int | None
    ended_at: datetime


def _read(database_url: str, query: Callable[[Connection], _T]) -> _T:
    """One read of the cloud's database, on an engine of its own (the cloud may restart)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return query(conn)
    finally:
        engine.dispose()


def cloud_sales(database_url: str) -> list[CloudSale]:
    """Every sale in the cloud ledger, keyed as the pumps report sales."""
    rows = _read(
        database_url,
        lambda conn: conn.execute(
            select(
                sales.c.sale_id,
                sales.c.station_id,
                sales.c.grade,
                sales.c.litres,
                sales.c.amount,
                sales.c.member_id,
                sales.c.points,
                sales.c.recomputed,
                sales.c.tier,
                sales.c.ruleset_version,
                sales.c.ended_at,
                sales.c.source,
                sales.c.fuelling_point,
                sales.c.nozzle,
            )
        ).all(),
    )
    found = []
    for row in rows:
        key: SaleKey = (
            str(row.source),
            int(row.fuelling_point),
            int(row.nozzle or 0),
            str(row.grade),
            Decimal(row.litres),
            Decimal(row.amount),
        )
        found.append(
            CloudSale(
                sale_id=str(row.sale_id),
                station_id=str(row.station_id),
                key=key,
                member_id=row.member_id,
                points=int(row.points),
                recomputed=None if row.recomputed is None else int(row.recomputed),
                tier=row.tier,
                ruleset_version=None if row.ruleset_version is None else int(row.ruleset_version),
                ended_at=datetime.fromisoformat(row.ended_at),
            )
        )
    return found


def cloud_progress(database_url: str) -> dict[str, tuple[int, int]]:
    """Per station: (sales in the cloud, highest event seq applied in its latest epoch)."""
    counts: dict[str, int] = dict(
        _read(
            database_url,
            lambda conn: conn.execute(
                select(sales.c.station_id, func.count()).group_by(sales.c.station_id)
            ).all(),
        )
    )
    marks: dict[str, tuple[int, int]] = {}
    for station_id, epoch, mark in _read(
        database_url,
        lambda conn: conn.execute(
            select(high_water.c.station_id, high_water.c.epoch, high_water.c.high_water)
        ).all(),
    ):
        if station_id not in marks or epoch > marks[station_id][0]:
            marks[station_id] = (int(epoch), int(mark))
    stations = set(counts) | set(marks)
    return {s: (int(counts.get(s, 0)), marks.get(s, (0, 0))[1]) for s in stations}


def _examples(items: Iterable[object]) -> str:
    shown = list(items)
    more = f" (+{len(shown) - _SHOWN} more)" if len(shown) > _SHOWN else ""
    return "; ".join(str(item) for item in shown[:_SHOWN]) + more


def check_chain(
    nodes: list[StationNode],
    ledger: CloudLedger,
    database_url: str,
    rulesets: Mapping[int, RuleSet],
    now: datetime,
    answers: CashierAnswers,
) -> list[Check]:
    """Every promise, checked against the simulators' ground truth, what the cashiers were
    told, and the stores."""
    cloud = cloud_sales(database_url)
    checks = [
        sales_match_truth(nodes, cloud),
        points_follow_rules(cloud, rulesets),
        rule_update_reached_every_station(nodes, cloud, rulesets),
        cashier_answers_hold(
            cloud, _cloud_redemptions(database_url), answers, _survivors(ledger, now)
        ),
        _backlogs_empty(nodes, database_url),
    ]
    acked = {node.station_id: store_outbox(node.store) for node in nodes}
    checks.append(_events_applied_once(acked, ledger))
    checks.append(_balances_match_events(acked, ledger, now))
    problems = ledger.ledger_problems()
    checks.append(
        Check(
            "postings balance, ledger invariants hold",
            not problems,
            "journals sum to 0 in every account" if not problems else _examples(problems),
        )
    )
    checks.append(_overdraft_within_allowances(ledger))
    checks.append(_stations_verify(nodes))
    return checks


def sales_match_truth(nodes: list[StationNode], cloud: list[CloudSale]) -> Check:
    missing: list[str] = []
    extra: list[str] = []
    total = 0
    for node in nodes:
        truth = Counter(node.truth())
        total += sum(truth.values())
        got = Counter(sale.key for sale in cloud if sale.station_id == node.station_id)
        missing += [f"{node.station_id} {key}" for key in (truth - got).elements()]
        extra += [f"{node.station_id} {key}" for key in (got - truth).elements()]
    strays = [s for s in cloud if s.station_id not in {n.station_id for n in nodes}]
    ok = not missing and not extra and not strays and total > 0
    detail = f"{total} simulated sales, each in the cloud once with its litres and amount"
    if not ok:
        detail = f"missing {len(missing)}: {_examples(missing)}; extra {len(extra)}: " + _examples(
            extra
        )
    return Check("every simulated sale once, exact litres and amount", ok, detail)


def points_follow_rules(cloud: list[CloudSale], rulesets: Mapping[int, RuleSet]) -> Check:
    wrong: list[str] = []
    members = 0
    tiers: Counter[str] = Counter()
    for sale in cloud:
        if sale.member_id is None:
            if sale.points != 0:
                wrong.append(f"{sale.key}: {sale.points} points without a member")
            continue
        members += 1
        ruleset = rulesets.get(sale.ruleset_version or -1)
        if ruleset is None or sale.tier is None:
            wrong.append(f"{sale.key}: priced under unknown rule set {sale.ruleset_version}")
            continue
        if sale.ended_at < ruleset.effective_from:
            wrong.append(f"{sale.key}: priced under v{ruleset.version} before it took effect")
            continue
        facts = SaleFacts(sale.key[3], sale.key[4], sale.key[5], sale.ended_at)
        try:
            expected = price_sale(ruleset, facts, sale.tier).points
        except KeyError:
            wrong.append(f"{sale.key}: tier {sale.tier!r} is not in rule set {ruleset.version}")
            continue
        tiers[sale.tier] += 1
        if sale.points != expected or sale.recomputed != expected:
            wrong.append(
                f"{sale.key} v{sale.ruleset_version} {sale.tier}: station {sale.points}, "
                f"cloud {sale.recomputed}, rules {expected}"
            )
    versions = sorted({s.ruleset_version for s in cloud if s.ruleset_version is not None})
    ok = not wrong and members > 0
    detail = (
        f"{members} member sales priced by rule-set versions {versions}, at tiers "
        + ", ".join(f"{tier} {count}" for tier, count in sorted(tiers.items()))
        if ok
        else _examples(wrong) or "no member sale to check"
    )
    return Check("points are what the rules give", ok, detail)


def rule_update_reached_every_station(
    nodes: list[StationNode], cloud: list[CloudSale], rulesets: Mapping[int, RuleSet]
) -> Check:
    """HQ's newest rule set is installed in every station's store after the drain.

    Delivery is the promise: a station whose link was down from the update to the end
    rightly priced every sale under the rules it had (the version-in-force check covers
    pricing), so sales under the update are reported, not required, per station.
    """
    newest = max(rulesets)
    missing = sorted(node.station_id for node in nodes if newest not in node.rule_versions())
    using = {sale.station_id for sale in cloud if sale.ruleset_version == newest}
    return Check(
        f"HQ's rule update (v{newest}) reached every station",
        not missing,
        f"installed at all {len(nodes)} stations; member sales priced under it at {len(using)}"
        if not missing
        else f"v{newest} not installed at {', '.join(missing)}",
    )


@dataclass(frozen=True)
class CashierAnswers:
    """What the stations acknowledged to their cashiers: redemption id -> (member, points)
    for every 201, sale id -> member for every attach answered 200."""

    redeemed: Mapping[str, tuple[str, int]]
    attached: Mapping[str, str]


def _cloud_redemptions(database_url: str) -> dict[str, tuple[str, int]]:
    rows = _read(
        database_url,
        lambda conn: conn.execute(
            select(redemptions.c.redemption_id, redemptions.c.member_id, redemptions.c.points)
        ).all(),
    )
    return {str(r.redemption_id): (str(r.member_id), int(r.points)) for r in rows}


def _survivors(ledger: CloudLedger, now: datetime) -> Callable[[str], str]:
    """Member id -> the id the cloud keeps for that member (itself, or the merge survivor)."""
    known: dict[str, str] = {}

    def survivor(member_id: str) -> str:
        if member_id not in known:
            view = ledger.member(member_id, now)
            known[member_id] = member_id if view is None else str(view["member_id"])
        return known[member_id]

    return survivor


def cashier_answers_hold(
    cloud: list[CloudSale],
    cloud_redemptions: Mapping[str, tuple[str, int]],
    answers: CashierAnswers,
    survivor: Callable[[str], str],
) -> Check:
    """Every redemption and attach a station acknowledged is in the cloud, for the same
    member (or the member it merged into): an answer given is a promise kept."""
    broken: list[str] = []
    for redemption_id, (member_id, points) in sorted(answers.redeemed.items()):
        booked = cloud_redemptions.get(redemption_id)
        if booked is None:
            broken.append(f"redemption {redemption_id} ({points} points) is not in the cloud")
        elif booked[1] != points or survivor(booked[0]) != survivor(member_id):
            broken.append(f"redemption {redemption_id}: cloud {booked}, cashier told {points}")
    member_of = {sale.sale_id: sale.member_id for sale in cloud}
    for sale_id, member_id in sorted(answers.attached.items()):
        booked_member = member_of.get(sale_id)
        if booked_member is None or survivor(booked_member) != survivor(member_id):
            broken.append(f"sale {sale_id}: cloud member {booked_member}, cashier told {member_id}")
    ok = not broken and bool(answers.redeemed) and bool(answers.attached)
    detail = (
        f"{len(answers.attached)} attaches and {len(answers.redeemed)} redemptions the "
        "stations acknowledged, each in the cloud"
        if ok
        else _examples(broken) or "the cashiers were never answered"
    )
    return Check("what the cashiers were told is in the cloud", ok, detail)


def _backlogs_empty(nodes: list[StationNode], database_url: str) -> Check:
    progress = cloud_progress(database_url)
    behind = []
    for node in nodes:
        _, backlog, last = node.store_counts()
        mark = progress.get(node.station_id, (0, 0))[1]
        if backlog or mark != last:
            behind.append(f"{node.station_id}: {backlog} queued, cloud at {mark} of {last}")
    return Check(
        "every station's backlog is empty",
        not behind,
        f"{len(nodes)} stations drained" if not behind else _examples(behind),
    )


def _events_applied_once(acked: Mapping[str, list[dict[str, Any]]], ledger: CloudLedger) -> Check:
    queued = sum(len(events) for events in acked.values())
    totals = ledger.totals()
    applied, rejected = int(totals["events_applied"]), int(totals["events_rejected"])
    unacked = sum(1 for es in acked.values() for e in es if e["acked_at"] is None)
    ok = applied == queued and rejected == 0 and unacked == 0
    detail = f"{queued} station events, {applied} applied, {totals['events_duplicate']} replays"
    if rejected:
        detail += f"; rejected: {_examples(ledger.quarantined())}"
    return Check("every station event applied exactly once", ok, detail)


def _balances_match_events(
    acked: Mapping[str, list[dict[str, Any]]], ledger: CloudLedger, now: datetime
) -> Check:
    """Each member's chain balance is the plain sum of what the stations booked
    (members signed up twice, at two stations, counted together under the survivor)."""
    survivor_of = _survivors(ledger, now)
    by_survivor: dict[str, int] = defaultdict(int)
    merged = 0
    events = [event for station_events in acked.values() for event in station_events]
    for member_id, points in reference_balances(events).items():
        kept = survivor_of(member_id)
        by_survivor[kept] += points
        merged += kept != member_id
    wrong = []
    for survivor, points in sorted(by_survivor.items()):
        view = ledger.member(survivor, now)
        chain = None if view is None else int(view["points"])
        if chain != points:
            wrong.append(f"{survivor}: cloud {chain}, events {points}")
    ok = not wrong and bool(by_survivor)
    detail = (
        f"{len(by_survivor)} members ({merged} signed up twice and merged)"
        if ok
        else _examples(wrong) or "no member"
    )
    return Check("each member's balance is the sum of their events", ok, detail)


def _overdraft_within_allowances(ledger: CloudLedger) -> Check:
    totals = ledger.totals()
    granted = int(totals["allowances_granted_points"])
    overdrawn = int(totals["redemption_overdraft"])
    owed = int(totals["total_overdraft"])
    ok = overdrawn <= granted and owed <= granted
    return Check(
        "total overdraft within the allowances",
        ok,
        f"overdrawn {overdrawn}, owed now {owed}, allowances granted {granted} points",
    )


def _stations_verify(nodes: list[StationNode]) -> Check:
    """`edge verify` on every station store: its own ledger and SQLite's integrity check."""
    failed = []
    for node in nodes:
        result = subprocess.run(
            [LOYALPUMP, "edge", "verify", "-c", str(node.config)],
            capture_output=True,
            text=True,
            timeout=120,
            env=node.env,
            check=False,
        )
        if result.returncode != 0:
            failed.append(f"{node.station_id}: {(result.stdout + result.stderr).strip()[-300:]}")
    return Check(
        "every station's own ledger verifies",
        not failed,
        f"edge verify passed at {len(nodes)} stations" if not failed else _examples(failed),
    )
