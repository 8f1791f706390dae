"""The driver under bad input, line faults and a failing application: counted, never fatal."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable
from decimal import Decimal

import pytest

from cloud_sync.core.backoff import schedule
from drivers.counters import LinkCounters
from drivers.dart.crc import crc_bytes
from drivers.dart.driver import DartDriver
from drivers.dart.framer import ControlCode, DartFramer, Frame, encode
from drivers.dart.messages import PumpCommand
from drivers.errors import LinkError
from drivers.events import FuelSale
from drivers.links import ByteLink, PipeLink
from tests.drivers.dart.dart_harness import Recorder, now, pump_configs, stop_task, wait_until

A = 0x50


def data(tx: int, *transactions: str) -> bytes:
    return encode(
        Frame.data(A, tx, tuple((int(t[:2], 16), bytes.fromhex(t[2:])) for t in transactions))
    )


def crc_valid(raw: str) -> bytes:
    """A block with a correct CRC around whatever content (bad BCD, unknown status)."""
    body = bytes.fromhex(raw)
    return body + crc_bytes(body) + b"\x03\xfa"


POLL = encode(Frame.poll(A))
COMPLETED = data(1, "01 05", "02 0000100000007850", "03 00078501")  # 10.00 L, 78.50, nozzle 1
ASK_TOTALS = data(1, "65 01")
TOTALS = data(2, "65 01 0012346678 0012346678 0000000000")  # 123466.78 L on nozzle 1
GOOD_CONVERSATION = [
    POLL, COMPLETED, encode(Frame.ack(A, 1)),
    ASK_TOTALS, encode(Frame.ack(A, 1)),
    POLL, TOTALS, encode(Frame.ack(A, 2)),
]  # fmt: skip


FAST = schedule(base_s=0.05, cap_s=0.2)


def sniffer(link: ByteLink, counters: LinkCounters) -> DartDriver:
    return DartDriver(
        name="bus1", link_factory=lambda: link, pumps=pump_configs(1), mode="sniffer",
        clock=now, counters=counters, reconnect_delay=FAST,
    )  # fmt: skip


def test_bad_input_is_counted_and_the_next_good_sale_still_arrives() -> None:
    asyncio.run(_bad_then_good())


async def _bad_then_good() -> None:
    ours, theirs = PipeLink.pair()
    counters = LinkCounters()
    recorder = Recorder()
    task = asyncio.create_task(sniffer(theirs, counters).run(recorder.on_sale))
    rng = random.Random(4)
    bad_crc = bytearray(COMPLETED)
    bad_crc[-4] ^= 0xFF
    junk = [
        bytes(rng.randrange(256) for _ in range(3000)) + b"\xfa",  # line noise, 0xFA and all
        bytes(bad_crc),  # a completed sale with a broken CRC: must not become a sale
        COMPLETED[:9],  # cut short
        bytes([A, 0x31]) + bytes(range(0x20, 0x40)) * 12,  # never ends: oversized
        POLL + crc_valid("50 32 01 01 05 02 08 00 00 10 0A 00 00 78 50"),  # bad BCD in DC2
        POLL + crc_valid("50 33 01 01 03"),  # DC1 status 3 does not exist
        b"\xfa",
    ]
    for chunk in junk:
        ours.write(chunk)
    await wait_until(lambda: counters.malformed >= 2, 5, "the malformed blocks")
    assert recorder.sales == []
    for frame in GOOD_CONVERSATION:
        ours.write(frame)
    await wait_until(lambda: len(recorder.sales) == 1, 5, "the good sale")
    await asyncio.sleep(0.2)
    await stop_task(task)
    [sale] = recorder.sales
    assert sale.sale_key == "dart:bus1:50:1:123466.78"
    assert (sale.volume, sale.amount, sale.unit_price) == (
        Decimal("10.00"),
        Decimal("78.50"),
        Decimal("7.85"),
    )
    snapshot = counters.snapshot()
    assert snapshot["crc_errors"] >= 1
    assert snapshot["framing_errors"] >= 3
    assert snapshot["malformed"] == 2
    assert snapshot["resyncs"] == snapshot["crc_errors"] + snapshot["framing_errors"]
    assert snapshot["sales"] == 1 and snapshot["reconnects"] == 0


def test_a_failing_sink_gets_the_sale_again_with_the_same_key() -> None:
    asyncio.run(_failing_sink())


async def _failing_sink() -> None:
    ours, theirs = PipeLink.pair()
    counters = LinkCounters()
    calls: list[FuelSale] = []

    async def on_sale(sale: FuelSale) -> None:
        calls.append(sale)
        if len(calls) == 1:
            raise RuntimeError("store is busy")

    task = asyncio.create_task(sniffer(theirs, counters).run(on_sale))
    for frame in GOOD_CONVERSATION:
        ours.write(frame)
    await wait_until(lambda: len(calls) == 2, 5, "the retried delivery")
    await asyncio.sleep(0.3)
    await stop_task(task)
    assert len(calls) == 2 and calls[0] == calls[1]
    assert counters.sales == 1


class FakePump:
    """A pump at 0x50 that answers from a script, to drive the master's line rules."""

    def __init__(self, link: ByteLink, answer: Callable[[Frame], bytes]) -> None:
        self.link = link
        self.answer = answer
        self.heard: list[Frame] = []
        self.wire: list[bytes] = []

    def run(self, stop: threading.Event) -> None:
        framer = DartFramer()
        while not stop.is_set():
            try:
                chunk = self.link.read(256, 0.02)
            except LinkError:
                return
            for item in framer.feed(chunk):
                if isinstance(item, Frame):
                    self.heard.append(item)
                    self.wire.append(encode(item))
                    reply = self.answer(item)
                    if reply:
                        self.link.write(reply)


def test_master_retransmits_on_nak_and_skips_a_repeated_block() -> None:
    asyncio.run(_line_rules())


async def _line_rules() -> None:
    ours, theirs = PipeLink.pair()
    polls = 0
    naked = False

    def answer(frame: Frame) -> bytes:
        nonlocal polls, naked
        if frame.control is ControlCode.DATA:
            if not naked:
                naked = True
                return encode(Frame.nak(A, frame.tx))
            return encode(Frame.ack(A, frame.tx))
        if frame.control is not ControlCode.POLL:
            return b""
        polls += 1
        if polls == 1:
            return data(1, "01 01", "03 00078501")  # idle, nozzle 1 in
        if polls == 2:
            return data(1, "01 04")  # the same TX# again: a repeat, whatever it says
        return encode(Frame.eot(A))

    pump = FakePump(theirs, answer)
    stop = threading.Event()
    thread = threading.Thread(target=pump.run, args=(stop,))
    thread.start()
    recorder = Recorder()
    driver = DartDriver(
        name="bus1", link_factory=lambda: ours, pumps=pump_configs(1), mode="master",
        clock=now, reply_timeout_s=0.2, cycle_s=0.01, reconnect_delay=FAST,
    )  # fmt: skip
    task = asyncio.create_task(driver.run(recorder.on_sale, recorder.on_status))
    await wait_until(lambda: polls >= 4, 5, "a few polls")
    await stop_task(task)
    stop.set()
    thread.join(5)
    commands = [w for f, w in zip(pump.heard, pump.wire, strict=True) if f.is_data]
    assert commands[0] == commands[1] == data(0, "01 00")  # RETURN_STATUS, resent as it was
    acks = [f.tx for f in pump.heard if f.control is ControlCode.ACK]
    assert acks[:2] == [1, 1]  # the repeat is acknowledged too
    assert [s.state for s in recorder.statuses] == ["idle"]  # ... but not applied


def test_the_link_is_reopened_with_backoff() -> None:
    asyncio.run(_reopen())


async def _reopen() -> None:
    opened: list[PipeLink] = []
    attempts = 0

    def factory() -> ByteLink:
        nonlocal attempts
        attempts += 1
        if attempts <= 2:
            raise LinkError("no such device")
        ours, theirs = PipeLink.pair()
        opened.append(theirs)
        return ours

    asked: list[int] = []

    def delay(failures: int) -> float:
        asked.append(failures)
        return 0.01 * 2.0 ** (failures - 1)

    counters = LinkCounters()
    driver = DartDriver(
        name="bus1", link_factory=factory, pumps=pump_configs(1), mode="sniffer", clock=now,
        counters=counters, reconnect_delay=delay,
    )  # fmt: skip
    started = time.monotonic()
    task = asyncio.create_task(driver.run(Recorder().on_sale))
    await wait_until(lambda: len(opened) == 1, 5, "the link to open")
    opened[0].close()  # the adapter is unplugged
    await wait_until(lambda: len(opened) == 2, 5, "the link to reopen")
    await stop_task(task)
    assert attempts == 4
    assert counters.reconnects == 3
    assert asked == [1, 2, 3]  # no frame on the first link: still failing in a row
    assert time.monotonic() - started >= 0.01 + 0.02 + 0.04


def test_master_falls_back_to_a_fingerprint_when_totals_never_come() -> None:
    """A pump that acknowledges CD101 but never answers it; and a second pump that is dead."""
    asyncio.run(_no_totals())


async def _no_totals() -> None:
    ours, theirs = PipeLink.pair()
    asked: list[int] = []
    sent = False

    def answer(frame: Frame) -> bytes:
        nonlocal sent
        if frame.address != A:
            return b""  # 0x51 never answers
        if frame.control is ControlCode.DATA:
            if frame.transactions[0][0] == 0x65:
                asked.append(frame.tx)
            return encode(Frame.ack(A, frame.tx))
        if frame.control is ControlCode.POLL and not sent:
            sent = True
            return COMPLETED
        return encode(Frame.eot(A)) if frame.control is ControlCode.POLL else b""

    pump = FakePump(theirs, answer)
    stop = threading.Event()
    thread = threading.Thread(target=pump.run, args=(stop,))
    thread.start()
    recorder = Recorder()
    counters = LinkCounters()
    driver = DartDriver(
        name="bus1", link_factory=lambda: ours, pumps=pump_configs(2), mode="master",
        clock=now, counters=counters, reply_timeout_s=0.05, cycle_s=0.01, reconnect_delay=FAST,
    )  # fmt: skip
    task = asyncio.create_task(driver.run(recorder.on_sale, recorder.on_status))
    await wait_until(lambda: len(recorder.sales) == 1, 5, "the fingerprinted sale")
    await stop_task(task)
    stop.set()
    thread.join(5)
    [sale] = recorder.sales
    assert len(asked) == 3
    assert sale.details["key_basis"] == "fingerprint"
    assert sale.sale_key.startswith("dart:bus1:50:1:fp:10.00:78.50:")
    assert any(s.fuelling_point == 2 and s.state == "offline" for s in recorder.statuses)
    assert counters.timeouts >= 3


def test_a_stuck_store_never_stops_the_bus_and_the_pump_keeps_its_sale_until_committed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The bus thread hands the sale over and keeps polling; the commit takes its time."""
    with caplog.at_level(logging.WARNING, logger="drivers.dart"):
        asyncio.run(_stuck_store())
    assert "not committed after" in caplog.text


async def _stuck_store() -> None:
    ours, theirs = PipeLink.pair()
    polls = 0
    asked_totals = sent_totals = False
    commands: list[int] = []

    def answer(frame: Frame) -> bytes:
        nonlocal polls, asked_totals, sent_totals
        if frame.control is ControlCode.DATA:
            trans, payload = frame.transactions[0]
            if trans == 0x65:
                asked_totals = True
            elif trans == 0x01:
                commands.append(payload[0])
            return encode(Frame.ack(A, frame.tx))
        if frame.control is not ControlCode.POLL:
            return b""
        polls += 1
        if polls == 1:
            return COMPLETED
        if asked_totals and not sent_totals:
            sent_totals = True
            return TOTALS
        if sent_totals and polls % 20 == 0:  # the next customer lifts the nozzle
            return data(3 + polls // 20 % 2, "03 00078511")
        return encode(Frame.eot(A))

    pump = FakePump(theirs, answer)
    stop = threading.Event()
    thread = threading.Thread(target=pump.run, args=(stop,))
    thread.start()
    release = asyncio.Event()
    committed: list[FuelSale] = []

    async def on_sale(sale: FuelSale) -> None:
        await release.wait()  # the store is stuck
        committed.append(sale)

    counters = LinkCounters()
    driver = DartDriver(
        name="bus1", link_factory=lambda: ours, pumps=pump_configs(1), mode="master",
        clock=now, counters=counters, reply_timeout_s=0.1, cycle_s=0.01, reconnect_delay=FAST,
        commit_timeout_s=0.2,
    )  # fmt: skip
    task = asyncio.create_task(driver.run(on_sale))
    await wait_until(lambda: sent_totals, 5, "the totals")
    polls_then = polls
    await wait_until(lambda: counters.commit_timeouts >= 2, 5, "two commit timeouts")
    assert polls > polls_then + 10  # the bus kept going while the store was stuck
    assert committed == [] and counters.sales == 0
    assert PumpCommand.RESET not in commands  # the pump still shows the uncommitted sale
    release.set()
    await wait_until(lambda: PumpCommand.RESET in commands, 5, "the reset after the commit")
    await stop_task(task)
    stop.set()
    thread.join(5)
    [sale] = committed
    assert sale.sale_key == "dart:bus1:50:1:123466.78"
    assert counters.sales == 1 and counters.commit_retries == 0


def test_a_sale_still_in_hand_over_when_the_driver_stops_is_not_acknowledged() -> None:
    asyncio.run(_stop_while_committing())


async def _stop_while_committing() -> None:
    ours, theirs = PipeLink.pair()
    counters = LinkCounters()
    started = asyncio.Event()

    async def on_sale(sale: FuelSale) -> None:
        started.set()
        await asyncio.sleep(60)  # the commit never returns before the stop

    task = asyncio.create_task(sniffer(theirs, counters).run(on_sale))
    for frame in GOOD_CONVERSATION:
        ours.write(frame)
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(stop_task(task), 5)  # the stop does not wait for the store
    assert counters.sales == 0  # never acknowledged: the pump shows it to the next run
