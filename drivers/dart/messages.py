"""Typed DART transactions: CD (to the pump) and DC (from the pump), with their BCD numbers.

The same TRANS byte means different things in each direction (01 is a command to the pump
and the pump's status back), so decoding always says which direction it reads.
Decimal places come from the pump's configuration (`Decimals`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum

from ..errors import MalformedMessage
from .bcd import decode_bcd, encode_bcd

__all__ = [
    "TRANS_1",
    "TRANS_2",
    "TRANS_3",
    "TRANS_4",
    "TRANS_5",
    "TRANS_101",
    "CD1Command",
    "CD2AllowedNozzles",
    "CD3PresetVolume",
    "CD4PresetAmount",
    "CD5Prices",
    "CD101RequestTotals",
    "DC1Status",
    "DC2VolumeAmount",
    "DC3PriceNozzle",
    "DC101Totals",
    "Decimals",
    "FromPump",
    "OtherTransaction",
    "PumpCommand",
    "PumpState",
    "ToPump",
    "decode_from_pump",
    "decode_to_pump",
    "encode_from_pump",
    "encode_to_pump",
]


class PumpCommand(IntEnum):
    """CD1 DCC byte."""

    RETURN_STATUS = 0x00
    RETURN_PARAMETERS = 0x02
    RETURN_IDENTITY = 0x03
    RETURN_FILLING_INFO = 0x04
    RESET = 0x05
    AUTHORIZE = 0x06
    STOP = 0x08
    SWITCH_OFF = 0x0A


class PumpState(IntEnum):
    """DC1 status byte (there is no status 3)."""

    NOT_PROGRAMMED = 0
    RESET = 1
    AUTHORIZED = 2
    FILLING = 4
    FILLING_COMPLETED = 5
    MAX_REACHED = 6
    SWITCHED_OFF = 7
    SUSPENDED = 8


@dataclass(frozen=True)
class Decimals:
    """Decimal places of the numbers a pump sends; totals use the volume places."""

    volume: int = 2
    amount: int = 2
    price: int = 2


TRANS_1 = 0x01  # CD1 command / DC1 status
TRANS_2 = 0x02  # CD2 allowed nozzles / DC2 volume and amount
TRANS_3 = 0x03  # CD3 preset volume / DC3 price and nozzle
TRANS_4 = 0x04  # CD4 preset amount
TRANS_5 = 0x05  # CD5 prices / DC5 alarm
TRANS_101 = 0x65  # CD101 totals request / DC101 totals


@dataclass(frozen=True)
class CD1Command:
    command: PumpCommand


@dataclass(frozen=True)
class CD2AllowedNozzles:
    nozzles: tuple[int, ...]


@dataclass(frozen=True)
class CD3PresetVolume:
    volume: Decimal


@dataclass(frozen=True)
class CD4PresetAmount:
    amount: Decimal


@dataclass(frozen=True)
class CD5Prices:
    prices: tuple[Decimal, ...]  # logical nozzle 1, 2, ... in order


@dataclass(frozen=True)
class CD101RequestTotals:
    counter: int  # 1-8 a logical nozzle; 9 the sum of all nozzles


@dataclass(frozen=True)
class DC1Status:
    state: PumpState


@dataclass(frozen=True)
class DC2VolumeAmount:
    volume: Decimal
    amount: Decimal


@dataclass(frozen=True)
class DC3PriceNozzle:
    price: Decimal
    nozzle: int  # 0 = none selected
    nozzle_out: bool


@dataclass(frozen=True)
class DC101Totals:
    """COUN + TOTVAL + TOTM1 + TOTM2 (5 BCD each); for COUN 1-9 all three count volume."""

    counter: int
    volume_total: Decimal
    meter1_total: Decimal
    meter2_total: Decimal | None = None  # absent in the 11-byte variant


@dataclass(frozen=True)
class OtherTransaction:
    """A transaction this driver carries but does not interpret (alarms, identity, ...)."""

    trans: int
    data: bytes


ToPump = (
    CD1Command
    | CD2AllowedNozzles
    | CD3PresetVolume
    | CD4PresetAmount
    | CD5Prices
    | CD101RequestTotals
    | OtherTransaction
)
FromPump = DC1Status | DC2VolumeAmount | DC3PriceNozzle | DC101Totals | OtherTransaction


def _need(data: bytes, sizes: tuple[int, ...], name: str) -> None:
    if len(data) not in sizes:
        raise MalformedMessage(f"{name} with {len(data)} data bytes: {data.hex(' ')}")


_TRANS_OF: dict[type, int] = {
    CD1Command: TRANS_1,
    CD2AllowedNozzles: TRANS_2,
    CD3PresetVolume: TRANS_3,
    CD4PresetAmount: TRANS_4,
    CD5Prices: TRANS_5,
    CD101RequestTotals: TRANS_101,
    DC1Status: TRANS_1,
    DC2VolumeAmount: TRANS_2,
    DC3PriceNozzle: TRANS_3,
    DC101Totals: TRANS_101,
}


def encode_to_pump(message: ToPump, decimals: Decimals) -> tuple[int, bytes]:
    """(TRANS, DATA) of a command; raises ValueError for values that do not fit."""
    if isinstance(message, OtherTransaction):
        return message.trans, message.data
    return _TRANS_OF[type(message)], _command_data(message, decimals)


def _command_data(message: ToPump, decimals: Decimals) -> bytes:
    if isinstance(message, CD1Command):
        return bytes((message.command,))
    if isinstance(message, CD2AllowedNozzles):
        return bytes(message.nozzles)
    if isinstance(message, CD3PresetVolume):
        return encode_bcd(message.volume, 4, decimals.volume)
    if isinstance(message, CD4PresetAmount):
        return encode_bcd(message.amount, 4, decimals.amount)
    if isinstance(message, CD5Prices):
        return b"".join(encode_bcd(p, 3, decimals.price) for p in message.prices)
    assert isinstance(message, CD101RequestTotals)
    return bytes((message.counter,))


def _decode_cd1(data: bytes, _: Decimals) -> ToPump:
    _need(data, (1,), "CD1")
    try:
        return CD1Command(PumpCommand(data[0]))
    except ValueError:
        raise MalformedMessage(f"unknown CD1 command 0x{data[0]:02X}") from None


def _decode_cd3(data: bytes, decimals: Decimals) -> ToPump:
    _need(data, (4,), "CD3")
    return CD3PresetVolume(decode_bcd(data, decimals.volume))


def _decode_cd4(data: bytes, decimals: Decimals) -> ToPump:
    _need(data, (4,), "CD4")
    return CD4PresetAmount(decode_bcd(data, decimals.amount))


def _decode_cd5(data: bytes, decimals: Decimals) -> ToPump:
    if not data or len(data) % 3:
        raise MalformedMessage(f"CD5 with {len(data)} data bytes")
    prices = (decode_bcd(data[i : i + 3], decimals.price) for i in range(0, len(data), 3))
    return CD5Prices(tuple(prices))


def _decode_cd101(data: bytes, _: Decimals) -> ToPump:
    _need(data, (1,), "CD101")
    return CD101RequestTotals(data[0])


_TO_PUMP: dict[int, Callable[[bytes, Decimals], ToPump]] = {
    TRANS_1: _decode_cd1,
    TRANS_2: lambda data, _: CD2AllowedNozzles(tuple(data)),
    TRANS_3: _decode_cd3,
    TRANS_4: _decode_cd4,
    TRANS_5: _decode_cd5,
    TRANS_101: _decode_cd101,
}


def decode_to_pump(trans: int, data: bytes, decimals: Decimals) -> ToPump:
    """A command as the pump (or a listener) reads it; raises MalformedMessage."""
    decoder = _TO_PUMP.get(trans)
    return OtherTransaction(trans, data) if decoder is None else decoder(data, decimals)


def encode_from_pump(message: FromPump, decimals: Decimals) -> tuple[int, bytes]:
    """(TRANS, DATA) of a pump's answer; the simulator speaks through this."""
    if isinstance(message, OtherTransaction):
        return message.trans, message.data
    if isinstance(message, DC1Status):
        data = bytes((message.state,))
    elif isinstance(message, DC2VolumeAmount):
        data = encode_bcd(message.volume, 4, decimals.volume)
        data += encode_bcd(message.amount, 4, decimals.amount)
    elif isinstance(message, DC3PriceNozzle):
        nozio = (message.nozzle & 0x0F) | (0x10 if message.nozzle_out else 0)
        data = encode_bcd(message.price, 3, decimals.price) + bytes((nozio,))
    else:
        data = bytes((message.counter,)) + encode_bcd(message.volume_total, 5, decimals.volume)
        data += encode_bcd(message.meter1_total, 5, decimals.volume)
        if message.meter2_total is not None:
            data += encode_bcd(message.meter2_total, 5, decimals.volume)
    return _TRANS_OF[type(message)], data


def _decode_dc1(data: bytes, _: Decimals) -> FromPump:
    _need(data, (1,), "DC1")
    try:
        return DC1Status(PumpState(data[0]))
    except ValueError:
        raise MalformedMessage(f"unknown DC1 pump status {data[0]}") from None


def _decode_dc2(data: bytes, decimals: Decimals) -> FromPump:
    _need(data, (8,), "DC2")
    return DC2VolumeAmount(
        decode_bcd(data[:4], decimals.volume), decode_bcd(data[4:], decimals.amount)
    )


def _decode_dc3(data: bytes, decimals: Decimals) -> FromPump:
    _need(data, (4,), "DC3")
    nozio = data[3]
    return DC3PriceNozzle(decode_bcd(data[:3], decimals.price), nozio & 0x0F, bool(nozio & 0x10))


def _decode_dc101(data: bytes, decimals: Decimals) -> FromPump:
    _need(data, (11, 16), "DC101")
    meter2 = decode_bcd(data[11:16], decimals.volume) if len(data) == 16 else None
    return DC101Totals(
        data[0],
        decode_bcd(data[1:6], decimals.volume),
        decode_bcd(data[6:11], decimals.volume),
        meter2,
    )


_FROM_PUMP: dict[int, Callable[[bytes, Decimals], FromPump]] = {
    TRANS_1: _decode_dc1,
    TRANS_2: _decode_dc2,
    TRANS_3: _decode_dc3,
    TRANS_101: _decode_dc101,
}


def decode_from_pump(trans: int, data: bytes, decimals: Decimals) -> FromPump:
    """A pump's transaction as typed values; raises MalformedMessage on bad length or BCD."""
    decoder = _FROM_PUMP.get(trans)
    return OtherTransaction(trans, data) if decoder is None else decoder(data, decimals)
