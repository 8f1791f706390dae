"""Master mode: the agent owns the bus, polls every pump, authorizes and reads totals.

One pump at a time: at most one command block (acknowledged by the pump, retransmitted on
NAK or silence), then a POLL whose answer (EOT or the pump's data block) is acknowledged
before it is applied. The pump's answer to a command arrives with the next POLL.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import FramingError
from ..links import ByteLink
from .channel import Outlet, PumpChannel
from .framer import ControlCode, DartFramer, Frame, encode, is_repeat, next_tx
from .messages import (
    CD1Command,
    CD101RequestTotals,
    PumpCommand,
    PumpState,
    ToPump,
    encode_to_pump,
)

__all__ = ["MasterSession", "MasterTiming"]

_OFFLINE_AFTER = 3  # unanswered polls in a row
_RESET_FIRST = (PumpState.FILLING_COMPLETED, PumpState.MAX_REACHED)


@dataclass(frozen=True)
class MasterTiming:
    reply_timeout_s: float = 0.025
    retries: int = 3  # retransmissions of a command block after NAK or silence
    totals_tries: int = 3  # CD101 requests before a sale falls back to a fingerprint key
    info_tries: int = 5  # CD1 04 requests before a sale whose numbers never come is given up
    cycle_s: float = 0.05  # shortest time for one round over all pumps


@dataclass
class _Line:
    """Per-pump line state: block numbers in each direction and reachability."""

    tx_out: int | None = None
    rx_last: int | None = None
    misses: int = 0
    needs_status: bool = True


class MasterSession:
    def __init__(
        self,
        link: ByteLink,
        channels: Sequence[PumpChannel],
        outlet: Outlet,
        *,
        timing: MasterTiming,
        authorize: bool,
    ) -> None:
        self._link = link
        self._channels = channels
        self._outlet = outlet
        self._timing = timing
        self._authorize = authorize
        self._framer = DartFramer()
        self._backlog: deque[Frame] = deque()
        self._lines = {channel.address: _Line() for channel in channels}

    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` is set; a LinkError propagates to the caller, who reopens."""
        while not stop.is_set():
            started = time.monotonic()
            for channel in self._channels:
                if stop.is_set():
                    return
                self._serve(channel)
            stop.wait(max(0.0, self._timing.cycle_s - (time.monotonic() - started)))

    def _serve(self, channel: PumpChannel) -> None:
        line = self._lines[channel.address]
        reachable = line.misses < _OFFLINE_AFTER  # an offline pump only gets polls
        command = self._plan(channel, line) if reachable else None
        if command is not None and self._send(channel, line, command):
            if command == CD1Command(PumpCommand.RETURN_STATUS):
                line.needs_status = False
            elif isinstance(command, CD101RequestTotals):
                channel.tracker.totals_requested(command.counter)
        self._poll(channel, line)
        channel.publish(self._outlet)

    def _plan(self, channel: PumpChannel, line: _Line) -> ToPump | None:
        """What the pump needs next: its status, the finished sale's data, or a go-ahead."""
        tracker = channel.tracker
        if line.needs_status:
            return CD1Command(PumpCommand.RETURN_STATUS)
        if tracker.wants_filling_info:
            if channel.info_tries < self._timing.info_tries:
                channel.info_tries += 1
                return CD1Command(PumpCommand.RETURN_FILLING_INFO)
            tracker.abandon("the pump never sent the finished filling's volume and nozzle")
        nozzle = tracker.wants_totals
        if nozzle is not None:
            if channel.totals_tries < self._timing.totals_tries:
                channel.totals_tries += 1
                return CD101RequestTotals(nozzle)
            tracker.give_up_totals()
            self._outlet.warn("totals", f"0x{channel.address:02X} sent no totals; fingerprint key")
        return self._plan_authorization(channel)

    def _plan_authorization(self, channel: PumpChannel) -> ToPump | None:
        """A lifted nozzle on an idle pump: reset a finished sale off the display, then authorize.

        The finished sale stays on the pump until then, so an agent that restarts in between
        sees it again (and gives it the same key).
        """
        tracker = channel.tracker
        if not self._authorize or tracker.sale_open or not tracker.nozzle_out:
            return None
        if tracker.state is PumpState.RESET:
            return CD1Command(PumpCommand.AUTHORIZE)
        if tracker.state in _RESET_FIRST:
            return CD1Command(PumpCommand.RESET)
        return None

    def _send(self, channel: PumpChannel, line: _Line, command: ToPump) -> bool:
        """One command block, retransmitted on NAK or silence; True once the pump ACKs it."""
        tx = next_tx(line.tx_out)
        line.tx_out = tx  # never reuse this number for other content, even if unacknowledged
        trans = encode_to_pump(command, channel.config.decimals)
        wire = encode(Frame.data(channel.address, tx, (trans,)))
        for _ in range(1 + self._timing.retries):
            self._link.write(wire)
            reply = self._await(channel.address, _ack_or_nak(tx))
            if reply is not None and reply.control is ControlCode.ACK:
                return True
        return False

    def _poll(self, channel: PumpChannel, line: _Line) -> None:
        address = channel.address
        self._link.write(encode(Frame.poll(address)))
        reply = self._await(address, _answer_to_poll)
        if reply is None:
            line.misses += 1
            if line.misses == _OFFLINE_AFTER:
                channel.mark_offline(self._outlet)
            return
        if line.misses >= _OFFLINE_AFTER:
            line.needs_status = True
        line.misses = 0
        if reply.control is not ControlCode.DATA:
            return
        self._link.write(encode(Frame.ack(address, reply.tx)))
        if is_repeat(reply.tx, line.rx_last):
            return
        line.rx_last = reply.tx
        channel.absorb(reply, self._outlet)

    def _await(self, address: int, accept: Callable[[Frame], bool]) -> Frame | None:
        deadline = time.monotonic() + self._timing.reply_timeout_s
        while True:
            while self._backlog:
                frame = self._backlog.popleft()
                if frame.address == address and accept(frame):
                    return frame
            left = deadline - time.monotonic()
            if left <= 0:
                self._outlet.timeout(address)
                return None
            for item in self._framer.feed(self._link.read(512, left)):
                if isinstance(item, FramingError):
                    self._outlet.framing_problem(item)
                else:
                    self._outlet.counters.bump("frames")
                    self._backlog.append(item)


def _ack_or_nak(tx: int) -> Callable[[Frame], bool]:
    def accept(frame: Frame) -> bool:
        is_ack = frame.control is ControlCode.ACK and frame.tx == tx
        return is_ack or frame.control is ControlCode.NAK

    return accept


def _answer_to_poll(frame: Frame) -> bool:
    return frame.control in (ControlCode.EOT, ControlCode.DATA)
