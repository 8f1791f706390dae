"""DART pumps on a link, for bench tests and for a field engineer without a forecourt.

`DartPumpSimulator` answers a master (the agent in master mode) as N pumps at addresses
0x50, 0x51, ... (fuelling points 1..N, nozzle 1 grade "92", nozzle 2 grade "95"), playing
scripted or seeded random sales, optionally with line noise, and reports every completed
sale (the ground truth) to a callback and in `completed`. `serve` is what the CLI
(`loyalpump sim dart`) runs; `DartBusPlayer` (mode "bus") plays a whole controller-and-pumps
conversation for an agent in sniffer mode (on a pty it waits for the agent to attach).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Literal

from ..errors import FramingError
from ..links import ByteLink
from .bus_player import DartBusPlayer
from .framer import ControlCode, DartFramer, Frame, encode
from .messages import Decimals
from .noise import LineNoise
from .pty_link import open_pty
from .sim_pump import GRADES, PRICES, ScriptedSale, SimulatedPump
from .sim_world import ClosingTime, Forecourt

__all__ = [
    "GRADES",
    "PRICES",
    "DartBusPlayer",
    "DartPumpSimulator",
    "ScriptedSale",
    "open_pty",
    "serve",
]

GroundTruthSink = Callable[[dict[str, str]], None]


class DartPumpSimulator:
    """N pumps answering a master on `link`; run `serve_forever(stop)` in a thread."""

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
        on_sale_completed: GroundTruthSink | None = None,
    ) -> None:
        rng = random.Random(seed)  # noqa: S311 - simulated sales, not secrets
        self._link = link
        self.forecourt = Forecourt(
            pumps=pumps,
            script=script,
            random_sales=random_sales,
            interval_s=interval_s,
            fill_s=fill_s,
            decimals=decimals or Decimals(),
            rng=rng,
            on_sale_completed=on_sale_completed,
        )
        self._noise = LineNoise(noise, rng)
        self._framer = DartFramer()

    @property
    def completed(self) -> list[dict[str, str]]:
        return self.forecourt.completed

    def serve_forever(
        self,
        stop: threading.Event,
        closing: threading.Event | None = None,
        on_closed: Callable[[], None] | None = None,
    ) -> None:
        """Answer the master until `stop`; once `closing` is set, start no new sales but
        keep answering, so the master can still collect every sale already made.
        `on_closed` is called once, when closing and the last sale in progress is done."""
        closing_time = ClosingTime(self.forecourt, closing, on_closed)
        while not stop.is_set():
            closing_time.check()
            data = self._link.read(512, 0.005)
            self.forecourt.tick(time.monotonic())
            for item in self._framer.feed(data):
                if isinstance(item, FramingError):
                    continue  # a pump ignores what it cannot read; the master will ask again
                pump = self.forecourt.by_address.get(item.address)
                if pump is not None:
                    self._answer(pump, item)

    def _answer(self, pump: SimulatedPump, frame: Frame) -> None:
        noise = self._noise
        if noise.hit(0.25):
            return  # the answer is lost on the line
        if frame.is_data and noise.hit(0.25):
            self._link.write(encode(Frame.nak(pump.address, frame.tx)))
            return  # "could not read that": the master must send it again
        reply = pump.handle(frame)
        if reply is None:
            return
        wire = noise.wrap(reply)
        if reply.control is ControlCode.DATA and noise.hit(0.25):
            wire += encode(reply)  # sent twice: the second is a repeat by TX#
        self._link.write(wire)


def serve(
    link: ByteLink,
    *,
    pumps: int,
    mode: Literal["pumps", "bus"],
    sales: int | None,
    interval_s: float,
    noise: float,
    seed: int,
    stop: threading.Event,
    on_sale_completed: GroundTruthSink | None = None,
    closing: threading.Event | None = None,
    on_closed: Callable[[], None] | None = None,
) -> list[dict[str, str]]:
    """Run a simulator on `link` until `stop` is set; returns every completed sale.

    mode="pumps": answer a master (the agent in master mode). mode="bus": play a controller
    and its pumps for a listener (the agent in sniffer mode). `sales`: how many random sales
    to play (None: keep going). `closing`: once set, no new sale starts and the simulator
    keeps going; `on_closed` is called once no sale is in progress any more. The caller
    owns (and closes) the link.
    """
    kind: type[DartPumpSimulator] | type[DartBusPlayer] = (
        DartPumpSimulator if mode == "pumps" else DartBusPlayer
    )
    simulated = kind(
        link,
        pumps=pumps,
        random_sales=sales,
        interval_s=interval_s,
        noise=noise,
        seed=seed,
        on_sale_completed=on_sale_completed,
    )
    if isinstance(simulated, DartPumpSimulator):
        simulated.serve_forever(stop, closing, on_closed)
    else:
        simulated.play(stop, closing, on_closed)
    return simulated.completed
