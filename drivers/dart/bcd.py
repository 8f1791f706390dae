"""Packed BCD, most significant digit first, as DART carries volumes, amounts and prices.

The wire carries digits only; the decimal places come from the pump's parameters or the
site's configuration, so both directions take them as an argument.
"""

from __future__ import annotations

from decimal import Decimal

from ..errors import MalformedMessage

__all__ = ["decode_bcd", "encode_bcd"]


def decode_bcd(data: bytes, decimals: int) -> Decimal:
    """Digits in `data` as an exact Decimal with `decimals` places; a nibble above 9 is refused."""
    digits = 0
    for byte in data:
        high, low = byte >> 4, byte & 0x0F
        if high > 9 or low > 9:
            raise MalformedMessage(f"invalid BCD byte 0x{byte:02X} in {data.hex(' ')}")
        digits = digits * 100 + high * 10 + low
    return Decimal(digits).scaleb(-decimals)


def encode_bcd(value: Decimal, length: int, decimals: int) -> bytes:
    """`value` as `length` bytes of packed BCD; refuses negatives, overflow and extra places."""
    scaled = value.scaleb(decimals)
    if scaled != scaled.to_integral_value() or scaled < 0:
        raise ValueError(f"{value} does not fit {decimals} decimal places as an unsigned BCD")
    digits = int(scaled)
    text = f"{digits:0{length * 2}d}"
    if len(text) > length * 2:
        raise ValueError(f"{value} needs more than {length * 2} digits")
    return bytes(int(text[i : i + 2], 16) for i in range(0, len(text), 2))
