"""DART line framing: bytes in, frames and typed framing errors out; no I/O.

Short frames are `ADR CTRL FA`; data frames are `ADR CTRL {TRANS LNG DATA...}+ CRC-L CRC-H 03 FA`
with DLE (0x10) put before every 0xFA inside the data or the CRC. An unescaped 0xFA therefore
always ends something, which is where the framer decides: a valid frame, or a framing error
after which it looks for a valid frame at the tail (the bytes before it were noise).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from ..errors import CrcError, FramingError, OversizedFrame, TruncatedFrame
from .crc import crc16_arc, crc_bytes

__all__ = [
    "DLE",
    "ETX",
    "FIRST_ADDRESS",
    "LAST_ADDRESS",
    "MAX_FRAME_BYTES",
    "SF",
    "ControlCode",
    "DartFramer",
    "Frame",
    "encode",
    "is_pump_address",
    "is_repeat",
    "next_tx",
]

FIRST_ADDRESS = 0x50
LAST_ADDRESS = 0x6F
DLE = 0x10
ETX = 0x03
SF = 0xFA
MAX_FRAME_BYTES = 256  # unescaped; a long pump reply (several transactions) is under 100


class ControlCode(IntEnum):
    """High nibble of CTRL; the low nibble is the block sequence number TX#."""

    POLL = 0x20
    DATA = 0x30
    NAK = 0x50
    EOT = 0x70
    ACK = 0xC0
    ACKPOLL = 0xE0


_CONTROL_BY_NIBBLE = {code >> 4: code for code in ControlCode}
_DATA_NIBBLE = ControlCode.DATA >> 4


def is_pump_address(value: int) -> bool:
    return FIRST_ADDRESS <= value <= LAST_ADDRESS


def next_tx(previous: int | None) -> int:
    """TX# of the next block: 0 first after a (re)start, then 1..F, wrapping to 1."""
    if previous is None:
        return 0
    return 1 if previous >= 0x0F else previous + 1


def is_repeat(tx: int, last_accepted: int | None) -> bool:
    """A block carrying the TX# just accepted is a retransmission: ACK it, do not apply it.

    TX# 0 always starts afresh (the sender restarted).
    """
    return tx != 0 and tx == last_accepted


@dataclass(frozen=True)
class Frame:
    """One DART block. `transactions` is empty for every control code but DATA."""

    address: int
    control: ControlCode
    tx: int = 0
    transactions: tuple[tuple[int, bytes], ...] = ()

    def __post_init__(self) -> None:
        if not is_pump_address(self.address):
            raise ValueError(f"DART address 0x{self.address:02X} outside 0x50-0x6F")
        if not 0 <= self.tx <= 0x0F:
            raise ValueError(f"TX# {self.tx} outside 0-15")
        if self.control is not ControlCode.DATA and self.transactions:
            raise ValueError(f"{self.control.name} frames carry no transactions")
        for trans, data in self.transactions:
            if not 0 <= trans <= 0xFF or len(data) > 0xFF:
                raise ValueError(f"transaction 0x{trans:X} with {len(data)} bytes does not fit")

    @property
    def is_data(self) -> bool:
        return self.control is ControlCode.DATA

    @classmethod
    def data(cls, address: int, tx: int, transactions: tuple[tuple[int, bytes], ...]) -> Frame:
        return cls(address, ControlCode.DATA, tx, transactions)

    @classmethod
    def poll(cls, address: int) -> Frame:
        return cls(address, ControlCode.POLL)

    @classmethod
    def ack(cls, address: int, tx: int) -> Frame:
        return cls(address, ControlCode.ACK, tx)

    @classmethod
    def nak(cls, address: int, tx: int) -> Frame:
        return cls(address, ControlCode.NAK, tx)

    @classmethod
    def eot(cls, address: int, tx: int = 0) -> Frame:
        return cls(address, ControlCode.EOT, tx)

    def __str__(self) -> str:
        body = " ".join(f"{trans:02X}:{data.hex()}" for trans, data in self.transactions)
        return f"{self.address:02X} {self.control.name}#{self.tx:X} {body}".rstrip()


def _escape(data: bytes) -> bytes:
    return data.replace(bytes((SF,)), bytes((DLE, SF)))


def encode(frame: Frame) -> bytes:
    """The wire bytes of `frame`, with DLE transparency applied to data and CRC."""
    head = bytes((frame.address, frame.control | frame.tx))
    if not frame.is_data:
        return head + bytes((SF,))
    payload = b"".join(bytes((trans, len(data))) + data for trans, data in frame.transactions)
    crc = crc_bytes(head + payload)
    return head + _escape(payload + crc) + bytes((ETX, SF))


def _split_transactions(payload: bytes) -> tuple[tuple[int, bytes], ...] | None:
    found: list[tuple[int, bytes]] = []
    index = 0
    while index < len(payload):
        if index + 2 > len(payload):
            return None
        trans, length = payload[index], payload[index + 1]
        end = index + 2 + length
        if end > len(payload):
            return None
        found.append((trans, payload[index + 2 : end]))
        index = end
    return tuple(found)


def _looks_like_start(buf: bytes | bytearray, index: int) -> bool:
    """An address byte followed by a known control nibble (or by nothing yet)."""
    if not is_pump_address(buf[index]):
        return False
    return index + 1 >= len(buf) or (buf[index + 1] >> 4) in _CONTROL_BY_NIBBLE


def _hex(data: bytes) -> str:
    shown = data[:24].hex(" ")
    return shown + (" …" if len(data) > 24 else "")


def _parse_short(buf: bytes) -> Frame | None:
    control = _CONTROL_BY_NIBBLE.get(buf[1] >> 4)
    if control is None or control is ControlCode.DATA or not is_pump_address(buf[0]):
        return None
    return Frame(buf[0], control, buf[1] & 0x0F)


def _parse_exact(buf: bytes) -> Frame | FramingError | None:
    """`buf` (unescaped, without the final 0xFA) as exactly one frame; None if it is not one.

    A FramingError comes back when the CRC matches but the transactions do not add up: the
    frame is where it claims to be, its content is broken.
    """
    if len(buf) == 2:
        return _parse_short(buf)
    if len(buf) < 5 or buf[-1] != ETX or not is_pump_address(buf[0]):
        return None
    if buf[1] >> 4 != _DATA_NIBBLE or crc16_arc(buf[:-3]) != buf[-3] | (buf[-2] << 8):
        return None
    transactions = _split_transactions(buf[2:-3])
    if transactions is None:
        return FramingError(f"transaction lengths do not add up: {_hex(buf)}")
    return Frame(buf[0], ControlCode.DATA, buf[1] & 0x0F, transactions)


def _classify(buf: bytes, *, complete: bool) -> FramingError:
    if not buf:
        return FramingError("stray 0xFA between frames")
    if not is_pump_address(buf[0]):
        return FramingError(f"noise: {_hex(buf)}")
    if complete and len(buf) >= 5 and buf[-1] == ETX and buf[1] >> 4 == _DATA_NIBBLE:
        return CrcError(f"CRC mismatch: {_hex(buf)}")
    return TruncatedFrame(f"incomplete frame: {_hex(buf)}")


class DartFramer:
    """Stateful splitter for one byte stream; feed it whatever the link returned."""

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._max = max_frame_bytes
        self._buf = bytearray()  # unescaped bytes since the last boundary
        self._dle_pending = False
        self._oversized = False

    encode = staticmethod(encode)

    def reset(self) -> None:
        self._buf.clear()
        self._dle_pending = False
        self._oversized = False

    def feed(self, data: bytes) -> list[Frame | FramingError]:
        out: list[Frame | FramingError] = []
        for byte in data:
            if self._dle_pending:
                self._dle_pending = False
                if byte == SF:
                    self._append(SF, out)
                    continue
                self._append(DLE, out)
            if byte == DLE:
                self._dle_pending = True
            elif byte == SF:
                out.extend(self._boundary())
            else:
                self._append(byte, out)
        return out

    def _append(self, byte: int, out: list[Frame | FramingError]) -> None:
        self._buf.append(byte)
        if len(self._buf) <= self._max:
            return
        if not self._oversized:
            out.append(OversizedFrame(f"no frame end within {self._max} bytes"))
            self._oversized = True
        starts = (i for i in range(1, len(self._buf)) if _looks_like_start(self._buf, i))
        del self._buf[: next(starts, len(self._buf))]

    def _boundary(self) -> list[Frame | FramingError]:
        """An unescaped 0xFA: the bytes before it are one frame, or noise and then a frame.

        The shortest valid tail wins. With CRC-16/ARC a complete frame that lost only its
        `03 FA`, followed by another frame, checks as one long frame (the first frame's CRC
        bytes zero the running CRC), so the longer reading is the suspicious one.
        """
        buf = bytes(self._buf)
        self._buf.clear()
        reported, self._oversized = self._oversized, False
        for start in self._tail_candidates(buf):
            found = _parse_exact(buf[start:])
            if isinstance(found, Frame):
                junk = [] if reported else [_classify(buf[:start], complete=False)]
                return [*junk, found]
        whole = _parse_exact(buf)
        if whole is not None:
            return [whole]
        return [] if reported else [_classify(buf, complete=True)]

    @staticmethod
    def _tail_candidates(buf: bytes) -> list[int]:
        """Where a frame ending here could start, after position 0, latest first."""
        if len(buf) > 2 and buf[-1] != ETX:
            return [len(buf) - 2]
        return [
            i
            for i in range(len(buf) - 5, 0, -1)
            if is_pump_address(buf[i]) and buf[i + 1] >> 4 == _DATA_NIBBLE
        ]
