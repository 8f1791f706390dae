"""Listener mode: another controller owns the bus; the agent never writes, only follows.

The same TRANS byte means different things each way (01 01 05 is "reset" to a pump and
"filling completed" from it), and a merged RS-485 capture carries no direction. A data block
is attributed by its content when that is decisive (DC2 is 8 bytes, DC101 16, CD101 1, CD5 a
multiple of 3), otherwise by the conversation: the block right after a POLL to the same
address is the pump's answer; any other block is the controller's. After a framing error the
conversation is uncertain, and an ambiguous block is left out rather than guessed.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from enum import Enum

from ..errors import FramingError, MalformedMessage
from ..links import ByteLink
from .channel import Outlet, PumpChannel
from .framer import ControlCode, DartFramer, Frame, is_repeat
from .messages import TRANS_2, TRANS_4, TRANS_5, TRANS_101, CD101RequestTotals, decode_to_pump

__all__ = ["Direction", "SnifferSession", "direction_by_content"]

_PUMP_ONLY = (0x07, 0x09)  # DC7 pump parameters, DC9 identity
_POLLS = (ControlCode.POLL, ControlCode.ACKPOLL)


class Direction(Enum):
    TO_PUMP = "to-pump"
    FROM_PUMP = "from-pump"


def direction_by_content(transactions: Sequence[tuple[int, bytes]]) -> Direction | None:
    """The direction a block's transactions prove on their own, or None when they do not."""
    for trans, data in transactions:
        if trans == TRANS_101:
            return Direction.TO_PUMP if len(data) == 1 else Direction.FROM_PUMP
        if trans == TRANS_2 and len(data) == 8 and not _is_nozzle_list(data):
            return Direction.FROM_PUMP
        if trans == TRANS_5:
            return Direction.TO_PUMP if data and len(data) % 3 == 0 else Direction.FROM_PUMP
        if trans == TRANS_4:
            return Direction.TO_PUMP
        if trans in _PUMP_ONLY:
            return Direction.FROM_PUMP
    return None


def _is_nozzle_list(data: bytes) -> bool:
    """CD2 with all eight nozzles allowed would also be 8 bytes: distinct numbers 1-8."""
    return sorted(data) == list(range(1, 9))


class SnifferSession:
    def __init__(
        self,
        link: ByteLink,
        channels: Sequence[PumpChannel],
        outlet: Outlet,
        *,
        totals_wait_s: float,
    ) -> None:
        self._link = link
        self._channels = {channel.address: channel for channel in channels}
        self._outlet = outlet
        self._totals_wait_s = totals_wait_s
        self._framer = DartFramer()
        self._previous: Frame | None = None
        self._disturbed = True  # nothing heard yet: the conversation is unknown
        self._pump_rx: dict[int, int] = {}

    def run(self, stop: threading.Event) -> None:
        """Listen until `stop` is set; a LinkError propagates to the caller, who reopens."""
        while not stop.is_set():
            for item in self._framer.feed(self._link.read(512, 0.1)):
                self.hear(item)
            self._expire_totals()

    def hear(self, item: Frame | FramingError) -> None:
        """Take the next thing heard on the bus: a frame, or the framer's complaint."""
        if isinstance(item, FramingError):
            self._outlet.framing_problem(item)
            self._disturbed = True
            return
        self._outlet.counters.bump("frames")
        self._follow(item)

    def attribute(self, frame: Frame) -> Direction | None:
        """Who sent this data block, given what came just before it."""
        by_content = direction_by_content(frame.transactions)
        if by_content is not None or self._disturbed:
            return by_content
        previous = self._previous
        answers_poll = previous is not None and previous.control in _POLLS
        if answers_poll and previous is not None and previous.address == frame.address:
            return Direction.FROM_PUMP
        return Direction.TO_PUMP

    def _follow(self, frame: Frame) -> None:
        direction = self.attribute(frame) if frame.is_data else None
        self._previous, self._disturbed = frame, False
        channel = self._channels.get(frame.address)
        if channel is None or direction is None:
            return
        if direction is Direction.TO_PUMP:
            self._note_commands(channel, frame)
            return
        if is_repeat(frame.tx, self._pump_rx.get(frame.address)):
            return
        self._pump_rx[frame.address] = frame.tx
        channel.absorb(frame, self._outlet)

    def _note_commands(self, channel: PumpChannel, frame: Frame) -> None:
        for trans, data in frame.transactions:
            try:
                command = decode_to_pump(trans, data, channel.config.decimals)
            except MalformedMessage:
                continue  # a command we cannot read changes nothing we track
            if isinstance(command, CD101RequestTotals):
                channel.tracker.totals_requested(command.counter)

    def _expire_totals(self) -> None:
        """A controller that never asks for totals: let waiting sales out with a fingerprint."""
        for channel in self._channels.values():
            if channel.tracker.sale_open and channel.totals_overdue(self._totals_wait_s):
                channel.tracker.give_up_totals()
            channel.publish(self._outlet)
