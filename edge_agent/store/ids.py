"""Time-ordered identifiers (UUID version 7, RFC 9562).

Event and sale ids sort by creation time, which keeps indexes compact and makes a log
readable, while the random bits keep ids from two stations apart without coordination.
Within one process ids are strictly increasing even inside one millisecond (RFC 9562
method 1: the 12-bit `rand_a` field is a counter), and a clock stepping backwards never
produces an id that sorts before an earlier one.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

__all__ = ["uuid7"]

_COUNTER_MAX = (1 << 12) - 1
_lock = threading.Lock()
_last_ms = -1
_last_counter = 0


def _next_stamp(now_ms: int) -> tuple[int, int]:
    global _last_ms, _last_counter  # noqa: PLW0603 - process-wide monotonic state by design
    with _lock:
        if now_ms > _last_ms:
            _last_ms, _last_counter = now_ms, int.from_bytes(os.urandom(2), "big") & 0x3FF
        elif _last_counter < _COUNTER_MAX:
            _last_counter += 1
        else:
            _last_ms, _last_counter = _last_ms + 1, 0
        return _last_ms, _last_counter


def uuid7(now_ms: int | None = None) -> str:
    ms, counter = _next_stamp(time.time_ns() // 1_000_000 if now_ms is None else now_ms)
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= counter << 64
    value |= 0b10 << 62
    value |= rand_b
    return str(uuid.UUID(int=value))
