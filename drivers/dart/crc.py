"""CRC-16/ARC as DART uses it on the wire.

The vendor text calls it "CCITT", but every public capture checks with CRC-16/ARC: reflected
polynomial 0xA001, initial value 0, no final XOR, sent low byte first.
"""

from __future__ import annotations

__all__ = ["crc16_arc", "crc_bytes"]


def _build_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        value = byte
        for _ in range(8):
            value = (value >> 1) ^ 0xA001 if value & 1 else value >> 1
        table.append(value)
    return tuple(table)


_TABLE = _build_table()


def crc16_arc(data: bytes, start: int = 0) -> int:
    """CRC-16/ARC of `data`; `start` continues a running CRC."""
    crc = start
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc


def crc_bytes(data: bytes) -> bytes:
    """The two CRC bytes as they go on the wire: low byte first."""
    crc = crc16_arc(data)
    return bytes((crc & 0xFF, crc >> 8))
