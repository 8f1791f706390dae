"""Who sent a data block on a merged bus: by content where decisive, else by conversation."""

from __future__ import annotations

import logging
from concurrent.futures import Future
from datetime import UTC, datetime

from drivers.counters import LinkCounters
from drivers.dart.channel import Outlet, PumpChannel
from drivers.dart.config import DartPumpConfig
from drivers.dart.framer import Frame
from drivers.dart.sniffer import Direction, SnifferSession, direction_by_content
from drivers.errors import TruncatedFrame
from drivers.events import FuelSale
from drivers.links import PipeLink

TO, FROM = Direction.TO_PUMP, Direction.FROM_PUMP


def test_content_that_decides() -> None:
    assert direction_by_content([(0x65, b"\x01")]) is TO  # CD101
    assert direction_by_content([(0x65, bytes(16))]) is FROM  # DC101
    assert direction_by_content([(0x02, bytes(8))]) is FROM  # DC2
    assert direction_by_content([(0x02, bytes(range(1, 9)))]) is None  # CD2, all 8 nozzles
    assert direction_by_content([(0x05, bytes(3))]) is TO  # CD5, one price
    assert direction_by_content([(0x05, b"\x06")]) is FROM  # DC5 alarm
    assert direction_by_content([(0x04, bytes(4))]) is TO  # CD4 preset amount
    assert direction_by_content([(0x01, b"\x05")]) is None  # reset, or filling completed
    assert direction_by_content([(0x01, b"\x05"), (0x03, bytes(4))]) is None


def _committed(sale: FuelSale) -> Future[None]:
    done: Future[None] = Future()
    done.set_result(None)
    return done


def _session() -> SnifferSession:
    ours, _ = PipeLink.pair()
    outlet = Outlet(
        link="bus1",
        mode="sniffer",
        clock=lambda: datetime.now(UTC),
        counters=LinkCounters(),
        logger=logging.getLogger("test"),
        hand_over_sale=_committed,
        deliver_status=lambda status: None,
        retry_delay=lambda failures: 0.0,
    )
    channel = PumpChannel(DartPumpConfig(0x51, 1, {1: "92"}))
    return SnifferSession(ours, [channel], outlet, totals_wait_s=30)


def test_conversation_decides_ambiguous_blocks() -> None:
    session = _session()
    reset_or_done = Frame.data(0x51, 3, ((0x01, b"\x05"),))
    assert session.attribute(reset_or_done) is None  # nothing heard yet
    session.hear(Frame.poll(0x51))
    assert session.attribute(reset_or_done) is FROM  # the answer to a poll
    session.hear(Frame.ack(0x51, 3))
    assert session.attribute(reset_or_done) is TO  # sent on the controller's own turn
    session.hear(Frame.poll(0x50))
    assert session.attribute(reset_or_done) is TO  # a poll to another pump


def test_after_a_framing_error_ambiguous_blocks_are_left_out() -> None:
    session = _session()
    session.hear(Frame.poll(0x51))
    session.hear(TruncatedFrame("51 30 01"))  # noise between poll and answer
    assert session.attribute(Frame.data(0x51, 3, ((0x01, b"\x05"),))) is None
    assert session.attribute(Frame.data(0x51, 3, ((0x02, bytes(8)),))) is FROM
