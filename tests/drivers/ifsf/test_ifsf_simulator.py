"""The FDC simulator as a field engineer runs it: `serve` in a thread, ground truth, noise."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

import pytest

from cloud_sync.core.backoff import schedule
from drivers.errors import MalformedMessage
from drivers.ifsf.client import FdcClient
from drivers.ifsf.framer import IfsfFramer
from drivers.ifsf.header import HEADER_KINDS, HeaderKind
from drivers.ifsf.messages import parse_message
from drivers.ifsf.simsales import NOISE_KINDS, SaleBook, damage
from drivers.ifsf.simulator import DEFAULT_PRODUCTS, FdcSimulator, serve
from tests.drivers.ifsf.ifsf_support import (
    PRODUCTS,
    SHANGHAI,
    SMARTSCREEN_FUEL_SALE_TRX,
    Collector,
    now,
    run,
    wait_until,
)

TRUTH_FIELDS = {
    "fuelling_point",
    "nozzle",
    "product_no",
    "grade",
    "product_name",
    "volume",
    "amount",
    "unit_price",
    "seq",
    "start_timestamp",
    "end_timestamp",
}


def book(**overrides: object) -> SaleBook:
    options: dict[str, object] = {
        "pumps": 2,
        "products": DEFAULT_PRODUCTS,
        "seed": 1,
        "seq_modulus": 10_000,
        "buffer_size": 100,
        "zone": SHANGHAI,
        "timestamps": "naive",
        "till": 0.0,
        "clock": lambda: datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI),
    }
    options.update(overrides)
    return SaleBook(**options)  # type: ignore[arg-type]


def test_serve_runs_until_stopped_and_reports_every_sale() -> None:
    stop = threading.Event()
    listening = threading.Event()
    bound: list[int] = []
    reported: list[dict[str, str]] = []

    def on_listening(port: int) -> None:
        bound.append(port)
        listening.set()

    thread = threading.Thread(
        target=serve,
        args=("127.0.0.1", 0),
        kwargs={
            "pumps": 2,
            "sales": 6,
            "interval_s": 0.01,
            "noise": 0.0,
            "seed": 7,
            "header": "md5",
            "passphrase": "pw",
            "stop": stop,
            "on_sale_completed": reported.append,
            "on_listening": on_listening,
        },
        daemon=True,
    )
    thread.start()
    assert listening.wait(5)
    port = bound[0]

    async def client_side() -> Collector:
        collector = Collector()
        client = FdcClient(
            name="fdc",
            host="127.0.0.1",
            port=port,
            header="md5",
            passphrase="pw",
            products=PRODUCTS,
            zone=SHANGHAI,
            clock=now,
            reconnect_delay=schedule(base_s=0.05, cap_s=0.1),
            request_timeout_s=0.5,
        )
        task = asyncio.create_task(client.run(collector.on_sale))
        await wait_until(lambda: len(collector.by_key) == 6, 10, "six sales")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return collector

    try:
        collector = run(client_side())
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert len(reported) == 6
    for truth in reported:
        assert set(truth) == TRUTH_FIELDS
        assert all(isinstance(value, str) for value in truth.values())
        expected = (Decimal(truth["volume"]) * Decimal(truth["unit_price"])).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP
        )
        assert Decimal(truth["amount"]) == expected
        assert truth["grade"] == PRODUCTS[int(truth["product_no"])]
    assert {sale.details["transaction_seq_no"] for sale in collector.by_key.values()} == {
        truth["seq"] for truth in reported
    }


@pytest.mark.parametrize("kind", HEADER_KINDS)
@pytest.mark.parametrize("noise", [k for k in NOISE_KINDS if k != "drop"])
def test_each_noise_recipe_leaves_the_next_frame_intact(kind: HeaderKind, noise: str) -> None:
    framer = IfsfFramer(kind, "pw")
    rng = random.Random(3)
    real = framer.encode(SMARTSCREEN_FUEL_SALE_TRX)
    after = framer.encode(b"<after/>")
    got = framer.feed(damage(noise, SMARTSCREEN_FUEL_SALE_TRX, real, framer, rng) + after)
    delivered = [item for item in got if isinstance(item, bytes)]
    assert delivered[-1] == b"<after/>"
    real_survives = noise != "bad_digest"  # that recipe loses the real frame (or cuts it)
    assert (SMARTSCREEN_FUEL_SALE_TRX in delivered) is real_survives
    others = [item for item in delivered if item not in (SMARTSCREEN_FUEL_SALE_TRX, b"<after/>")]
    for item in others:  # decoys that frame well are refused by the parser
        with pytest.raises(MalformedMessage):
            parse_message(item)
    assert others or len(delivered) < len(got)  # the damage was noticed somewhere


def test_sales_are_seeded_and_noise_does_not_change_them() -> None:
    first, second = book(), book()
    second.noise_rng.random()  # noise draws come from their own stream
    assert [first.new_sale()[1] for _ in range(20)] == [second.new_sale()[1] for _ in range(20)]


def test_a_wrapped_number_evicts_the_older_transaction() -> None:
    sales = book(pumps=1, seq_modulus=3)
    for _ in range(4):
        sales.new_sale()
    assert sales.listing() == [(1, "2"), (1, "0"), (1, "1")]
    assert [t["seq"] for t in sales.truth] == ["1", "2", "0", "1"]
    found = sales.find("1", "1")
    assert found is not None
    assert found.end_timestamp == sales.truth[-1]["end_timestamp"]


def test_end_times_of_one_pump_never_repeat() -> None:
    sales = book(pumps=1)  # the clock stands still: each sale still ends a second later
    ends = [sales.new_sale()[1]["end_timestamp"] for _ in range(5)]
    assert ends == sorted(set(ends))
    assert ends[0] == "2026-11-23T10:00:00"


def test_scripted_sale_and_chinese_names() -> None:
    record, truth = book().new_sale(fuelling_point=2, nozzle=3, volume="40.00")
    assert (record.product_no, record.product_name, truth["grade"]) == (3, "0#柴油", "0")
    assert (truth["volume"], truth["amount"], truth["unit_price"]) == ("40.00", "288.40", "7.21")


def test_till_follow_ups_keep_the_identity() -> None:
    sales = book(till=1.0)
    record, _ = sales.new_sale()
    locked, cleared = sales.till_follow_ups(record)
    assert (locked.state, cleared.state) == ("Locked", "Cleared")
    assert locked.end_timestamp == record.end_timestamp == cleared.end_timestamp
    assert sales.find(str(record.fuelling_point), record.seq) == cleared


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="noise"):
        FdcSimulator(noise=1.5)
    with pytest.raises(ValueError, match="noise kinds"):
        FdcSimulator(noise_kinds=("earthquake",))
    with pytest.raises(ValueError, match="header"):
        FdcSimulator(header="rot13")
    with pytest.raises(ValueError, match="seq_modulus"):
        book(seq_modulus=1)
