"""Retry delays, written once: exponential growth to a cap, with full jitter.

The one schedule every retry loop of the project uses: the station's sync engine, the
daemon's driver supervisor, and (handed to them by the daemon) both forecourt drivers'
reconnect loops and the DART sale hand-off. Pure: no clock, no sleeping, and the random
source is a parameter, so a test can pin every delay.

`drivers` may import neither `cloud_sync` nor `edge_agent` (the import-linter contracts),
so the drivers do not import this module: they take a `Callable[[int], float]` from
whoever builds them, and the daemon passes `schedule(...)`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial

__all__ = ["full_jitter", "schedule"]

_MAX_EXPONENT = 64  # 2.0 ** 1024 overflows a float; every cap is reached long before


def full_jitter(
    attempt: int,
    *,
    base_s: float,
    cap_s: float,
    factor: float = 2.0,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number `attempt` (1 for the first retry).

    Uniform in [0, min(cap_s, base_s * factor ** (attempt - 1))): the ceiling doubles (by
    default) from `base_s` up to `cap_s`, and the wait is drawn below it ("full jitter"),
    so many clients that failed together do not retry together. An `attempt` below 1
    counts as 1. `rng` returns a float in [0, 1), like `random.random`.
    """
    if base_s <= 0 or cap_s <= 0 or factor < 1:
        raise ValueError("base_s and cap_s must be positive and factor at least 1")
    exponent = min(max(attempt, 1) - 1, _MAX_EXPONENT)
    return rng() * min(cap_s, base_s * factor**exponent)


def schedule(
    *,
    base_s: float,
    cap_s: float,
    factor: float = 2.0,
    rng: Callable[[], float] | None = None,
) -> Callable[[int], float]:
    """`full_jitter` with its parameters bound: attempt number in, seconds out."""
    if base_s <= 0 or cap_s <= 0 or factor < 1:
        raise ValueError("base_s and cap_s must be positive and factor at least 1")
    draw = rng if rng is not None else random.random
    return partial(full_jitter, base_s=base_s, cap_s=cap_s, factor=factor, rng=draw)
