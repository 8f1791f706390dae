"""The simulated pump behaves like the protocol says a pump does."""

from __future__ import annotations

import os
import threading
import time
from decimal import Decimal

from drivers.dart.bus_player import DartBusPlayer
from drivers.dart.framer import ControlCode, DartFramer, Frame
from drivers.dart.messages import (
    CD1Command,
    CD101RequestTotals,
    DC1Status,
    DC2VolumeAmount,
    DC3PriceNozzle,
    DC101Totals,
    Decimals,
    FromPump,
    PumpCommand,
    PumpState,
    ToPump,
    decode_from_pump,
    encode_to_pump,
)
from drivers.dart.sim_pump import ScriptedSale, SimulatedPump
from drivers.dart.simulator import open_pty
from drivers.links import PipeLink

TWO = Decimals()


class Master:
    """Just enough of a master to talk to one SimulatedPump by hand."""

    def __init__(self) -> None:
        self.truth: list[dict[str, str]] = []
        self.pump = SimulatedPump(
            0x50, 1, decimals=TWO, totals={1: Decimal("1000.00"), 2: Decimal("2000.00")},
            fill_s=1.0, interval_s=5.0, on_completed=self.truth.append,
        )  # fmt: skip
        self.tx = 0

    def command(self, command: PumpCommand, tx: int | None = None) -> Frame | None:
        return self.send(CD1Command(command), tx)

    def send(self, message: ToPump, tx: int | None = None) -> Frame | None:
        if tx is None:
            self.tx += 1
            tx = self.tx
        trans = encode_to_pump(message, TWO)
        return self.pump.handle(Frame.data(0x50, tx, (trans,)))

    def poll(self, ack: bool = True) -> list[FromPump]:
        reply = self.pump.handle(Frame.poll(0x50))
        assert reply is not None
        if reply.control is ControlCode.EOT:
            return []
        if ack:
            self.pump.handle(Frame.ack(0x50, reply.tx))
        return [decode_from_pump(t, d, TWO) for t, d in reply.transactions]


def test_a_sale_from_lift_to_totals() -> None:
    master = Master()
    pump = master.pump
    pump.orders.append(ScriptedSale(1, 2, Decimal("8.36"), volume=Decimal("10")))
    assert master.poll() == []
    pump.tick(0.0)
    assert master.poll() == [DC3PriceNozzle(Decimal("8.36"), 2, True)]
    master.command(PumpCommand.AUTHORIZE)
    pump.tick(0.0)
    assert master.poll() == [DC1Status(PumpState.AUTHORIZED), DC1Status(PumpState.FILLING)]
    pump.tick(0.5)
    assert master.poll() == [DC2VolumeAmount(Decimal("5.00"), Decimal("41.80"))]
    pump.tick(1.0)
    assert master.poll() == [
        DC1Status(PumpState.FILLING_COMPLETED),
        DC2VolumeAmount(Decimal("10.00"), Decimal("83.60")),
        DC3PriceNozzle(Decimal("8.36"), 2, False),
    ]
    master.send(CD101RequestTotals(2))
    assert master.poll() == [
        DC101Totals(2, Decimal("2010.00"), Decimal("2010.00"), Decimal("0.00"))
    ]
    assert master.truth == [
        {"fuelling_point": "1", "nozzle": "2", "grade": "95", "volume": "10.00",
         "amount": "83.60", "unit_price": "8.36"}
    ]  # fmt: skip


def test_unacknowledged_block_is_sent_again_with_its_tx_number() -> None:
    master = Master()
    master.command(PumpCommand.RETURN_STATUS)
    first = master.pump.handle(Frame.poll(0x50))
    again = master.pump.handle(Frame.poll(0x50))
    assert first is not None and first == again and first.tx == 0
    master.pump.handle(Frame.ack(0x50, first.tx))
    assert master.poll() == []


def test_a_repeated_command_is_acknowledged_not_applied() -> None:
    master = Master()
    reply = master.command(PumpCommand.RETURN_STATUS, tx=3)
    assert reply == Frame.ack(0x50, 3)
    assert master.command(PumpCommand.RETURN_STATUS, tx=3) == Frame.ack(0x50, 3)
    statuses = [m for m in master.poll() if isinstance(m, DC1Status)]
    assert statuses == [DC1Status(PumpState.RESET)]


def test_an_unreadable_command_is_refused() -> None:
    master = Master()
    bad = Frame.data(0x50, 1, ((0x01, b"\x07"),))  # CD1 07 is not a command
    assert master.pump.handle(bad) == Frame.nak(0x50, 1)


def test_open_pty_gives_a_link_and_a_device() -> None:
    link, path = open_pty()
    try:
        assert path.startswith("/dev/")
        slave = os.open(path, os.O_RDWR | os.O_NOCTTY)
        try:
            link.write(b"\x50\x20\xfa")
            assert os.read(slave, 16) == b"\x50\x20\xfa"
            os.write(slave, b"\x50\x70\xfa")
            assert DartFramer().feed(link.read(16, 1.0)) == [Frame.eot(0x50)]
        finally:
            os.close(slave)
    finally:
        link.close()


def test_closing_time_on_a_played_bus_finishes_sales_in_progress_and_starts_none() -> None:
    """SIGUSR1's effect in --bus mode: pumps mid-sale finish, queued sales are dropped, and
    `on_closed` comes once, after which the ground truth no longer grows."""
    link, _far_end = PipeLink.pair()
    player = DartBusPlayer(link, pumps=3, random_sales=None, interval_s=0.05, fill_s=0.05, seed=9)
    stop, closing, closed = threading.Event(), threading.Event(), threading.Event()
    calls: list[int] = []

    def on_closed() -> None:
        calls.append(len(player.completed))
        closed.set()

    worker = threading.Thread(target=player.play, args=(stop, closing, on_closed))
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while len(player.completed) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        at_closing = len(player.completed)
        closing.set()
        assert closed.wait(10), "on_closed never came"
        time.sleep(0.5)  # ten sale intervals: any queued sale would have started by now
    finally:
        stop.set()
        worker.join(10)
    assert at_closing >= 4
    assert calls == [len(player.completed)], "called once, and nothing completed after it"
    assert len(player.completed) - at_closing <= 3, "only the sales in progress finished"
