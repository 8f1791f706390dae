"""One simulated DART pump: the state machine a real one runs, answering master frames.

Time is passed in (`now`, monotonic seconds) so the model itself stays deterministic: a
customer lifts the nozzle when a sale is due, the pump waits to be authorized, fills at a
steady rate sending DC2 progress, completes (DC1 5, or 6 when an amount preset is reached),
and keeps that sale on its display and a volume total per nozzle until the next reset.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from ..errors import MalformedMessage
from .framer import ControlCode, Frame, is_repeat, next_tx
from .messages import (
    CD1Command,
    CD5Prices,
    CD101RequestTotals,
    DC1Status,
    DC2VolumeAmount,
    DC3PriceNozzle,
    DC101Totals,
    Decimals,
    FromPump,
    OtherTransaction,
    PumpCommand,
    PumpState,
    ToPump,
    decode_to_pump,
    encode_from_pump,
)

__all__ = ["GRADES", "PRICES", "ScriptedSale", "SimulatedPump"]

GRADES: Mapping[int, str] = {1: "92", 2: "95"}
PRICES: Mapping[int, Decimal] = {1: Decimal("7.85"), 2: Decimal("8.36")}
_SHOWS_SALE = (
    PumpState.FILLING,
    PumpState.FILLING_COMPLETED,
    PumpState.MAX_REACHED,
    PumpState.SUSPENDED,
)
_RESETTABLE = (
    PumpState.RESET,
    PumpState.AUTHORIZED,
    PumpState.FILLING_COMPLETED,
    PumpState.MAX_REACHED,
    PumpState.NOT_PROGRAMMED,
)


@dataclass(frozen=True)
class ScriptedSale:
    """A sale to play: by volume, or by amount (an amount preset, ends in DC1 6)."""

    fuelling_point: int
    nozzle: int
    price: Decimal
    volume: Decimal | None = None
    amount: Decimal | None = None

    def __post_init__(self) -> None:
        if (self.volume is None) == (self.amount is None):
            raise ValueError("a scripted sale has either a volume or an amount")


class SimulatedPump:
    def __init__(
        self,
        address: int,
        fuelling_point: int,
        *,
        decimals: Decimals,
        totals: Mapping[int, Decimal],
        fill_s: float,
        interval_s: float,
        on_completed: Callable[[dict[str, str]], None],
    ) -> None:
        self.address = address
        self.fuelling_point = fuelling_point
        self.state = PumpState.RESET
        self.orders: deque[ScriptedSale] = deque()
        self.totals = dict(totals)
        self._decimals = decimals
        self._fill_s = fill_s
        self._interval_s = interval_s
        self._on_completed = on_completed
        self._prices = dict(PRICES)
        self._sale: ScriptedSale | None = None
        self._target = (Decimal(0), Decimal(0))
        self._nozzle = 1
        self._nozzle_out = False
        self._volume = self._amount = Decimal(0)
        self._reported = (Decimal(0), Decimal(0))
        self._fill_started = 0.0
        self._next_lift = 0.0
        self._outbox: list[FromPump] = []
        self._unacked: Frame | None = None
        self._tx_out: int | None = None
        self._rx_last: int | None = None

    @property
    def busy(self) -> bool:
        return self._sale is not None

    # -- the wire ------------------------------------------------------------------------

    def handle(self, frame: Frame) -> Frame | None:
        """The pump's answer to a master frame addressed to it (None: it stays silent)."""
        control = frame.control
        acked = self._unacked is not None and self._unacked.tx == frame.tx
        if acked and control in (ControlCode.ACK, ControlCode.ACKPOLL):
            self._unacked = None
        if control in (ControlCode.POLL, ControlCode.ACKPOLL):
            return self._answer_poll()
        if control is ControlCode.DATA:
            return self._take_commands(frame)
        return None

    def _answer_poll(self) -> Frame:
        if self._unacked is not None:
            return self._unacked  # not acknowledged: the same block, the same TX#
        if self.state is PumpState.FILLING and (self._volume, self._amount) != self._reported:
            self._say(DC2VolumeAmount(self._volume, self._amount))
        if not self._outbox:
            return Frame.eot(self.address)
        transactions = tuple(encode_from_pump(m, self._decimals) for m in self._outbox)
        self._outbox.clear()
        self._tx_out = next_tx(self._tx_out)
        self._unacked = Frame.data(self.address, self._tx_out, transactions)
        return self._unacked

    def _take_commands(self, frame: Frame) -> Frame:
        if is_repeat(frame.tx, self._rx_last):
            return Frame.ack(self.address, frame.tx)
        try:
            commands = [decode_to_pump(t, d, self._decimals) for t, d in frame.transactions]
        except MalformedMessage:
            return Frame.nak(self.address, frame.tx)
        self._rx_last = frame.tx
        for command in commands:
            self._obey(command)
        return Frame.ack(self.address, frame.tx)

    def _say(self, message: FromPump) -> None:
        if isinstance(message, DC2VolumeAmount):
            self._reported = (message.volume, message.amount)
        self._outbox.append(message)

    def _nozzle_report(self) -> DC3PriceNozzle:
        return DC3PriceNozzle(self._prices[self._nozzle], self._nozzle, self._nozzle_out)

    def _obey(self, command: ToPump) -> None:
        if isinstance(command, CD1Command):
            self._obey_cd1(command.command)
        elif isinstance(command, CD101RequestTotals):
            self._answer_totals(command.counter)
        elif isinstance(command, CD5Prices):
            self._prices.update(enumerate(command.prices, start=1))

    def _obey_cd1(self, command: PumpCommand) -> None:
        if command is PumpCommand.RETURN_STATUS:
            self._say(DC1Status(self.state))
            if self.state in _SHOWS_SALE:
                self._say(DC2VolumeAmount(self._volume, self._amount))
            self._say(self._nozzle_report())
        elif command is PumpCommand.RETURN_FILLING_INFO:
            self._say(DC2VolumeAmount(self._volume, self._amount))
            self._say(self._nozzle_report())
        elif command is PumpCommand.RETURN_IDENTITY:
            self._say(OtherTransaction(0x09, bytes((0x00, 0x00, 0x00, 0x00, self.address))))
        elif command is PumpCommand.RESET and self.state in _RESETTABLE:
            self._set_state(PumpState.RESET)
            self._volume = self._amount = Decimal(0)
            self._say(DC2VolumeAmount(self._volume, self._amount))
        elif command is PumpCommand.AUTHORIZE and self.state is PumpState.RESET:
            self._set_state(PumpState.AUTHORIZED)
        elif command is PumpCommand.SWITCH_OFF:
            self._set_state(PumpState.SWITCHED_OFF)

    def _answer_totals(self, counter: int) -> None:
        if counter == 9:
            total = sum(self.totals.values(), Decimal(0))
        elif counter in self.totals:
            total = self.totals[counter]
        else:
            return
        self._say(DC101Totals(counter, total, total, Decimal(0)))

    def _set_state(self, state: PumpState) -> None:
        self.state = state
        self._say(DC1Status(state))

    # -- the forecourt -------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Let time pass: a due customer lifts the nozzle; an authorized one fills."""
        if self._sale is None and self.orders and now >= self._next_lift:
            self._lift(self.orders.popleft())
        if self._sale is not None and self.state is PumpState.AUTHORIZED:
            self._fill_started = now
            self._set_state(PumpState.FILLING)
        if self.state is PumpState.FILLING:
            self._flow(now)

    def _lift(self, sale: ScriptedSale) -> None:
        self._sale = sale
        self._nozzle, self._nozzle_out = sale.nozzle, True
        self._prices[sale.nozzle] = sale.price
        self._target = _targets(sale, self._decimals)
        self._say(self._nozzle_report())

    def _flow(self, now: float) -> None:
        share = min(Decimal(1), Decimal(str(max(0.0, now - self._fill_started) / self._fill_s)))
        volume, amount = self._target
        if share >= 1:
            self._volume, self._amount = volume, amount
            self._complete(now)
            return
        step = Decimal(1).scaleb(-self._decimals.volume)
        self._volume = min(volume, (volume * share).quantize(step, ROUND_DOWN))
        price = self._prices[self._nozzle]
        cents = Decimal(1).scaleb(-self._decimals.amount)
        self._amount = min(amount, (self._volume * price).quantize(cents, ROUND_HALF_UP))

    def _complete(self, now: float) -> None:
        sale = self._sale
        assert sale is not None
        self._sale = None
        self._nozzle_out = False
        self.totals[sale.nozzle] = self.totals.get(sale.nozzle, Decimal(0)) + self._volume
        final = PumpState.MAX_REACHED if sale.amount is not None else PumpState.FILLING_COMPLETED
        self._set_state(final)
        self._say(DC2VolumeAmount(self._volume, self._amount))
        self._say(self._nozzle_report())
        self._next_lift = now + self._interval_s
        self._on_completed(
            {
                "fuelling_point": str(self.fuelling_point),
                "nozzle": str(sale.nozzle),
                "grade": GRADES.get(sale.nozzle, ""),
                "volume": str(self._volume),
                "amount": str(self._amount),
                "unit_price": str(sale.price),
            }
        )


def _targets(sale: ScriptedSale, decimals: Decimals) -> tuple[Decimal, Decimal]:
    """Final volume and amount as the pump's meter and price computer would show them."""
    litre_step = Decimal(1).scaleb(-decimals.volume)
    cent = Decimal(1).scaleb(-decimals.amount)
    if sale.amount is not None:
        amount = sale.amount.quantize(cent, ROUND_HALF_UP)
        return (amount / sale.price).quantize(litre_step, ROUND_HALF_UP), amount
    assert sale.volume is not None
    volume = sale.volume.quantize(litre_step, ROUND_HALF_UP)
    return volume, (volume * sale.price).quantize(cent, ROUND_HALF_UP)
