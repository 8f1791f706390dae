"""A whole DART bus played onto a link: a site controller and its pumps, for a listener.

The controller behaves like the ones in public captures: it polls every pump, asks for the
status now and then, resets and authorizes a lifted nozzle, reads the finished sale (CD1 04)
and keeps reading the nozzle's totals (CD101) while the sale waits on the display; it resets
only after it has read them. Both directions go onto the one link, as a merged RS-485 capture
would show them, with optional noise between frames and lost answers (retried).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import MalformedMessage
from ..links import ByteLink
from .framer import ControlCode, Frame, is_repeat, next_tx
from .messages import (
    CD1Command,
    CD101RequestTotals,
    DC1Status,
    DC3PriceNozzle,
    DC101Totals,
    Decimals,
    PumpCommand,
    PumpState,
    ToPump,
    decode_from_pump,
    encode_to_pump,
)
from .noise import LineNoise
from .pty_link import PtyLink
from .sim_pump import ScriptedSale, SimulatedPump
from .sim_world import ClosingTime, Forecourt

__all__ = ["DartBusPlayer"]

_STATUS_EVERY = 8  # cycles between status requests
_COMPLETED = (PumpState.FILLING_COMPLETED, PumpState.MAX_REACHED)


@dataclass
class _View:
    """What the simulated controller knows of one pump."""

    state: PumpState | None = None
    nozzle: int = 0
    nozzle_out: bool = False
    info_read: bool = False
    totals_read: bool = False
    tx_out: int | None = None
    rx_last: int | None = None


class DartBusPlayer:
    """Plays controller and pumps on `link` until `stop`; the ground truth is `completed`."""

    def __init__(
        self,
        link: ByteLink,
        *,
        pumps: int = 2,
        script: Sequence[ScriptedSale] = (),
        random_sales: int | None = 0,
        interval_s: float = 5.0,
        fill_s: float | None = None,
        noise: float = 0.0,
        seed: int = 0,
        decimals: Decimals | None = None,
        cycle_s: float = 0.02,
        wait_for_listener: bool = True,
        on_sale_completed: Callable[[dict[str, str]], None] | None = None,
    ) -> None:
        rng = random.Random(seed)  # noqa: S311 - simulated sales, not secrets
        self._decimals = decimals or Decimals()
        self.forecourt = Forecourt(
            pumps=pumps,
            script=script,
            random_sales=random_sales,
            interval_s=interval_s,
            fill_s=fill_s,
            decimals=self._decimals,
            rng=rng,
            on_sale_completed=on_sale_completed,
        )
        self._link = link
        self._noise = LineNoise(noise, rng)
        self._cycle_s = cycle_s
        self._wait_for_listener = wait_for_listener
        self._views = {pump.address: _View() for pump in self.forecourt.pumps}
        self._cycles = 0

    @property
    def completed(self) -> list[dict[str, str]]:
        return self.forecourt.completed

    def play(
        self,
        stop: threading.Event,
        closing: threading.Event | None = None,
        on_closed: Callable[[], None] | None = None,
    ) -> None:
        """Play until `stop`. On a pty, the forecourt waits while no listener is attached
        (`wait_for_listener`), so that no sale happens unheard while an agent starts.
        Once `closing` is set no sale starts; `on_closed` is called when the last is done."""
        closing_time = ClosingTime(self.forecourt, closing, on_closed)
        while not stop.is_set():
            closing_time.check()
            if self._listener_present():
                self.cycle()
            stop.wait(self._cycle_s)

    def _listener_present(self) -> bool:
        link = self._link
        return not self._wait_for_listener or not isinstance(link, PtyLink) or link.peer_connected

    def cycle(self) -> None:
        """One round of the controller over every pump."""
        self._cycles += 1
        for pump in self.forecourt.pumps:
            self.forecourt.tick(time.monotonic())
            view = self._views[pump.address]
            command = self._plan(view)
            if command is not None:
                self._command(pump, view, command)
            self._poll(pump, view)

    def _plan(self, view: _View) -> ToPump | None:
        if view.state is None or self._cycles % _STATUS_EVERY == 0:
            return CD1Command(PumpCommand.RETURN_STATUS)
        if view.state in _COMPLETED:
            if not view.info_read:
                view.info_read = True
                return CD1Command(PumpCommand.RETURN_FILLING_INFO)
            if not view.totals_read or not view.nozzle_out:
                return CD101RequestTotals(view.nozzle) if view.nozzle else None
            return CD1Command(PumpCommand.RESET)
        if view.state is PumpState.RESET and view.nozzle_out:
            return CD1Command(PumpCommand.AUTHORIZE)
        return None

    def _command(self, pump: SimulatedPump, view: _View, command: ToPump) -> None:
        view.tx_out = next_tx(view.tx_out)
        frame = Frame.data(pump.address, view.tx_out, (encode_to_pump(command, self._decimals),))
        for _ in range(4):
            self._send(frame)
            reply = pump.handle(frame)
            if reply is None or self._noise.hit(0.25):
                continue  # the answer is lost: send the block again
            self._send(reply)
            if reply.control is ControlCode.ACK:
                return

    def _poll(self, pump: SimulatedPump, view: _View) -> None:
        poll = Frame.poll(pump.address)
        self._send(poll)
        reply = pump.handle(poll)
        if reply is None or self._noise.hit(0.25):
            return  # lost: the pump keeps the block and sends it again next time
        self._send(reply)
        if reply.control is not ControlCode.DATA:
            return
        ack = Frame.ack(pump.address, reply.tx)
        self._send(ack)
        if not self._noise.hit(0.25):
            pump.handle(ack)  # a lost ACK makes the pump repeat the block (same TX#)
        if is_repeat(reply.tx, view.rx_last):
            return
        view.rx_last = reply.tx
        self._learn(view, reply)

    def _learn(self, view: _View, frame: Frame) -> None:
        for trans, data in frame.transactions:
            try:
                message = decode_from_pump(trans, data, self._decimals)
            except MalformedMessage:
                continue
            if isinstance(message, DC1Status):
                if message.state not in _COMPLETED:
                    view.info_read = view.totals_read = False
                view.state = message.state
            elif isinstance(message, DC3PriceNozzle):
                view.nozzle_out = message.nozzle_out
                view.nozzle = message.nozzle or view.nozzle
            elif isinstance(message, DC101Totals) and view.state in _COMPLETED:
                view.totals_read = True

    def _send(self, frame: Frame) -> None:
        self._link.write(self._noise.wrap(frame))
