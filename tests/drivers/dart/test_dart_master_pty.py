"""Master mode against the pump simulator over a real pseudo-terminal, with line noise.

The driver opens the pty's slave with `drivers.links.open_serial`, exactly as the agent opens
a USB-RS485 adapter; it is cancelled and replaced mid-stream, including at a moment when a
pump has finished a sale the driver has not delivered yet.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from drivers.counters import LinkCounters
from drivers.dart.messages import PumpState
from drivers.dart.simulator import DartPumpSimulator, ScriptedSale, open_pty
from tests.drivers.dart.dart_harness import (
    Recorder,
    assert_exactly_once,
    before_and_after_a_restart,
    driving,
    running,
    stop_task,
    wait_until,
)

SCRIPT = [
    ScriptedSale(1, 1, Decimal("7.85"), volume=Decimal("10.00")),
    ScriptedSale(2, 2, Decimal("8.36"), amount=Decimal("100")),  # ends in DC1 6
    ScriptedSale(1, 2, Decimal("8.36"), volume=Decimal("3.33")),
    ScriptedSale(2, 1, Decimal("7.85"), volume=Decimal("20.5")),
]


async def _restart_when_a_sale_is_undelivered(
    sim: DartPumpSimulator, recorder: Recorder, task: asyncio.Task[None], timeout_s: float
) -> bool:
    """Cancel `task` the moment the pumps have finished more sales than were delivered."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(sim.completed) > len(recorder.keys):
            await stop_task(task)
            return True
        await asyncio.sleep(0.001)
    await stop_task(task)
    return False


def test_master_delivers_every_sale_once_through_noise_and_restarts() -> None:
    asyncio.run(_every_sale_once())


async def _every_sale_once() -> None:
    link, path = open_pty()
    sim = DartPumpSimulator(
        link, pumps=2, script=SCRIPT, random_sales=6, interval_s=0.08, fill_s=0.05,
        noise=0.1, seed=7,
    )  # fmt: skip
    recorder = Recorder()
    counters = LinkCounters()
    try:
        with running(sim.serve_forever):
            async with driving(path, "master", 2, recorder, counters) as first:
                await wait_until(lambda: len(recorder.keys) >= 2, 10, "the first sales")
                caught = await _restart_when_a_sale_is_undelivered(sim, recorder, first, 10)
            async with driving(path, "master", 2, recorder, counters):
                await wait_until(lambda: len(recorder.keys) >= 6, 15, "more sales")
            async with driving(path, "master", 2, recorder, counters):
                await wait_until(
                    lambda: sim.forecourt.finished and len(recorder.keys) >= len(sim.completed),
                    20,
                    "every sale",
                )
    finally:
        link.close()
    assert len(sim.completed) == 10
    assert_exactly_once(recorder.sales, sim.completed)
    assert caught, "the restart did not land between a completion and its delivery"
    snapshot = counters.snapshot()
    assert snapshot["framing_errors"] + snapshot["crc_errors"] > 0  # the noise was real
    # The counter counts the commits a driver saw acknowledged. A driver cancelled between
    # the application's commit and its own acknowledgement leaves that sale to the next
    # driver, which may find the pump already past it: each of the two restarts can strand
    # at most one acknowledgement per pump, and the counter never counts a sale twice.
    restarts, pumps = 2, 2
    assert len(sim.completed) - restarts * pumps <= snapshot["sales"] <= len(recorder.sales)
    assert {s.state for s in recorder.statuses} >= {"calling", "filling", "completed"}


def test_a_restarted_master_re_emits_the_last_sale_with_the_same_key() -> None:
    """The finished sale stays on the pump until the next lift; a new agent reads it again."""
    asyncio.run(_same_key_again())


async def _same_key_again() -> None:
    link, path = open_pty()
    sim = DartPumpSimulator(link, pumps=2, script=SCRIPT, interval_s=60, fill_s=0.05, seed=3)
    try:
        with running(sim.serve_forever):
            before, after = await before_and_after_a_restart(path, "master", 2)
    finally:
        link.close()
    assert after.keys == before.keys
    assert {s.sale_key: s.volume for s in after.sales} == {
        s.sale_key: s.volume for s in before.sales
    }
    assert all(s.details["seen"] == "already-completed" for s in after.sales)
    assert_exactly_once(before.sales + after.sales, sim.completed)


def test_a_sale_that_ended_while_the_agent_was_down_survives_the_next_lift() -> None:
    """Agent down during a filling; the customer hangs up and the next one lifts nozzle 2
    before the agent is back. The display still shows the sale; its price names nozzle 1."""
    asyncio.run(_down_across_a_sale())


async def _down_across_a_sale() -> None:
    link, path = open_pty()
    script = [
        ScriptedSale(1, 1, Decimal("7.85"), volume=Decimal("10.00")),
        ScriptedSale(1, 2, Decimal("8.36"), volume=Decimal("5.00")),
    ]
    sim = DartPumpSimulator(link, pumps=1, script=script, interval_s=0.05, fill_s=0.3, seed=1)
    pump = sim.forecourt.pumps[0]
    recorder = Recorder()
    try:
        with running(sim.serve_forever):
            async with driving(path, "master", 1, recorder):
                await wait_until(lambda: pump.state is PumpState.FILLING, 10, "the first filling")
            await wait_until(lambda: len(sim.completed) == 1 and pump.busy, 10, "the next lift")
            async with driving(path, "master", 1, recorder):
                await wait_until(lambda: len(recorder.keys) == 2, 10, "both sales")
    finally:
        link.close()
    assert_exactly_once(recorder.sales, sim.completed)
    first = next(s for s in recorder.sales if s.nozzle == 1)
    assert first.details["nozzle_basis"] == "price"
    assert first.details["seen"] == "already-completed"
