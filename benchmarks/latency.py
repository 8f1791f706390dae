"""Latency figures from nanosecond samples: nearest-rank percentiles, in milliseconds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["NS_PER_MS", "Latency", "percentile"]

NS_PER_MS = 1_000_000


def percentile(ordered: Sequence[int], fraction: float) -> int:
    """Nearest-rank percentile of an ascending, non-empty sequence."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Latency:
    """Latency figures in milliseconds from a list of nanosecond samples."""

    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, samples_ns: Sequence[int]) -> Latency:
        ordered = sorted(samples_ns)
        return cls(
            count=len(ordered),
            p50_ms=percentile(ordered, 0.50) / NS_PER_MS,
            p99_ms=percentile(ordered, 0.99) / NS_PER_MS,
            max_ms=ordered[-1] / NS_PER_MS,
        )
