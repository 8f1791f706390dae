"""The IFSF framer: the three header variants, MD5 checks, partial reads, resynchronisation.

Literal messages come from public IFSF client code (see ifsf_support): the FuelSaleTrx
sample of xingxx78/SmartScreen's unit tests and the LogOn of its Md5UnitTest, whose MD5
with the passphrase "DresserFusion}123" the Java and C# clients agree on.
"""

from __future__ import annotations

import random

import pytest

from drivers.errors import CrcError, FramingError, OversizedFrame, TruncatedFrame
from drivers.ifsf.framer import DigestMismatch, IfsfFramer
from drivers.ifsf.header import HEADER_KINDS, HeaderKind, build_header, digest, parse_header
from tests.drivers.ifsf.ifsf_support import (
    MD5_SAMPLE_DIGEST,
    MD5_SAMPLE_LOGON,
    MD5_SAMPLE_PASSPHRASE,
    SMARTSCREEN_FP_STATE_CHANGE,
    SMARTSCREEN_FUEL_SALE_TRX,
)

KINDS: tuple[HeaderKind, ...] = HEADER_KINDS
PASS = "s3cret"


def frames(items: list[bytes | FramingError]) -> list[bytes]:
    return [item for item in items if isinstance(item, bytes)]


def errors(items: list[bytes | FramingError]) -> list[FramingError]:
    return [item for item in items if isinstance(item, FramingError)]


def test_md5_matches_the_public_vector() -> None:
    """Md5UnitTest.java (xingxx78/SmartScreen): MD5(xml ‖ passphrase) of a 00.07 LogOn."""
    assert digest(MD5_SAMPLE_LOGON, MD5_SAMPLE_PASSPHRASE).hex().upper() == MD5_SAMPLE_DIGEST
    framed = IfsfFramer("md5", MD5_SAMPLE_PASSPHRASE).encode(MD5_SAMPLE_LOGON)
    assert framed[:4] == len(MD5_SAMPLE_LOGON).to_bytes(4, "big")
    assert framed[4:6] == b"\x00\x01"
    assert framed[6:22].hex().upper() == MD5_SAMPLE_DIGEST
    assert framed[22:] == MD5_SAMPLE_LOGON


@pytest.mark.parametrize(
    ("kind", "size", "layout"),
    [
        ("plain", 6, lambda xml, d: len(xml).to_bytes(4, "big") + b"\x00\x00"),
        ("md5", 22, lambda xml, d: len(xml).to_bytes(4, "big") + b"\x00\x01" + d),
        ("md5-noid", 20, lambda xml, d: len(xml).to_bytes(4, "big") + d),
    ],
)
def test_header_layouts(kind: HeaderKind, size: int, layout: object) -> None:
    xml = SMARTSCREEN_FUEL_SALE_TRX
    assert callable(layout)
    expected = layout(xml, digest(xml, PASS))
    assert build_header(kind, xml, PASS) == expected
    assert len(expected) == size
    head = parse_header(kind, expected)
    assert head is not None
    assert head.length == len(xml)


@pytest.mark.parametrize("kind", KINDS)
def test_literal_sale_round_trips_with_its_utf8(kind: HeaderKind) -> None:
    """The SmartScreen FuelSaleTrx sample (it holds a non-ASCII '…') frames and unframes."""
    framer = IfsfFramer(kind, PASS)
    assert framer.feed(framer.encode(SMARTSCREEN_FUEL_SALE_TRX)) == [SMARTSCREEN_FUEL_SALE_TRX]
    chinese = "<ProductName>92#汽油</ProductName>".encode()
    assert framer.feed(framer.encode(chinese)) == [chinese]
    assert framer.buffered == 0


@pytest.mark.parametrize("kind", KINDS)
def test_every_split_point(kind: HeaderKind) -> None:
    first, second = SMARTSCREEN_FUEL_SALE_TRX, SMARTSCREEN_FP_STATE_CHANGE
    stream = IfsfFramer(kind, PASS).encode(first) + IfsfFramer(kind, PASS).encode(second)
    for split in range(len(stream) + 1):
        framer = IfsfFramer(kind, PASS)
        got = framer.feed(stream[:split]) + framer.feed(stream[split:])
        assert got == [first, second], split
        assert framer.buffered == 0


@pytest.mark.parametrize("kind", KINDS)
def test_byte_by_byte(kind: HeaderKind) -> None:
    framer = IfsfFramer(kind, PASS)
    stream = framer.encode(MD5_SAMPLE_LOGON) * 3
    got: list[bytes | FramingError] = []
    for byte in stream:
        got += framer.feed(bytes([byte]))
    assert got == [MD5_SAMPLE_LOGON] * 3


@pytest.mark.parametrize("kind", ["md5", "md5-noid"])
def test_wrong_passphrase_is_a_digest_mismatch(kind: HeaderKind) -> None:
    bad = IfsfFramer(kind, "not the passphrase").encode(SMARTSCREEN_FUEL_SALE_TRX)
    good = IfsfFramer(kind, PASS).encode(SMARTSCREEN_FP_STATE_CHANGE)
    got = IfsfFramer(kind, PASS).feed(bad + good)
    assert frames(got) == [SMARTSCREEN_FP_STATE_CHANGE]
    assert [type(e) for e in errors(got)] == [DigestMismatch]
    assert isinstance(errors(got)[0], CrcError)


@pytest.mark.parametrize("kind", ["md5", "md5-noid"])
def test_a_flipped_byte_is_caught_and_the_next_frame_survives(kind: HeaderKind) -> None:
    framer = IfsfFramer(kind, PASS)
    sale = bytearray(framer.encode(SMARTSCREEN_FUEL_SALE_TRX))
    sale[-40] ^= 0x01  # a digit of the DSP fields changes: still well-formed XML
    got = framer.feed(bytes(sale) + framer.encode(MD5_SAMPLE_LOGON))
    assert frames(got) == [MD5_SAMPLE_LOGON]
    assert any(isinstance(e, DigestMismatch) for e in errors(got))


@pytest.mark.parametrize("kind", KINDS)
def test_absurd_length_header_resyncs_in_band(kind: HeaderKind) -> None:
    """A header announcing ~2 GB: OversizedFrame, then the next real frame still arrives."""
    framer = IfsfFramer(kind, PASS)
    real = framer.encode(SMARTSCREEN_FUEL_SALE_TRX)
    absurd = (0x7FFFFFF0).to_bytes(4, "big") + real[4 : len(real) - len(SMARTSCREEN_FUEL_SALE_TRX)]
    got = framer.feed(absurd + real)
    assert frames(got) == [SMARTSCREEN_FUEL_SALE_TRX]
    assert isinstance(errors(got)[0], OversizedFrame)
    for split in range(len(absurd) + len(real) + 1):
        framer = IfsfFramer(kind, PASS)
        stream = absurd + real
        got = framer.feed(stream[:split]) + framer.feed(stream[split:])
        assert frames(got) == [SMARTSCREEN_FUEL_SALE_TRX], split
        assert errors(got)


@pytest.mark.parametrize("kind", KINDS)
def test_length_just_over_the_cap(kind: HeaderKind) -> None:
    framer = IfsfFramer(kind, PASS, max_message_bytes=2000)
    big = b"<a>" + b"x" * 2100 + b"</a>"
    oversized = IfsfFramer(kind, PASS, max_message_bytes=10_000).encode(big)
    got = framer.feed(oversized + framer.encode(MD5_SAMPLE_LOGON))
    assert frames(got) == [MD5_SAMPLE_LOGON]
    assert isinstance(errors(got)[0], OversizedFrame)
    assert framer.buffered == 0


@pytest.mark.parametrize("kind", KINDS)
def test_truncated_message_does_not_swallow_the_next(kind: HeaderKind) -> None:
    framer = IfsfFramer(kind, PASS)
    whole = framer.encode(SMARTSCREEN_FUEL_SALE_TRX)
    cut = whole[: len(whole) - 100]
    got = framer.feed(cut + framer.encode(MD5_SAMPLE_LOGON))
    assert frames(got) == [MD5_SAMPLE_LOGON]  # at once, not after 100 more bytes
    assert isinstance(errors(got)[0], TruncatedFrame)


@pytest.mark.parametrize("kind", KINDS)
def test_garbage_between_frames(kind: HeaderKind) -> None:
    rng = random.Random(5)
    framer = IfsfFramer(kind, PASS)
    bodies = [SMARTSCREEN_FUEL_SALE_TRX, SMARTSCREEN_FP_STATE_CHANGE, MD5_SAMPLE_LOGON] * 20
    stream = b"".join(rng.randbytes(rng.randint(1, 64)) + framer.encode(b) for b in bodies)
    got: list[bytes | FramingError] = []
    at = 0
    while at < len(stream):
        step = rng.randint(1, 300)
        got += framer.feed(stream[at : at + step])
        at += step
    assert frames(got) == bodies
    assert errors(got)


def test_plain_framer_refuses_md5_frames() -> None:
    md5_frame = IfsfFramer("md5", PASS).encode(SMARTSCREEN_FUEL_SALE_TRX)
    got = IfsfFramer("plain").feed(md5_frame)
    assert frames(got) == []
    assert errors(got)


def test_garbage_without_a_zero_byte_is_dropped_at_once() -> None:
    framer = IfsfFramer("plain")
    got = framer.feed(b"\xff" * 10_000)
    assert framer.buffered == 0
    assert len(got) == 1
    assert isinstance(got[0], FramingError)


def test_a_plausible_header_waits_for_its_body() -> None:
    framer = IfsfFramer("plain")
    stream = framer.encode(b"<a>" + b"x" * 50_000 + b"</a>")
    assert framer.feed(stream[:-1]) == []
    assert framer.buffered == len(stream) - 1
    assert len(frames(framer.feed(stream[-1:]))) == 1


def test_encode_refuses_what_no_framer_could_deliver() -> None:
    framer = IfsfFramer("plain", max_message_bytes=100)
    for bad in (b"", b"<a>\x00</a>", b"x<a/>", b"<a>" + b"x" * 100 + b"</a>"):
        with pytest.raises(ValueError, match="XML message"):
            framer.encode(bad)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="header must be one of"):
        IfsfFramer("md6")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_message_bytes"):
        IfsfFramer("plain", max_message_bytes=1 << 24)


def test_reset_forgets_partial_input() -> None:
    framer = IfsfFramer("md5", PASS)
    framer.feed(framer.encode(MD5_SAMPLE_LOGON)[:30])
    framer.reset()
    assert framer.buffered == 0
    assert framer.feed(framer.encode(MD5_SAMPLE_LOGON)) == [MD5_SAMPLE_LOGON]


def test_a_header_begun_in_garbage_does_not_stall_the_real_frame() -> None:
    """Regression (found by a stress run): a 00 byte in garbage just before a real md5-noid
    frame made a fake header whose body would only end after bytes that never came."""
    junk = b"\x00\x01 \n\x00\x00\x00 <\x00><\x00\x00\x01 \x00\x01@<\x80\x00<\x00\x00\x00\x01\x94 "
    body = "<a/</汽/汽b".encode()
    framer = IfsfFramer("md5-noid", "pw", max_message_bytes=4096)
    got = framer.feed(junk + IfsfFramer("md5-noid", "pw", max_message_bytes=4096).encode(body))
    assert frames(got) == [body]
    assert framer.buffered == 0
