"""The benchmark table: RESULT figures become rows with targets, ratios and verdicts.

Pure (no I/O): `run_all.py` runs the benchmarks and reads their records; this turns
figures into rows and rows into text or Markdown, so both can be tested without running
a benchmark.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "HEADER",
    "NO_FIGURE",
    "QUICK_MARK",
    "QUICK_NOTE",
    "TEXT_WIDTH",
    "RecordError",
    "Row",
    "Target",
    "failed_row",
    "figure_row",
    "format_ratio",
    "format_value",
    "number",
    "render_markdown",
    "render_text",
    "wrap",
]

QUICK_MARK = "*"
QUICK_NOTE = f"{QUICK_MARK} quick run: small sizes; the targets are defined at the full sizes."
NO_FIGURE = "—"
TEXT_WIDTH = 110


class RecordError(ValueError):
    """A RESULT record that lacks what its rows need: the script and this file disagree."""


@dataclass(frozen=True)
class Target:
    """One bound on a row's value, or on its ratio to the in-run baseline."""

    on: Literal["value", "ratio"]
    op: Literal["<", ">="]
    bound: float

    def met(self, value: float, ratio: float | None) -> bool:
        subject = value if self.on == "value" else ratio
        if subject is None:
            raise RecordError("a ratio target needs a baseline")
        return subject < self.bound if self.op == "<" else subject >= self.bound

    def text(self, unit: str) -> str:
        if self.on == "ratio":
            return f"ratio {self.op} {self.bound:g}"
        bound = f"{self.bound:,g}"
        return f"{self.op} {bound}/s" if unit == "/s" else f"{self.op} {bound} {unit}"


@dataclass(frozen=True)
class Row:
    """One line of the table; `value`, `baseline` and `ratio` are None on a failed row."""

    benchmark: str
    figure: str
    value: float | None
    unit: str
    targets: tuple[Target, ...]
    baseline: float | None
    ratio: float | None
    verdict: Literal["pass", "short", "info", "failed"]
    quick: bool
    detail: str = ""

    def cells(self) -> tuple[str, str, str, str, str, str, str]:
        """benchmark, figure, value, target, baseline, ratio, verdict as printed."""
        verdict: str = self.verdict
        if self.quick and verdict in ("pass", "short"):
            verdict += QUICK_MARK
        return (
            self.benchmark,
            self.figure,
            NO_FIGURE if self.value is None else format_value(self.value, self.unit),
            "; ".join(target.text(self.unit) for target in self.targets) or NO_FIGURE,
            NO_FIGURE if self.baseline is None else format_value(self.baseline, self.unit),
            NO_FIGURE if self.ratio is None else format_ratio(self.ratio),
            verdict,
        )


HEADER = ("benchmark", "figure", "value", "target", "baseline", "ratio", "verdict")
RIGHT_ALIGNED = {2, 4, 5}


def format_value(value: float, unit: str) -> str:
    if unit == "/s":
        return f"{value:,.0f}/s" if value >= 100 else f"{value:,.1f}/s"
    if value >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:.1f} {unit}" if value >= 10 else f"{value:.2f} {unit}"


def format_ratio(ratio: float) -> str:
    return f"{ratio:.3f}" if ratio < 10 else f"{ratio:,.1f}"


def number(record: Mapping[str, Any], key: str) -> float:
    """A finite number from a RESULT record, or RecordError naming the key."""
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RecordError(f"RESULT has no number at {key!r} (got {value!r})")
    return float(value)


def figure_row(
    benchmark: str,
    figure: str,
    value: float,
    unit: str,
    targets: Sequence[Target],
    baseline: float | None,
    quick: bool,
) -> Row:
    """A row with its ratio (value / baseline) and verdict worked out from its targets."""
    ratio = value / baseline if baseline else None
    if not targets:
        verdict: Literal["pass", "short", "info"] = "info"
    else:
        verdict = "pass" if all(t.met(value, ratio) for t in targets) else "short"
    return Row(benchmark, figure, value, unit, tuple(targets), baseline, ratio, verdict, quick)


def failed_row(benchmark: str, reason: str, detail: str) -> Row:
    return Row(benchmark, reason, None, "", (), None, None, "failed", False, detail)


def _widths(lines: Sequence[Sequence[str]]) -> list[int]:
    return [max(len(line[i]) for line in lines) for i in range(len(HEADER))]


def render_text(rows: Sequence[Row]) -> str:
    """The plain table: columns padded, numbers right-aligned."""
    lines = [HEADER, *(row.cells() for row in rows)]
    widths = _widths(lines)
    out = []
    for line in lines:
        cells = [
            cell.rjust(width) if i in RIGHT_ALIGNED else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("*", "\\*")


def render_markdown(rows: Sequence[Row]) -> str:
    """The same table in Markdown, for the README."""
    align = ["---:" if i in RIGHT_ALIGNED else "---" for i in range(len(HEADER))]
    lines = [HEADER, align, *(row.cells() for row in rows)]
    return "\n".join("| " + " | ".join(_md_cell(c) for c in line) + " |" for line in lines)


def wrap(lines: Sequence[str]) -> str:
    """Plain-text lines folded to the table's width; a benchmark's own output is kept."""
    out: list[str] = []
    for line in lines:
        if line.startswith("    ") or len(line) <= TEXT_WIDTH:
            out.append(line)
        else:
            indent = " " * (len(line) - len(line.lstrip()) + 4)
            out += textwrap.wrap(line, TEXT_WIDTH, subsequent_indent=indent)
    return "\n".join(out)
