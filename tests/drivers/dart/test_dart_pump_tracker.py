"""The pure per-pump state machine: when a filling is a sale, and with which numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from drivers.dart.messages import (
    DC1Status,
    DC2VolumeAmount,
    DC3PriceNozzle,
    DC101Totals,
    Decimals,
    FromPump,
    PumpState,
)
from drivers.dart.pump import BoardUpdate, PumpTracker
from drivers.dart.sales import build_sale

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
PRICE = Decimal("7.85")


def status(state: PumpState) -> DC1Status:
    return DC1Status(state)


def nozzle(number: int, out: bool, price: Decimal = PRICE) -> DC3PriceNozzle:
    return DC3PriceNozzle(price, number, out)


def volume(litres: str, amount: str) -> DC2VolumeAmount:
    return DC2VolumeAmount(Decimal(litres), Decimal(amount))


def totals(counter: int, total: str) -> DC101Totals:
    return DC101Totals(counter, Decimal(total), Decimal(total), Decimal(0))


class Pump:
    """Drives a tracker with blocks one second apart, collecting board updates."""

    def __init__(self, nozzles: tuple[int, ...] = ()) -> None:
        self.tracker = PumpTracker(Decimals(), nozzles)
        self.board: list[BoardUpdate] = []
        self.clock = T0

    def send(self, *messages: FromPump) -> None:
        self.clock += timedelta(seconds=1)
        update = self.tracker.observe(messages, self.clock)
        if update is not None:
            self.board.append(update)

    def fill(self, number: int = 1) -> None:
        self.send(status(PumpState.RESET), nozzle(number, False))
        self.send(nozzle(number, True))
        self.send(status(PumpState.AUTHORIZED))
        self.send(status(PumpState.FILLING), volume("0.00", "0.00"))
        self.send(volume("4.00", "31.40"))

    def complete(self, litres: str = "10.00", amount: str = "78.50", number: int = 1) -> None:
        self.send(
            status(PumpState.FILLING_COMPLETED), volume(litres, amount), nozzle(number, False)
        )


def test_a_live_sale_needs_totals_asked_for_after_completion() -> None:
    pump = Pump()
    pump.fill()
    pump.complete()
    tracker = pump.tracker
    assert tracker.sale_open and tracker.wants_totals == 1
    assert tracker.ready_sale() is None
    pump.send(totals(1, "123456.78"))  # an answer to a request made before: not trusted
    assert tracker.ready_sale() is None
    tracker.totals_requested(1)
    pump.send(totals(2, "999.00"))  # the other nozzle's totals do not count
    assert tracker.ready_sale() is None
    pump.send(totals(1, "123466.78"))
    sale = tracker.ready_sale()
    assert sale is not None
    assert (sale.nozzle, sale.volume, sale.amount, sale.unit_price) == (
        1,
        Decimal("10.00"),
        Decimal("78.50"),
        PRICE,
    )
    assert sale.volume_total == Decimal("123466.78")
    assert sale.seen_live and sale.final_state is PumpState.FILLING_COMPLETED
    assert sale.completed_at == T0 + timedelta(seconds=6)
    tracker.acknowledge()
    assert not tracker.sale_open and tracker.ready_sale() is None


def test_board_shows_the_filling_as_it_goes() -> None:
    pump = Pump()
    pump.fill()
    pump.complete()
    assert [(u.state, u.nozzle) for u in pump.board] == [
        ("idle", 1),
        ("calling", 1),
        ("authorized", 1),
        ("filling", 1),
        ("completed", 1),
    ]
    assert pump.board[-1].volume == Decimal("10.00")
    assert pump.tracker.mark_offline() == BoardUpdate("offline", 1)
    assert pump.tracker.mark_offline() is None


def test_hang_up_then_status_is_one_completion() -> None:
    pump = Pump()
    pump.fill()
    pump.send(nozzle(1, False), volume("10.00", "78.50"))  # hung up while still "filling"
    first = pump.tracker
    assert first.sale_open
    first.totals_requested(1)
    pump.send(status(PumpState.FILLING_COMPLETED), volume("10.00", "78.50"))
    pump.send(status(PumpState.FILLING), volume("10.00", "78.50"))  # stale, repeated
    pump.send(status(PumpState.FILLING_COMPLETED), totals(1, "500.00"))
    sale = first.ready_sale()
    assert sale is not None and sale.volume_total == Decimal("500.00")
    first.acknowledge()
    pump.send(status(PumpState.FILLING_COMPLETED))
    assert not first.sale_open


def test_already_completed_when_first_seen_gives_the_same_totals() -> None:
    """After an agent restart the pump still shows the sale: same nozzle, numbers, totals."""
    fresh = Pump()
    fresh.complete()
    tracker = fresh.tracker
    assert tracker.wants_totals == 1
    tracker.totals_requested(1)
    fresh.send(totals(1, "123466.78"))
    sale = tracker.ready_sale()
    assert sale is not None and not sale.seen_live
    assert (sale.nozzle, sale.volume, sale.volume_total) == (
        1,
        Decimal("10.00"),
        Decimal("123466.78"),
    )


def test_already_completed_without_data_asks_for_filling_information() -> None:
    pump = Pump()
    pump.send(status(PumpState.MAX_REACHED))
    assert pump.tracker.wants_filling_info and pump.tracker.wants_totals is None
    pump.send(volume("5.98", "50.00"), nozzle(2, True, Decimal("8.36")))  # still out at max
    assert not pump.tracker.wants_filling_info and pump.tracker.wants_totals == 2


def test_already_completed_with_another_nozzle_lifted_is_told_by_its_price() -> None:
    """The next customer lifted nozzle 2 (8.36) while the agent was down; the display's
    10.00 L for 78.50 only fits 7.85, so the filling was on nozzle 1."""
    pump = Pump(nozzles=(1, 2))
    lifted = nozzle(2, True, Decimal("8.36"))
    pump.send(status(PumpState.FILLING_COMPLETED), volume("10.00", "78.50"), lifted)
    assert pump.tracker.wants_totals == 1
    pump.tracker.totals_requested(1)
    pump.send(totals(1, "123466.78"))
    sale = pump.tracker.ready_sale()
    assert sale is not None and sale.nozzle_inferred
    assert (sale.nozzle, sale.unit_price, sale.volume_total) == (
        1,
        PRICE,
        Decimal("123466.78"),
    )


def test_already_completed_with_a_nozzle_lifted_and_no_fitting_nozzle_is_kept() -> None:
    """No nozzle can be named, but the pump reported a sale: it is recorded, nozzle unknown."""
    pump = Pump(nozzles=(1, 2, 3))  # two nozzles of unknown price could have sold it
    lifted = nozzle(2, True, Decimal("8.36"))
    pump.send(status(PumpState.FILLING_COMPLETED), volume("10.00", "78.50"), lifted)
    assert pump.tracker.sale_open
    assert pump.tracker.dropped == []
    sale = pump.tracker.ready_sale()
    assert sale is not None
    assert sale.nozzle_unknown
    assert (sale.volume, sale.amount) == (Decimal("10.00"), Decimal("78.50"))
    built = build_sale(
        link="bus1", address=0x50, fuelling_point=1, grades={1: "92"}, filling=sale, mode="master"
    )
    assert (built.nozzle, built.grade) == (None, None)
    assert built.sale_key == "dart:bus1:50:unknown:10.00:78.50"


def test_lift_and_hang_up_without_fuel_is_not_a_sale() -> None:
    pump = Pump()
    pump.send(status(PumpState.RESET), nozzle(1, True))
    pump.send(status(PumpState.AUTHORIZED))
    pump.send(status(PumpState.FILLING_COMPLETED), volume("0.00", "0.00"), nozzle(1, False))
    assert not pump.tracker.sale_open


def test_reset_before_totals_lets_the_sale_out_as_a_fingerprint() -> None:
    pump = Pump()
    pump.fill()
    pump.complete()
    pump.send(status(PumpState.RESET), volume("0.00", "0.00"))
    sale = pump.tracker.ready_sale()
    assert sale is not None and sale.volume_total is None
    assert sale.volume == Decimal("10.00")  # the display's reset does not overwrite the sale


def test_give_up_totals() -> None:
    pump = Pump()
    pump.fill()
    pump.complete()
    pump.tracker.give_up_totals()
    sale = pump.tracker.ready_sale()
    assert sale is not None and sale.volume_total is None


def test_reset_before_the_filling_was_read_drops_it_with_a_reason() -> None:
    pump = Pump()
    pump.send(status(PumpState.FILLING_COMPLETED))
    pump.send(status(PumpState.RESET))
    assert not pump.tracker.sale_open
    assert "reset before" in pump.tracker.dropped[0]


def test_a_missed_reset_is_noticed_when_the_display_restarts() -> None:
    pump = Pump()
    pump.fill()
    pump.complete()
    pump.tracker.totals_requested(1)
    pump.send(totals(1, "100.00"))
    pump.tracker.acknowledge()
    # RESET and AUTHORIZE were never heard; the next filling starts from zero
    pump.send(status(PumpState.FILLING), volume("0.50", "3.93"))
    pump.send(status(PumpState.FILLING_COMPLETED), volume("12.00", "94.20"))
    assert pump.tracker.sale_open
    pump.tracker.totals_requested(1)
    pump.send(totals(1, "112.00"))
    sale = pump.tracker.ready_sale()
    assert sale is not None and sale.volume == Decimal("12.00")


def test_the_nozzle_lifted_before_authorization_is_the_filling_nozzle() -> None:
    """A pump that does not repeat DC3 at the end still gets the sale's nozzle right."""
    pump = Pump()
    pump.send(status(PumpState.RESET), nozzle(2, True, Decimal("8.36")))
    pump.send(status(PumpState.AUTHORIZED))
    pump.send(status(PumpState.FILLING))
    pump.send(status(PumpState.FILLING_COMPLETED), volume("5.00", "41.80"))
    assert pump.tracker.wants_totals == 2 and not pump.tracker.wants_filling_info
