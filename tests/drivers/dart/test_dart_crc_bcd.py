"""CRC-16/ARC and packed BCD, the two number formats under every DART frame."""

from __future__ import annotations

from decimal import Decimal

import pytest

from drivers.dart.bcd import decode_bcd, encode_bcd
from drivers.dart.crc import crc16_arc, crc_bytes
from drivers.errors import MalformedMessage


def test_crc_check_value() -> None:
    assert crc16_arc(b"123456789") == 0xBB3D
    assert crc_bytes(b"123456789") == b"\x3d\xbb"  # low byte first on the wire


def test_crc_continues_a_running_value() -> None:
    assert crc16_arc(b"56789", crc16_arc(b"1234")) == 0xBB3D


@pytest.mark.parametrize(
    ("body", "crc"),
    [
        # alejomonroy/Full-Colombia-Wayne, Protocolo_Wayne.h comments (frames seen on a wire)
        ("51 35 01 01 00", "A2 50"),  # CD1 return status
        ("51 36 01 01 06", "22 16"),  # CD1 authorize
        ("52 3C 05 09 00 12 34 00 56 78 00 26 53", "A9 46"),  # CD5 three prices
        ("51 39 65 10 01 00 00 42 66 33 00 00 42 66 33 00 00 00 00 00", "A4 F0"),  # DC101
        # moduslightstech-lgtm/intelipump, tests/fixtures/dart/captured_frames.json
        ("51 30 65 01 01", "22 83"),  # CD101 request totals of nozzle 1
        ("51 3C 01 01 05 03 04 00 11 75 01", "1A C7"),  # DC1 5 + DC3
    ],
)
def test_crc_of_public_frames(body: str, crc: str) -> None:
    assert crc_bytes(bytes.fromhex(body)) == bytes.fromhex(crc)


def test_bcd_decodes_with_configured_places() -> None:
    assert decode_bcd(bytes.fromhex("00000428"), 3) == Decimal("0.428")
    assert decode_bcd(bytes.fromhex("00003477"), 2) == Decimal("34.77")
    assert decode_bcd(bytes.fromhex("1336384966"), 2) == Decimal("13363849.66")
    assert decode_bcd(bytes.fromhex("001175"), 0) == Decimal(1175)
    assert str(decode_bcd(bytes.fromhex("00000000"), 2)) == "0.00"


def test_bcd_encodes_most_significant_first() -> None:
    assert encode_bcd(Decimal("7.85"), 3, 2) == bytes.fromhex("000785")
    assert encode_bcd(Decimal("100"), 4, 2) == bytes.fromhex("00010000")
    assert encode_bcd(Decimal("12345678.90"), 5, 2) == bytes.fromhex("1234567890")


@pytest.mark.parametrize("value", [Decimal("1.234"), Decimal(-1), Decimal("1000000")])
def test_bcd_refuses_what_does_not_fit(value: Decimal) -> None:
    with pytest.raises(ValueError, match=r"BCD|digits"):
        encode_bcd(value, 3, 2)


@pytest.mark.parametrize("raw", ["0A", "A0", "FF", "00 1F"])
def test_bcd_refuses_nibbles_above_nine(raw: str) -> None:
    with pytest.raises(MalformedMessage, match="invalid BCD"):
        decode_bcd(bytes.fromhex(raw), 2)


def test_bcd_round_trip() -> None:
    for cents in (0, 1, 99, 100, 123456, 99999999):
        value = Decimal(cents).scaleb(-2)
        assert decode_bcd(encode_bcd(value, 4, 2), 2) == value
