"""cloud_ingest's measurements beside the load: CPU seconds from /proc.

Everything shares two cores, so the split of CPU between the load generators, the cloud and
PostgreSQL says how much of the machine the cloud actually had.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = [
    "CpuWatch",
    "machine_busy_s",
    "process_cpu_s",
    "tree_pids",
]

_TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # fields from the state on (the name may hold ")")


def process_cpu_s(pid: int) -> float | None:
    """User + system seconds of one process (all its threads); None once it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime: fields 14 and 15


def tree_pids(root: int) -> list[int]:
    """`root` and its descendants (the cloud's worker processes, when it has any)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def machine_busy_s() -> float:
    """Seconds of CPU the whole machine spent not idle (every core, every process)."""
    first = Path("/proc/stat").read_text(encoding="utf-8").splitlines()[0].split()[1:]
    ticks = [int(value) for value in first]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / _TICK


class CpuWatch:
    """Samples the CPU seconds of groups of processes every `interval` s while it runs, so a
    process that ends during the run (a pooled PostgreSQL backend closed) still counts up
    to its last sample. Each group is a function giving its current pids."""

    def __init__(self, groups: dict[str, Callable[[], Iterable[int]]], interval: float) -> None:
        self._groups = groups
        self._interval = interval
        self._first: dict[tuple[str, int], float] = {}
        self._last: dict[tuple[str, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-watch", daemon=True)
        self._busy = 0.0

    def _sample(self) -> None:
        for name, pids in self._groups.items():
            try:
                current = list(pids())
            except Exception:  # a lost sample is a smaller figure, not a crash
                continue
            for pid in current:
                seconds = process_cpu_s(pid)
                if seconds is not None:
                    self._first.setdefault((name, pid), seconds)
                    self._last[(name, pid)] = seconds

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def start(self) -> None:
        self._sample()
        self._busy = machine_busy_s()
        self._thread.start()

    def stop(self) -> dict[str, float]:
        """CPU seconds per group since start, and the machine's busy seconds (`machine`)."""
        self._stop.set()
        self._thread.join()
        self._sample()
        out = dict.fromkeys(self._groups, 0.0)
        for (name, pid), last in self._last.items():
            out[name] += last - self._first[(name, pid)]
        out["machine"] = machine_busy_s() - self._busy
        return {name: round(value, 2) for name, value in out.items()}
