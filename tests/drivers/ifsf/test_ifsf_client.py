"""The FDC client against the simulator (and a scripted FDC) over loopback TCP.

Judged the way the application judges: every simulated sale arrives, once per key, with its
exact decimals and its real end time; no key ever maps to two different sales; sales made
while the client was away arrive by catch-up; the client never locks, clears or authorises.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from decimal import Decimal

import pytest

from cloud_sync.core.backoff import schedule
from drivers.events import FuelSale
from drivers.ifsf.client import FdcClient
from drivers.ifsf.header import HeaderKind
from drivers.ifsf.simulator import TILL_REQUESTS, FdcSimulator
from tests.drivers.ifsf.ifsf_support import (
    SHANGHAI,
    Collector,
    ScriptedFdc,
    fast_client,
    pushed,
    run,
    scripted_client,
    wait_until,
)

OBSERVER_REQUESTS = {
    "LogOn",
    "LogOff",
    "POS_Ready",
    "POSHeartBeat",
    "GetAvailableFuelSaleTrxs",
    "GetFuelSaleTrxDetails",
}


def expected_key(name: str, truth: dict[str, str]) -> str:
    return f"ifsf:{name}:{truth['fuelling_point']}:{truth['seq']}:{truth['end_timestamp']}"


def end_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=SHANGHAI)


def assert_matches_truth(collector: Collector, sim: FdcSimulator, name: str = "fdc") -> None:
    expected = {expected_key(name, truth): truth for truth in sim.sales}
    assert len(expected) == len(sim.sales), "the simulator made two sales with one key"
    assert not collector.conflicts
    missing = set(expected) - set(collector.by_key)
    extra = set(collector.by_key) - set(expected)
    assert not missing and not extra, f"missing {sorted(missing)[:5]} extra {sorted(extra)[:5]}"
    for key, truth in expected.items():
        sale = collector.by_key[key]
        assert (sale.fuelling_point, sale.nozzle, sale.grade) == (
            int(truth["fuelling_point"]),
            int(truth["nozzle"]),
            truth["grade"],
        )
        assert str(sale.volume) == truth["volume"]
        assert str(sale.amount) == truth["amount"]
        assert sale.unit_price == Decimal(truth["unit_price"])
        assert sale.ended_at == end_time(truth["end_timestamp"])
        assert sale.ended_at.tzinfo is not None
        assert sale.details["product_name"] == truth["product_name"]


def assert_observer_only(sim: FdcSimulator) -> None:
    assert not set(sim.requests) & TILL_REQUESTS
    assert set(sim.requests) <= OBSERVER_REQUESTS


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("header", ["plain", "md5", "md5-noid"])
def test_every_sale_once_through_noise(header: HeaderKind) -> None:
    async def body() -> None:
        async with FdcSimulator(
            header=header, passphrase="s3cret", noise=0.05, seed=11, heartbeat_s=0.2, till=0.3
        ) as sim:
            for _ in range(5):
                sim.complete_sale()  # before any client: only catch-up can bring these
            early = {expected_key("fdc", truth) for truth in sim.sales}
            collector = Collector()
            client = fast_client(sim)
            task = asyncio.create_task(client.run(collector.on_sale, collector.on_status))
            await sim.run_sales(40, 0.01)
            await wait_until(lambda: len(collector.by_key) >= len(sim.sales), 15, "every sale")
            await asyncio.sleep(0.3)  # any late duplicate
            await stop(task)
            assert_matches_truth(collector, sim)
            assert_observer_only(sim)
            assert all(collector.by_key[key].details["via"] == "catch-up" for key in early)
            assert collector.deliveries == len(sim.sales)  # one process hands each over once
            assert client.counters.sales == len(sim.sales)

    run(body())


def test_kill_and_restart_mid_stream_loses_nothing() -> None:
    async def body() -> None:
        async with FdcSimulator(
            header="md5", passphrase="pw", noise=0.03, seed=5, heartbeat_s=0.2, till=0.3
        ) as sim:
            collector = Collector()
            producer = asyncio.create_task(sim.run_sales(60, 0.02))
            first = asyncio.create_task(fast_client(sim).run(collector.on_sale))
            await wait_until(lambda: len(collector.by_key) >= 15, 10, "a quarter of the sales")
            await stop(first)  # the agent stops; the pumps do not
            missed_from = len(sim.sales)
            await asyncio.sleep(0.3)
            gap = [expected_key("fdc", t) for t in sim.sales[missed_from:]]
            second = asyncio.create_task(fast_client(sim).run(collector.on_sale))
            await producer
            await wait_until(lambda: len(collector.by_key) >= len(sim.sales), 15, "every sale")
            await stop(second)
            assert_matches_truth(collector, sim)
            assert_observer_only(sim)
            assert gap
            assert all(collector.by_key[key].details["via"] == "catch-up" for key in gap)
            assert sim.requests["LogOff"] >= 1

    run(body())


def test_logs_off_on_a_clean_stop_and_heartbeats_per_version() -> None:
    async def body() -> None:
        for version, beat in (("01.00", "POS_Ready"), ("00.07", "POSHeartBeat")):
            async with FdcSimulator(header="md5-noid", passphrase="pw", heartbeat_s=0.1) as sim:
                client = fast_client(sim, interface_version=version, heartbeat_s=0.05)
                task = asyncio.create_task(client.run(Collector().on_sale))
                await wait_until(lambda b=beat: sim.requests[b] >= 3, 5, f"{beat} heartbeats")
                await stop(task)
                await wait_until(lambda: sim.requests["LogOff"] == 1, 2, "LogOff")
                assert sim.logons == 1
                assert set(sim.requests) == {"LogOn", "GetAvailableFuelSaleTrxs", beat, "LogOff"}

    run(body())


def test_silence_drops_the_link_and_reconnects() -> None:
    async def body() -> None:
        async with FdcSimulator(heartbeat_s=0.1) as sim:
            collector = Collector()
            client = fast_client(sim, silence_timeout_s=0.5)
            task = asyncio.create_task(client.run(collector.on_sale, collector.on_status))
            await wait_until(lambda: client.logged_on, 5, "log-on")
            sim.complete_sale(fuelling_point=1)
            await wait_until(lambda: len(collector.by_key) == 1, 5, "the first sale")
            sim.silent = True  # a hung FDC: connected, saying nothing
            await wait_until(lambda: client.counters.timeouts >= 1, 5, "the silence timeout")
            sim.silent = False
            sim.complete_sale(fuelling_point=2)
            await wait_until(lambda: len(collector.by_key) == 2, 5, "the sale after reconnecting")
            await stop(task)
            assert client.counters.reconnects >= 1
            assert (1, "offline") in [(s.fuelling_point, s.state) for s in collector.statuses]
            assert_matches_truth(collector, sim)

    run(body())


def test_wrong_passphrase_never_logs_on_and_backs_off() -> None:
    async def body() -> None:
        async with FdcSimulator(header="md5", passphrase="right") as sim:
            sim.complete_sale()
            client = fast_client(sim, passphrase="wrong", request_timeout_s=0.3)
            task = asyncio.create_task(client.run(Collector().on_sale))
            await wait_until(lambda: client.counters.reconnects >= 2, 10, "reconnect attempts")
            await stop(task)
            assert sim.logons == 0
            assert sim.rejected_clients >= 1
            assert client.counters.sales == 0

    run(body())


def test_no_fdc_listening_is_retried_with_backoff() -> None:
    async def body() -> None:
        async with FdcSimulator() as sim:
            port = sim.port
        client = fast_client(sim, port=port, reconnect_delay=schedule(base_s=0.05, cap_s=0.1))
        task = asyncio.create_task(client.run(Collector().on_sale))
        await wait_until(lambda: client.counters.reconnects >= 3, 5, "reconnects")
        await stop(task)

    run(body())


def test_sequence_numbers_wrap_without_collisions() -> None:
    async def body() -> None:
        async with FdcSimulator(pumps=1, seq_modulus=4, timestamps="mixed", seed=3) as sim:
            collector = Collector()
            task = asyncio.create_task(fast_client(sim).run(collector.on_sale))
            await wait_until(lambda: sim.connected == 1, 5, "log-on")
            for _ in range(12):
                sim.complete_sale()
                await asyncio.sleep(0.01)
            await wait_until(lambda: len(collector.by_key) == 12, 10, "twelve sales")
            await stop(task)
            assert len({truth["seq"] for truth in sim.sales}) == 4
            assert_matches_truth(collector, sim)

    run(body())


def test_pump_states_reach_the_board() -> None:
    async def body() -> None:
        async with FdcSimulator() as sim:
            collector = Collector()
            task = asyncio.create_task(fast_client(sim).run(collector.on_sale, collector.on_status))
            await wait_until(lambda: sim.connected == 1, 5, "log-on")
            sim.complete_sale(fuelling_point=2, nozzle=3)
            await wait_until(lambda: len(collector.statuses) >= 2, 5, "two states")
            await stop(task)
            states = [(s.fuelling_point, s.state, s.nozzle) for s in collector.statuses[:2]]
            assert states == [(2, "filling", 3), (2, "idle", None)]

    run(body())


def test_refused_log_on_is_retried() -> None:
    async def body() -> None:
        fdc = ScriptedFdc(logon="Failure")
        await fdc.start()
        client = scripted_client(fdc)
        task = asyncio.create_task(client.run(Collector().on_sale))
        await wait_until(lambda: client.counters.reconnects >= 2, 5, "retries")
        await stop(task)
        await fdc.close()
        assert not client.logged_on

    run(body())


def test_catch_up_keeps_a_heartbeat_less_fdc_alive() -> None:
    """An FDC that answers requests but never sends heartbeats is not taken for dead."""

    async def body() -> None:
        fdc = ScriptedFdc()
        await fdc.start()
        client = FdcClient(
            name="fdc",
            host="127.0.0.1",
            port=fdc.port,
            products={},
            zone=SHANGHAI,
            clock=lambda: datetime(2026, 11, 23, 12, 0, tzinfo=SHANGHAI),
            silence_timeout_s=0.6,
            catch_up_interval_s=0.2,
            request_timeout_s=0.3,
            reconnect_delay=schedule(base_s=0.1, cap_s=0.2),
        )
        task = asyncio.create_task(client.run(Collector().on_sale))
        await wait_until(lambda: client.logged_on, 5, "log-on")
        await asyncio.sleep(1.5)
        await stop(task)
        await fdc.close()
        assert client.counters.timeouts == 0
        assert client.counters.reconnects == 0

    run(body())


def test_only_finalised_well_formed_sales_are_emitted() -> None:
    async def body() -> None:
        fdc = ScriptedFdc(
            echo_ids=False,  # answers matched by RequestType when RequestID is not echoed
            pushes=(
                pushed("Undefined", seq="1"),
                pushed("Payable", seq="2", volume="0.00", amount="0.00"),
                pushed("Payable", seq="3", amount="7,50"),
                pushed("Payable", seq="4", end="yesterday"),
                pushed("Payable", seq="5"),
                pushed("Locked", seq="5"),
                pushed("Cleared", seq="5"),
            ),
        )
        await fdc.start()
        collector = Collector()
        client = scripted_client(fdc)
        task = asyncio.create_task(client.run(collector.on_sale))
        await wait_until(lambda: client.counters.malformed >= 1, 5, "the malformed sale")
        await wait_until(lambda: len(collector.by_key) >= 2, 5, "the good sales")
        await asyncio.sleep(0.2)
        await stop(task)
        await fdc.close()
        # An unreadable EndTimeStamp costs the sale its end time, never the sale itself.
        assert sorted(collector.by_key) == [
            "ifsf:fdc:1:4:yesterday",
            "ifsf:fdc:1:5:2026-11-23T10:15:30",
        ]
        assert collector.deliveries == 2
        unreadable = collector.by_key["ifsf:fdc:1:4:yesterday"]
        assert "unreadable EndTimeStamp" in unreadable.details["end_time_source"]

    run(body())


def test_a_failing_sink_ends_run_and_the_sale_is_offered_again() -> None:
    async def body() -> None:
        async with FdcSimulator() as sim:
            sim.complete_sale()

            async def broken(sale: FuelSale) -> None:
                raise RuntimeError("disk full")

            with pytest.raises(RuntimeError, match="disk full"):
                await fast_client(sim).run(broken)
            collector = Collector()
            task = asyncio.create_task(fast_client(sim).run(collector.on_sale))
            await wait_until(lambda: len(collector.by_key) == 1, 5, "the sale again")
            await stop(task)
            assert_matches_truth(collector, sim)

    run(body())


def test_settings_are_checked() -> None:
    common = {
        "name": "fdc",
        "host": "h",
        "port": 1,
        "products": {},
        "zone": SHANGHAI,
        "clock": datetime.now,
        "reconnect_delay": schedule(base_s=0.1, cap_s=0.2),
    }
    with pytest.raises(ValueError, match="header"):
        FdcClient(header="sha1", **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="interface_version"):
        FdcClient(interface_version="02.00", **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        FdcClient(heartbeat_s=0, **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name"):
        FdcClient(**{**common, "name": ""})  # type: ignore[arg-type]
