"""Typed DART transactions: public captures decode to the right values, and back."""

from __future__ import annotations

from decimal import Decimal

import pytest

from drivers.dart.messages import (
    CD1Command,
    CD2AllowedNozzles,
    CD3PresetVolume,
    CD4PresetAmount,
    CD5Prices,
    CD101RequestTotals,
    DC1Status,
    DC2VolumeAmount,
    DC3PriceNozzle,
    DC101Totals,
    Decimals,
    OtherTransaction,
    PumpCommand,
    PumpState,
    decode_from_pump,
    decode_to_pump,
    encode_from_pump,
    encode_to_pump,
)
from drivers.errors import MalformedMessage

TWO = Decimals()


def test_dc101_totals_from_a_wayne_capture() -> None:
    """moduslightstech-lgtm/intelipump captured_frames.json: `65 10 01 ...` (LNG 16).

    COUN 1, then TOTVAL, TOTM1 and TOTM2 as 5-byte BCD; on a one-meter nozzle the first two
    are the same volume total (alejomonroy/Full-Colombia-Wayne shows the same shape).
    """
    data = bytes.fromhex("01 1336384966 1336384966 0000000000")
    assert decode_from_pump(0x65, data, TWO) == DC101Totals(
        1, Decimal("13363849.66"), Decimal("13363849.66"), Decimal("0.00")
    )


def test_dc101_short_variant_without_second_meter() -> None:
    totals = decode_from_pump(0x65, bytes.fromhex("02 0000426633 0000426633"), TWO)
    assert totals == DC101Totals(2, Decimal("4266.33"), Decimal("4266.33"), None)


def test_dc3_nozio_bits() -> None:
    """intelipump application capture: `03 04 00 11 75 01` = price 11.75, nozzle 1, in."""
    assert decode_from_pump(3, bytes.fromhex("00117501"), TWO) == DC3PriceNozzle(
        Decimal("11.75"), 1, False
    )
    out = decode_from_pump(3, bytes.fromhex("00812312"), Decimals(price=3))
    assert out == DC3PriceNozzle(Decimal("8.123"), 2, True)


def test_dc2_volume_and_amount_with_site_decimals() -> None:
    """alejomonroy/Full-Colombia-Wayne: `02 08 00 00 04 28 00 00 34 77` read as 0.428 L."""
    out = decode_from_pump(2, bytes.fromhex("0000042800003477"), Decimals(volume=3, amount=0))
    assert out == DC2VolumeAmount(Decimal("0.428"), Decimal(3477))


@pytest.mark.parametrize("state", list(PumpState))
def test_dc1_every_status(state: PumpState) -> None:
    assert decode_from_pump(1, bytes([state]), TWO) == DC1Status(state)


@pytest.mark.parametrize(
    ("trans", "data", "match"),
    [
        (1, b"\x03", "status 3"),  # there is no status 3
        (1, b"", "DC1"),
        (2, bytes(7), "DC2"),
        (2, bytes.fromhex("0000000A00000000"), "BCD"),
        (3, bytes.fromhex("00F17501"), "BCD"),
        (0x65, bytes(10), "DC101"),
    ],
)
def test_malformed_pump_transactions(trans: int, data: bytes, match: str) -> None:
    with pytest.raises(MalformedMessage, match=match):
        decode_from_pump(trans, data, TWO)


def test_unknown_pump_transactions_pass_through() -> None:
    assert decode_from_pump(0x05, b"\x06", TWO) == OtherTransaction(5, b"\x06")


@pytest.mark.parametrize(
    ("message", "wire"),
    [
        (CD1Command(PumpCommand.AUTHORIZE), "01 01 06"),  # Full-Colombia-Wayne `51 36 1 1 6`
        (CD1Command(PumpCommand.RETURN_FILLING_INFO), "01 01 04"),
        (CD2AllowedNozzles((1,)), "02 01 01"),  # Full-Colombia-Wayne `51 32 2 1 1`
        (CD3PresetVolume(Decimal("999999.99")), "03 04 99 99 99 99"),
        (CD4PresetAmount(Decimal("100.00")), "04 04 00 01 00 00"),
        (CD5Prices((Decimal("11.75"),)), "05 03 00 11 75"),  # intelipump CD5 sample
        (CD101RequestTotals(1), "65 01 01"),  # intelipump CD101 sample
    ],
)
def test_commands_encode_and_decode(message: object, wire: str) -> None:
    raw = bytes.fromhex(wire)
    trans, data = encode_to_pump(message, TWO)  # type: ignore[arg-type]
    assert bytes([trans, len(data)]) + data == raw
    assert decode_to_pump(raw[0], raw[2:], TWO) == message


def test_malformed_commands() -> None:
    for trans, data in [(1, b"\x07"), (5, b"\x00\x11"), (0x65, b""), (3, b"\x00")]:
        with pytest.raises(MalformedMessage):
            decode_to_pump(trans, data, TWO)


@pytest.mark.parametrize(
    "message",
    [
        DC1Status(PumpState.FILLING),
        DC2VolumeAmount(Decimal("12.34"), Decimal("96.87")),
        DC3PriceNozzle(Decimal("7.85"), 2, True),
        DC101Totals(2, Decimal("123456.78"), Decimal("123456.78"), Decimal(0)),
    ],
)
def test_pump_answers_round_trip(message: object) -> None:
    trans, data = encode_from_pump(message, TWO)  # type: ignore[arg-type]
    assert decode_from_pump(trans, data, TWO) == message
