"""Properties of the points ledger, driven through the services on a real SQLite file.

Hypothesis generates a member's life over about two years: sales of any grade and size,
redemptions, manual adjustments both ways, reversals, nightly expiry runs and jumps of the
clock to (just before, at, just after) a lot's expiry. Next to the store the test keeps its
own model of the member's lots, allocating debits the way the contract says (soonest expiry
first, then oldest; a reversal drains its own sale's lot first), and after every step checks:

- the store's lots are exactly the model's lots (so every debit took the right lots);
- booked balance = sum of ledger entries = sum of lots' remaining = cached balance;
- spendable balance = live lots only (never an expired one), never negative;
- a refused operation (not enough points, already reversed) changes nothing at all;
- reversing a sale right after recording it restores the member exactly;
- a retried redemption id is booked once;
- `verify_ledger` and `PRAGMA integrity_check` are clean at the end.

Run with `--hypothesis-show-statistics` to see which situations the examples reached.
"""

from __future__ import annotations

import calendar
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import Phase, event, given, settings
from hypothesis import strategies as st

from edge_agent.errors import ServiceError
from edge_agent.services.members import MemberView, member_view, register_member
from edge_agent.services.points import (
    Redemption,
    adjust_points,
    expire_points,
    redeem_points,
    verify_ledger,
)
from edge_agent.services.rules import install_ruleset
from edge_agent.services.sales import SaleInput, record_sale, reverse_sale
from edge_agent.services.station import Station, open_station
from edge_agent.settings import StationSettings

RULESET = Path(__file__).resolve().parents[2] / "config" / "rulesets" / "field-examples.json"
SHANGHAI = ZoneInfo("Asia/Shanghai")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
START = datetime(2025, 1, 6, 9, 0, tzinfo=SHANGHAI)  # a Monday
EXPIRY_MONTHS = 12  # field-examples.json
MIN_REDEEM = 100  # field-examples.json: 100 points per yuan, at least 100 at once
TABLES = ("members", "sales", "ledger", "lot_debits", "lots", "balances", "outbox", "audit")


# --------------------------------------------------------------------------- world


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class ModelLot:
    remaining: int
    expires_ms: int | None
    expired_by_job: int = 0  # points the nightly expiry run booked out of this lot


@dataclass
class ModelSale:
    sale_id: str
    points: int
    lot_id: int | None
    reversed: bool = False


@dataclass
class World:
    station: Station
    clock: Clock
    member_id: str
    lots: dict[int, ModelLot] = field(default_factory=dict)
    sales: list[ModelSale] = field(default_factory=list)
    redemptions: int = 0  # redemptions booked: a till's id is unique per redemption

    def now_us(self) -> int:
        return (self.clock.now - EPOCH) // timedelta(microseconds=1)

    def has_expired(self, lot: ModelLot) -> bool:
        return lot.expires_ms is not None and lot.expires_ms * 1000 <= self.now_us()

    def is_live(self, lot: ModelLot) -> bool:
        return lot.remaining > 0 and not self.has_expired(lot)

    def spendable(self) -> int:
        return sum(lot.remaining for lot in self.lots.values() if self.is_live(lot))

    def allocate(self, points: int, first: int | None = None) -> list[tuple[int, int]] | None:
        """The contract's order: soonest expiry first, then oldest, live lots only; a
        reversal first drains its own sale's lot, even one that expired unbooked."""
        live = [
            (lot_id, lot)
            for lot_id, lot in self.lots.items()
            if self.is_live(lot) or (lot_id == first and lot.remaining > 0)
        ]
        live.sort(
            key=lambda item: (
                item[0] != first,
                item[1].expires_ms is None,
                item[1].expires_ms or 0,
                item[0],
            )
        )
        if sum(lot.remaining for _, lot in live) < points:
            return None
        taken: list[tuple[int, int]] = []
        for lot_id, lot in live:
            take = min(lot.remaining, points - sum(p for _, p in taken))
            if take:
                taken.append((lot_id, take))
        return taken

    def debit(self, allocations: list[tuple[int, int]]) -> None:
        for lot_id, points in allocations:
            self.lots[lot_id].remaining -= points


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _expiry_of(earned_at: datetime) -> datetime:
    """EXPIRY_MONTHS calendar months later, same Shanghai wall time, day clamped."""
    local = earned_at.astimezone(SHANGHAI)
    month_index = local.month - 1 + EXPIRY_MONTHS
    year, month = local.year + month_index // 12, month_index % 12 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day)


def _open_world(data_dir: Path) -> World:
    clock = Clock(START)
    settings_ = StationSettings.model_validate({"station": {"id": "S001", "data_dir": data_dir}})
    station = open_station(settings_, create=True, clock=clock)
    install_ruleset(station, RULESET.read_bytes(), actor="test")
    member = register_member(station, phone="13800138000", consent_channel="test", actor="test")
    return World(station, clock, member.member_id)


def _snapshot(world: World) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table a ledger operation may touch."""
    with world.station.store.read() as tx:
        return {
            table: sorted(tuple(row) for row in tx.execute(f"SELECT * FROM {table}").fetchall())
            for table in TABLES
        }


def _refused(world: World, code: str, action: Callable[[], object]) -> None:
    """`action` must raise ServiceError `code` and leave every table as it was."""
    before = _snapshot(world)
    with pytest.raises(ServiceError) as refusal:
        action()
    assert refusal.value.code == code, str(refusal.value)
    assert _snapshot(world) == before, f"refused {code} changed the store"


def _store_lots(world: World) -> dict[int, tuple[int, int | None]]:
    with world.station.store.read() as tx:
        rows = tx.execute(
            "SELECT lot_entry_id, remaining, expires_at_ms FROM lots WHERE member_id = ?",
            [world.member_id],
        ).fetchall()
    return {int(lot): (int(remaining), ms) for lot, remaining, ms in rows}


def _check(world: World) -> MemberView:
    """The invariants that hold after every step; returns the member as a cashier sees them."""
    store_lots = _store_lots(world)
    model_lots = {lot_id: (lot.remaining, lot.expires_ms) for lot_id, lot in world.lots.items()}
    assert store_lots == model_lots, "the store's lots differ from the contract's allocation"
    with world.station.store.read() as tx:
        ledger_total, balance = tx.execute(
            "SELECT (SELECT coalesce(sum(points), 0) FROM ledger WHERE member_id = :m), "
            "(SELECT coalesce(sum(points), 0) FROM balances WHERE member_id = :m)",
            {"m": world.member_id},
        ).fetchone()
    booked = sum(remaining for remaining, _ in store_lots.values())
    view = member_view(world.station, world.member_id)
    assert ledger_total == booked == balance == view.booked_points
    assert all(remaining >= 0 for remaining, _ in store_lots.values())
    # Spendable: live lots only, whether or not the expiry entry has been booked yet.
    assert view.points == world.spendable() >= 0
    soon = world.now_us() + 30 * 86_400_000_000
    expiring = sum(
        lot.remaining
        for lot in world.lots.values()
        if lot.expires_ms is not None and world.now_us() < lot.expires_ms * 1000 <= soon
    )
    assert view.points_expiring_30d == expiring
    return view


# --------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class Sale:
    advance_s: int
    lag_s: int
    grade: str
    centilitres: int
    reverse_now: bool

    def run(self, world: World) -> None:
        world.clock.now += timedelta(seconds=self.advance_s)
        ended_at = world.clock.now - timedelta(seconds=self.lag_s)
        litres = Decimal(self.centilitres) / 100
        before_view = _check(world)
        before_lots = {k: replace(v) for k, v in world.lots.items()}
        outcome = record_sale(
            world.station,
            SaleInput(
                source="dart",
                pump=1,
                grade=self.grade,
                litres=litres,
                amount=(litres * Decimal("7.89")).quantize(Decimal("0.01")),
                ended_at=ended_at,
                source_key=f"prop:{len(world.sales)}",
                member_id=world.member_id,
            ),
        )
        assert outcome.created
        points = outcome.sale.points
        # field-examples.json: points/L by grade, at most x1.5 (gold) x2 (Tuesday member day).
        rates = {"92": Decimal(1), "95": Decimal(1), "0": Decimal("0.5")}
        per_litre = rates.get(self.grade, Decimal(0))
        assert 0 <= points <= litres * per_litre * 3
        assert points >= litres * per_litre - 1  # never below the standard tier, floored
        lot_id = None
        if points > 0:
            with world.station.store.read() as tx:
                (lot_id,) = tx.execute(
                    "SELECT entry_id FROM ledger WHERE sale_id = ? AND kind = 'earn'",
                    [outcome.sale.sale_id],
                ).fetchone()
            world.lots[int(lot_id)] = ModelLot(points, _ms(_expiry_of(ended_at)))
        sale = ModelSale(outcome.sale.sale_id, points, lot_id)
        world.sales.append(sale)
        _check(world)
        if self.reverse_now:
            _reverse(world, sale)
            after_view = _check(world)
            assert after_view == before_view, "an immediate reversal did not restore the member"
            live_after = {k: v for k, v in world.lots.items() if v.remaining}
            assert live_after == {k: v for k, v in before_lots.items() if v.remaining}


def _reverse(world: World, sale: ModelSale) -> None:
    allocations = world.allocate(sale.points, first=sale.lot_id) if sale.points else []
    if allocations is None:
        event("reversal refused: points spent")
        _refused(
            world,
            "points.insufficient",
            lambda: reverse_sale(world.station, sale.sale_id, actor="mgr", reason="test"),
        )
        return
    event("reversal booked" if sale.points else "reversal of a sale without points")
    view = reverse_sale(world.station, sale.sale_id, actor="mgr", reason="test")
    assert view.status == "reversed"
    sale.reversed = True
    world.debit(allocations)


@dataclass(frozen=True)
class Reverse:
    pick: int

    def run(self, world: World) -> None:
        if not world.sales:
            return
        sale = world.sales[self.pick % len(world.sales)]
        if sale.reversed:
            _refused(
                world,
                "sale.reversed",
                lambda: reverse_sale(world.station, sale.sale_id, actor="mgr", reason="again"),
            )
            return
        own = None if sale.lot_id is None else world.lots[sale.lot_id]
        if own is not None and own.expired_by_job:
            # Reversing a sale after its points were booked as expired: see
            # test_reversing_a_sale_whose_points_expired_costs_the_member_only_those_points.
            event("reversal skipped: the sale's points were booked as expired")
            return
        if own is not None and own.remaining and world.has_expired(own):
            event("reversal of a sale whose points expired unbooked")
        _reverse(world, sale)


@dataclass(frozen=True)
class Redeem:
    percent: int

    def run(self, world: World) -> None:
        spendable = world.spendable()
        points = max(MIN_REDEEM, spendable * self.percent // 100)
        allocations = world.allocate(points)
        if allocations is None:
            event("redemption refused")
            _refused(
                world,
                "points.insufficient",
                lambda: redeem_points(world.station, world.member_id, points, actor="cashier"),
            )
            return
        event("redemption booked" if len(allocations) == 1 else "redemption across lots")
        # Two redemptions of the same points at the same instant are two redemptions: the id
        # a till sends names each one (an id built from time and points alone named both).
        world.redemptions += 1
        redemption_id = f"redeem-{world.redemptions}-{world.clock.now.isoformat()}-{points}"

        def redeem() -> Redemption:
            return redeem_points(
                world.station, world.member_id, points, actor="cashier", redemption_id=redemption_id
            )

        done = redeem()
        assert done.created
        assert (done.points, done.value_fen) == (points, points)  # 100 points = 1 yuan
        assert done.balance_after == spendable - points
        world.debit(allocations)
        # The till retries (the answer was lost): the same redemption, booked once.
        before = _snapshot(world)
        again = redeem()
        assert not again.created
        assert (again.redemption_id, again.value_fen) == (redemption_id, points)
        assert again.balance_after == world.spendable()
        assert _snapshot(world) == before


@dataclass(frozen=True)
class RedeemTooMuch:
    extra: int

    def run(self, world: World) -> None:
        # Often within the booked balance: expired-but-unbooked points must not count.
        points = max(MIN_REDEEM, world.spendable() + self.extra)
        booked = sum(lot.remaining for lot in world.lots.values())
        if points <= booked:
            event("over-redemption covered only by expired points")
        _refused(
            world,
            "points.insufficient",
            lambda: redeem_points(world.station, world.member_id, points, actor="cashier"),
        )


@dataclass(frozen=True)
class Adjust:
    points: int

    def run(self, world: World) -> None:
        def adjust() -> int:
            return adjust_points(
                world.station, world.member_id, self.points, actor="mgr", reason="test"
            )

        if self.points > 0:
            after = adjust()
            with world.station.store.read() as tx:
                (lot_id,) = tx.execute(
                    "SELECT max(entry_id) FROM ledger WHERE kind = 'adjust'"
                ).fetchone()
            world.lots[int(lot_id)] = ModelLot(self.points, _ms(_expiry_of(world.clock.now)))
        else:
            allocations = world.allocate(-self.points)
            if allocations is None:
                _refused(world, "points.insufficient", adjust)
                return
            after = adjust()
            world.debit(allocations)
        assert after == world.spendable()


@dataclass(frozen=True)
class Expire:
    def run(self, world: World) -> None:
        spendable_before = _check(world).points
        expired = {
            lot_id: lot.remaining
            for lot_id, lot in world.lots.items()
            if lot.remaining and world.has_expired(lot)
        }
        event("expiry run booked points" if expired else "expiry run found nothing")
        assert expire_points(world.station) == sum(expired.values())
        world.debit(list(expired.items()))
        for lot_id, points in expired.items():
            world.lots[lot_id].expired_by_job += points
        assert _check(world).points == spendable_before  # expired points were never spendable
        assert expire_points(world.station) == 0  # idempotent


@dataclass(frozen=True)
class Advance:
    days: int

    def run(self, world: World) -> None:
        world.clock.now += timedelta(days=self.days)


@dataclass(frozen=True)
class JumpToExpiry:
    """Move the clock to just before, exactly at or just after a lot's expiry."""

    pick: int
    offset_us: int

    def run(self, world: World) -> None:
        ahead = sorted(
            lot.expires_ms
            for lot in world.lots.values()
            if lot.expires_ms is not None and lot.expires_ms * 1000 > world.now_us()
        )
        if not ahead:
            return
        target = EPOCH + timedelta(
            milliseconds=ahead[self.pick % len(ahead)], microseconds=self.offset_us
        )
        if target > world.clock.now:
            event(f"clock set to a lot's expiry {self.offset_us:+d} us")
            world.clock.now = target.astimezone(SHANGHAI)


Operation = Sale | Reverse | Redeem | RedeemTooMuch | Adjust | Expire | Advance | JumpToExpiry

sales = st.builds(
    Sale,
    advance_s=st.integers(0, 45 * 86_400),
    lag_s=st.integers(0, 3 * 86_400),
    grade=st.sampled_from(["92", "95", "0", "98"]),
    centilitres=st.integers(0, 20_000),
    reverse_now=st.booleans(),
)
others = st.one_of(
    st.builds(Reverse, pick=st.integers(0, 1000)),
    st.builds(Redeem, percent=st.integers(1, 100)),
    st.builds(RedeemTooMuch, extra=st.integers(1, 1000)),
    st.builds(Adjust, points=st.integers(1, 3000) | st.integers(-3000, -1)),
    st.just(Expire()),
    st.builds(Advance, days=st.integers(1, 400)),
    st.builds(
        JumpToExpiry,
        pick=st.integers(0, 100),
        offset_us=st.sampled_from([-1000, -1, 0, 1, 1000]),
    ),
)


def _flatten(steps: list[tuple[Sale, list[Operation]]]) -> list[Operation]:
    return [op for sale, after in steps for op in (sale, *after)]


# Every step is a sale followed by up to two other operations: 5-30 sales over up to ~2 years.
histories = st.lists(st.tuples(sales, st.lists(others, max_size=2)), min_size=5, max_size=30).map(
    _flatten
)


# No explain phase: re-running whole histories made a failure take minutes to report.
@settings(max_examples=60, deadline=None, phases=[p for p in Phase if p is not Phase.explain])
@given(histories)
def test_ledger_invariants_hold_after_every_operation(ops: list[Operation]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world = _open_world(Path(tmp))
        try:
            _check(world)
            for op in ops:
                op.run(world)
                _check(world)
            assert verify_ledger(world.station) == []
            assert world.station.store.integrity_problems() == []
        finally:
            world.station.close()


# --------------------------------------------------------------------------- examples


def _sale(world: World, key: str, litres: int) -> str:
    outcome = record_sale(
        world.station,
        SaleInput(
            source="dart",
            pump=1,
            grade="92",
            litres=Decimal(litres),
            amount=Decimal(litres) * 7,
            ended_at=world.clock.now,
            source_key=key,
            member_id=world.member_id,
        ),
    )
    return outcome.sale.sale_id


@pytest.mark.parametrize("expiry_job_ran_first", [False, True])
def test_reversing_a_sale_whose_points_expired_costs_the_member_only_those_points(
    tmp_path: Path, expiry_job_ran_first: bool
) -> None:
    """Sale A earns 100 points, B earns 150; A's points expire; A is reversed.

    The member should end with B's 150 however the nightly expiry job and the reversal are
    ordered: A's points are gone once, to expiry or to the reversal, never twice.
    """
    world = _open_world(tmp_path)
    sale_a = _sale(world, "a", 100)  # Monday, standard tier: 100 points, expire 2026-01-06
    world.clock.now += timedelta(days=300)
    _sale(world, "b", 150)
    world.clock.now += timedelta(days=70)  # A's lot has expired
    assert member_view(world.station, world.member_id).points == 150
    if expiry_job_ran_first:
        assert expire_points(world.station) == 100
    reverse_sale(world.station, sale_a, actor="mgr", reason="pump test")
    expire_points(world.station)
    view = member_view(world.station, world.member_id)
    assert (view.points, view.booked_points) == (150, 150)
    assert verify_ledger(world.station) == []


def test_ledger_is_append_only(tmp_path: Path) -> None:
    world = _open_world(tmp_path)
    _sale(world, "a", 150)
    redeem_points(world.station, world.member_id, 100, actor="cashier")
    adjust_points(world.station, world.member_id, -10, actor="mgr", reason="test")
    before = _snapshot(world)["ledger"]
    assert [row[2] for row in before] == ["earn", "redeem", "adjust"]
    statements = (
        "UPDATE ledger SET points = points + 1000",
        "UPDATE ledger SET reason = 'edited' WHERE kind = 'earn'",
        "DELETE FROM ledger",
        "DELETE FROM ledger WHERE kind = 'earn'",
    )
    for statement in statements:
        with (
            pytest.raises(sqlite3.IntegrityError, match="append-only"),
            world.station.store.write() as tx,
        ):
            tx.execute(statement)
    world.station.close()
    # Not even a connection that bypasses the store can edit it.
    raw = sqlite3.connect(tmp_path / "station.sqlite3")
    try:
        for statement in statements:
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                raw.execute(statement)
            raw.rollback()
        rows = sorted(tuple(row) for row in raw.execute("SELECT * FROM ledger").fetchall())
    finally:
        raw.close()
    assert rows == before
