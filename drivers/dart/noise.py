"""Line noise for the simulators: the kinds of damage an RS-485 bus really shows.

Garbage bytes (bus turnaround, never an address byte so that noise cannot pose as a pump),
a copy of a frame with a broken CRC, a frame cut short; always in addition to the good frame,
never instead of it, so that a correct driver must still see every sale exactly once.
"""

from __future__ import annotations

import random

from .crc import crc16_arc
from .framer import ETX, SF, Frame, encode, is_pump_address

__all__ = ["LineNoise"]

_GARBAGE = bytes(b for b in range(256) if not is_pump_address(b))


class LineNoise:
    """Decides, with probability `level` per frame, to surround a good frame with noise."""

    def __init__(self, level: float, rng: random.Random) -> None:
        if not 0.0 <= level <= 1.0:
            raise ValueError(f"noise level {level} outside 0-1")
        self.level = level
        self._rng = rng

    def hit(self, scale: float = 1.0) -> bool:
        return self.level > 0 and self._rng.random() < self.level * scale

    def garbage(self) -> bytes:
        return bytes(self._rng.choice(_GARBAGE) for _ in range(self._rng.randint(1, 8)))

    def wrap(self, frame: Frame) -> bytes:
        """The wire bytes of `frame`, maybe with noise before or after it."""
        good = encode(frame)
        if not self.hit():
            return good
        kind = self._rng.randrange(4)
        if kind == 0:
            return self.garbage() + good
        if kind == 1:
            return good + self.garbage()
        if kind == 2 and frame.is_data:
            return bad_crc(frame) + good
        return good[: self._rng.randint(1, len(good) - 2)] + good


def bad_crc(frame: Frame) -> bytes:
    """`frame` as it would arrive with one bit flipped in its CRC."""
    wire = encode(frame)
    head = wire[:2]
    payload = b"".join(bytes((trans, len(data))) + data for trans, data in frame.transactions)
    crc = crc16_arc(head + payload) ^ 0x0001
    body = payload + bytes((crc & 0xFF, crc >> 8))
    return head + body.replace(bytes((SF,)), bytes((0x10, SF))) + bytes((ETX, SF))
