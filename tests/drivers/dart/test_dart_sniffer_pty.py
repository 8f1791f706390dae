"""Sniffer mode against a played bus (controller and pumps) over a real pseudo-terminal.

The driver only listens: it must attribute every block to the controller or a pump from the
merged byte stream, through noise between frames, lost answers and repeated blocks, and give
every sale exactly one key, also across a restart of the listener.
"""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal

from drivers.counters import LinkCounters
from drivers.dart.simulator import DartBusPlayer, ScriptedSale, open_pty, serve
from drivers.links import PipeLink
from tests.drivers.dart.dart_harness import (
    Recorder,
    assert_exactly_once,
    before_and_after_a_restart,
    driving,
    running,
    wait_until,
)

SCRIPT = [
    ScriptedSale(1, 2, Decimal("8.36"), volume=Decimal("25.00")),
    ScriptedSale(2, 1, Decimal("7.85"), amount=Decimal("200")),
    ScriptedSale(3, 1, Decimal("7.85"), volume=Decimal("0.01")),
]


def test_sniffer_delivers_every_sale_once_through_noise_and_a_restart() -> None:
    asyncio.run(_every_sale_once())


async def _every_sale_once() -> None:
    link, path = open_pty()
    player = DartBusPlayer(
        link, pumps=3, script=SCRIPT, random_sales=6, interval_s=0.3, fill_s=0.08,
        noise=0.1, seed=5, cycle_s=0.003,
        wait_for_listener=False,  # the bus goes on while the listener restarts
    )  # fmt: skip
    recorder = Recorder()
    counters = LinkCounters()
    try:
        with running(player.play):
            async with driving(path, "sniffer", 3, recorder, counters):
                await wait_until(lambda: len(recorder.keys) >= 3, 15, "the first sales")
            async with driving(path, "sniffer", 3, recorder, counters):
                await wait_until(
                    lambda: (
                        player.forecourt.finished and len(recorder.keys) >= len(player.completed)
                    ),
                    20,
                    "every sale",
                )
    finally:
        link.close()
    assert len(player.completed) == 9
    assert_exactly_once(recorder.sales, player.completed)
    snapshot = counters.snapshot()
    assert snapshot["framing_errors"] + snapshot["crc_errors"] > 0
    assert snapshot["reconnects"] == 0
    assert {s.state for s in recorder.statuses} >= {"filling", "completed"}


def test_a_restarted_sniffer_finds_the_waiting_sales_again() -> None:
    asyncio.run(_same_keys_again())


async def _same_keys_again() -> None:
    link, path = open_pty()
    player = DartBusPlayer(link, pumps=2, script=SCRIPT[:2], interval_s=60, fill_s=0.05, seed=2)
    try:
        with running(player.play):
            before, after = await before_and_after_a_restart(path, "sniffer", 2)
    finally:
        link.close()
    assert after.keys == before.keys
    assert_exactly_once(before.sales + after.sales, player.completed)


def test_serve_plays_a_bus_and_returns_the_ground_truth() -> None:
    """`serve` as the CLI calls it: a bus, random sales, a callback per completed sale."""
    ours, theirs = PipeLink.pair()
    stop = threading.Event()
    reported: list[dict[str, str]] = []
    result: list[dict[str, str]] = []

    def run() -> None:
        result.extend(
            serve(
                theirs,
                pumps=2,
                mode="bus",
                sales=3,
                interval_s=0.05,
                noise=0.0,
                seed=9,
                stop=stop,
                on_sale_completed=reported.append,
            )
        )

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 10
    while len(reported) < 3 and time.monotonic() < deadline:
        ours.read(4096, 0.05)  # drain the bus like a listener would
    stop.set()
    thread.join(5)
    assert len(reported) == 3 and result == reported
    assert set(reported[0]) == {
        "fuelling_point",
        "nozzle",
        "grade",
        "volume",
        "amount",
        "unit_price",
    }
    for sale in reported:
        assert Decimal(sale["volume"]).as_tuple().exponent == -2
        assert Decimal(sale["amount"]).as_tuple().exponent == -2
        assert sale["grade"] == {"1": "92", "2": "95"}[sale["nozzle"]]


def test_the_bus_waits_for_a_listener_on_a_pty() -> None:
    """Started before the agent (the CLI's way), the played bus sells nothing unheard."""
    asyncio.run(_waits())


async def _waits() -> None:
    link, path = open_pty()
    player = DartBusPlayer(link, pumps=1, random_sales=2, interval_s=0.01, fill_s=0.01, seed=4)
    recorder = Recorder()
    try:
        with running(player.play):
            await asyncio.sleep(0.3)
            assert player.completed == []
            async with driving(path, "sniffer", 1, recorder):
                await wait_until(lambda: len(recorder.keys) == 2, 10, "both sales")
    finally:
        link.close()
    assert_exactly_once(recorder.sales, player.completed)
