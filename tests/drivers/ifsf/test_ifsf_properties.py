"""Properties of the IFSF framer and parser, and a seeded fuzz run of both.

- Random bytes fed to the framer, in random chunks, never raise and never grow its buffer
  beyond one message.
- Random text or bytes given to the parser only ever raise `MalformedMessage`.
- encode -> feed round-trips any XML-like body, whatever the chunking, for all headers,
  and with garbage between frames every frame still arrives, in order.
"""

from __future__ import annotations

import contextlib
import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.errors import FramingError, MalformedMessage
from drivers.ifsf.fdcside import BILLION_LAUGHS, SaleRecord, build_fuel_sale_trx
from drivers.ifsf.framer import IfsfFramer
from drivers.ifsf.header import HEADER_KINDS, HeaderKind
from drivers.ifsf.messages import parse_message
from tests.drivers.ifsf.ifsf_support import (
    SMARTSCREEN_AUTHORISE_RESPONSE,
    SMARTSCREEN_FP_STATE_CHANGE,
    SMARTSCREEN_FUEL_SALE_TRX,
)

MAX = 4096
kinds = st.sampled_from(HEADER_KINDS)
bodies = st.text(min_size=0, max_size=300).map(lambda t: ("<" + t.replace("\x00", "")).encode())
SEEDS = [SMARTSCREEN_FUEL_SALE_TRX, SMARTSCREEN_FP_STATE_CHANGE, SMARTSCREEN_AUTHORISE_RESPONSE]
FRAGMENTS = [
    "<ServiceResponse RequestType='GetFuelSaleTrxDetails' OverallResult='Success'>",
    "<FDCMessage MessageType='FuelSaleTrx'>",
    "<FDCdata>",
    "</FDCdata>",
    "<DeviceClass Type='FP' DeviceID='1' TransactionSeqNo='7'>",
    "</DeviceClass>",
    "<Amount>1.5</Amount>",
    "<Volume>x</Volume>",
    "<EndTimeStamp>2026-11-23T10:15:30</EndTimeStamp>",
    "<!DOCTYPE a>",
    "<!ENTITY x 'y'>",
    "&x;",
    "&amp;",
    "<![CDATA[",
    "]]>",
    "<!-- c -->",
    "<?pi x?>",
    "</ServiceResponse>",
    "</FDCMessage>",
    "汽油",
]


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[last:point])
        last = point
    return pieces


def check_framer_output(framer: IfsfFramer, items: list[bytes | FramingError]) -> None:
    for item in items:
        assert isinstance(item, bytes | FramingError)
    assert framer.buffered <= MAX + 22


@given(kind=kinds, data=st.binary(max_size=2000), cuts=st.lists(st.integers(0, 2000), max_size=8))
@settings(max_examples=300, deadline=None)
def test_random_bytes_never_raise(kind: HeaderKind, data: bytes, cuts: list[int]) -> None:
    framer = IfsfFramer(kind, "pw", max_message_bytes=MAX)
    for piece in chunked(data, cuts):
        check_framer_output(framer, framer.feed(piece))


@given(text=st.text(max_size=500))
@settings(max_examples=300, deadline=None)
def test_random_text_only_raises_malformed(text: str) -> None:
    with contextlib.suppress(MalformedMessage):
        parse_message(text.encode())


@given(parts=st.lists(st.sampled_from(FRAGMENTS), max_size=20))
@settings(max_examples=300, deadline=None)
def test_xml_like_text_only_raises_malformed(parts: list[str]) -> None:
    with contextlib.suppress(MalformedMessage):
        parse_message("".join(parts).encode())


@given(
    kind=kinds, items=st.lists(bodies, min_size=1, max_size=6), cuts=st.lists(st.integers(0, 5000))
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_encode_feed_round_trip(kind: HeaderKind, items: list[bytes], cuts: list[int]) -> None:
    sender = IfsfFramer(kind, "pw", max_message_bytes=MAX)
    receiver = IfsfFramer(kind, "pw", max_message_bytes=MAX)
    stream = b"".join(sender.encode(item) for item in items)
    got: list[bytes | FramingError] = []
    for piece in chunked(stream, cuts):
        got += receiver.feed(piece)
    assert got == items
    assert receiver.buffered == 0


@given(
    kind=kinds,
    items=st.lists(bodies, min_size=1, max_size=5),
    junk=st.lists(st.binary(max_size=40), min_size=5, max_size=5),
    cuts=st.lists(st.integers(0, 5000)),
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_frames_survive_garbage_between_them(
    kind: HeaderKind, items: list[bytes], junk: list[bytes], cuts: list[int]
) -> None:
    sender = IfsfFramer(kind, "pw", max_message_bytes=MAX)
    receiver = IfsfFramer(kind, "pw", max_message_bytes=MAX)
    stream = b"".join(junk[i] + sender.encode(item) for i, item in enumerate(items))
    got: list[bytes] = []
    for piece in chunked(stream, cuts):
        got += [item for item in receiver.feed(piece) if isinstance(item, bytes)]
    if kind == "plain":  # no digest: garbage that is a valid frame gets through; none is lost
        rest = iter(got)
        assert all(any(g == item for g in rest) for item in items)
    else:
        assert got == items


def _mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        choice = rng.random()
        at = rng.randrange(len(out) + 1)
        if choice < 0.4 and out:
            out[min(at, len(out) - 1)] = rng.randrange(256)
        elif choice < 0.7:
            out[at:at] = rng.randbytes(rng.randint(1, 8))
        elif out:
            del out[at : at + rng.randint(1, 16)]
    return bytes(out)


@pytest.mark.slow
def test_fuzz_framer_and_parser() -> None:
    """120,000 seeded inputs: mutated real messages and frames, random bytes, bombs."""
    rng = random.Random(20261123)
    sale = SaleRecord(
        3,
        2,
        2,
        "95#汽油",
        "31.17",
        "249.98",
        "8.02",
        "9",
        "2026-11-23T10:13:02",
        "2026-11-23T10:15:30",
    )
    corpus = [*SEEDS, build_fuel_sale_trx(sale, 1, "2026-11-23T10:15:31"), BILLION_LAUGHS]
    framers = {kind: IfsfFramer(kind, "pw", max_message_bytes=MAX) for kind in HEADER_KINDS}
    encoded = {kind: [framers[kind].encode(body) for body in corpus[:4]] for kind in HEADER_KINDS}
    started = time.perf_counter()
    parsed = refused = delivered = 0
    for round_ in range(120_000):
        kind = HEADER_KINDS[round_ % 3]
        if round_ % 2:
            data = _mutate(rng, rng.choice(corpus)) if rng.random() < 0.9 else rng.randbytes(200)
            try:
                parse_message(data)
                parsed += 1
            except MalformedMessage:
                refused += 1
        else:
            framer = framers[kind]
            data = _mutate(rng, b"".join(rng.sample(encoded[kind], 2)))
            for piece in chunked(data, [rng.randrange(len(data) + 1) for _ in range(3)]):
                for item in framer.feed(piece):
                    if isinstance(item, bytes):
                        delivered += 1
                        try:
                            parse_message(item)
                        except MalformedMessage:
                            refused += 1
            assert framer.buffered <= MAX + 22
    elapsed = time.perf_counter() - started
    print(
        f"fuzz: 120000 inputs in {elapsed:.1f} s; "
        f"parsed {parsed}, refused {refused}, framed {delivered}"
    )
    assert parsed and refused and delivered
