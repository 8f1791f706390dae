"""Properties of the DART framer (hypothesis), and a long seeded fuzz run marked slow."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.dart.framer import ControlCode, DartFramer, Frame, encode
from drivers.dart.messages import Decimals, FromPump, decode_from_pump
from drivers.dart.pump import PumpTracker
from drivers.errors import FramingError, MalformedMessage

addresses = st.integers(0x50, 0x6F)
transactions = st.lists(
    st.tuples(st.integers(0, 255), st.binary(max_size=24)), min_size=0, max_size=4
).map(tuple)
short_frames = st.builds(
    Frame,
    addresses,
    st.sampled_from([c for c in ControlCode if c is not ControlCode.DATA]),
    st.integers(0, 15),
)
data_frames = st.builds(Frame.data, addresses, st.integers(0, 15), transactions)
frames = st.one_of(short_frames, data_frames)
noise_without_fa = st.binary(max_size=40).map(lambda b: b.replace(b"\xfa", b"\xfb"))


def feed_in_chunks(data: bytes, cuts: list[int]) -> list[Frame | FramingError]:
    framer = DartFramer()
    points = sorted({min(c, len(data)) for c in cuts})
    out: list[Frame | FramingError] = []
    start = 0
    for point in [*points, len(data)]:
        out += framer.feed(data[start:point])
        start = point
    return out


@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=8))
def test_random_bytes_only_give_frames_or_framing_errors(data: bytes, cuts: list[int]) -> None:
    for item in feed_in_chunks(data, cuts):
        assert isinstance(item, Frame | FramingError)
        if isinstance(item, Frame):
            assert DartFramer().feed(encode(item)) == [item]


@given(frames, st.lists(st.integers(0, 200), max_size=6))
def test_encode_then_feed_in_any_chunks(frame: Frame, cuts: list[int]) -> None:
    assert feed_in_chunks(encode(frame), cuts) == [frame]


@given(
    st.lists(st.tuples(noise_without_fa, frames), min_size=1, max_size=6),
    st.lists(st.integers(0, 800), max_size=6),
)
def test_frames_survive_noise_without_end_bytes(
    pieces: list[tuple[bytes, Frame]], cuts: list[int]
) -> None:
    stream = b"".join(noise + encode(frame) for noise, frame in pieces)
    out = feed_in_chunks(stream, cuts)
    assert [item for item in out if isinstance(item, Frame)] == [frame for _, frame in pieces]


@given(
    st.lists(st.tuples(st.binary(max_size=40), frames), min_size=1, max_size=6),
)
def test_frames_survive_any_noise_that_is_closed_off(pieces: list[tuple[bytes, Frame]]) -> None:
    """Noise of any bytes, ended by a stray 0xFA: every good frame still comes out, in order
    (noise may itself happen to contain a frame, so the good ones form a subsequence)."""
    stream = b"".join(noise + b"\xfa" + encode(frame) for noise, frame in pieces)
    found = iter([item for item in DartFramer().feed(stream) if isinstance(item, Frame)])
    assert all(any(item == frame for item in found) for _, frame in pieces)


# -- the long run ---------------------------------------------------------------------------

PUMP_BLOCKS = [
    bytes.fromhex(h)
    for h in (
        "50 3E 02 08 00 00 00 00 00 00 00 00 03 04 00 99 07 07 01 01 05"
        " 65 10 01 13 36 38 49 66 13 36 38 49 66 00 00 00 00 00 39 10 FA 03 FA",
        "51 31 01 01 04 03 04 00 81 23 11 02 08 00 00 04 28 00 00 34 77 03 04 00 81 23 11 83 55"
        " 03 FA",
        "51 3C 01 01 05 03 04 00 11 75 01 1A C7 03 FA",
        "50 20 FA",
        "50 70 FA",
        "51 CA FA",
    )
]


def _mutate(rng: random.Random, data: bytearray) -> None:
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(5)
        at = rng.randrange(len(data) + 1)
        if kind == 0 and data:
            data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif kind == 1:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
        elif kind == 2 and data:
            del data[at : at + rng.randint(1, 6)]
        elif kind == 3:
            data[at:at] = rng.choice(PUMP_BLOCKS)
        else:
            data[at:at] = bytes([rng.choice([0x10, 0xFA, 0x03, 0x50, 0x3A])])


def _fuzz_input(rng: random.Random) -> bytes:
    if rng.random() < 0.3:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
    data = bytearray(b"".join(rng.choice(PUMP_BLOCKS) for _ in range(rng.randint(1, 4))))
    _mutate(rng, data)
    return bytes(data)


def _through_the_driver_stack(data: bytes, rng: random.Random, tracker: PumpTracker) -> None:
    framer = DartFramer(max_frame_bytes=rng.choice([16, 64, 256]))
    at = datetime(2026, 1, 1, tzinfo=UTC)
    start = 0
    while start < len(data):
        end = start + rng.randint(1, 64)
        for item in framer.feed(data[start:end]):
            assert isinstance(item, Frame | FramingError)
            if isinstance(item, FramingError):
                continue
            assert DartFramer().feed(encode(item)) == [item]
            try:
                messages: list[FromPump] = [
                    decode_from_pump(t, d, Decimals()) for t, d in item.transactions
                ]
            except MalformedMessage:
                continue
            tracker.observe(messages, at)
            tracker.ready_sale()
        start = end


@pytest.mark.slow
def test_fuzz_framer_decoders_and_tracker_with_100k_inputs() -> None:
    rng = random.Random(20261123)
    tracker = PumpTracker()
    started = time.monotonic()
    count = 120_000
    for index in range(count):
        if index % 500 == 0:
            tracker = PumpTracker()
        _through_the_driver_stack(_fuzz_input(rng), rng, tracker)
    elapsed = time.monotonic() - started
    print(f"fuzzed {count} inputs in {elapsed:.1f} s")


@settings(max_examples=300)
@given(st.randoms(use_true_random=False))
def test_fuzz_sample_runs_in_the_default_suite(rng: random.Random) -> None:
    _through_the_driver_stack(_fuzz_input(rng), rng, PumpTracker())
