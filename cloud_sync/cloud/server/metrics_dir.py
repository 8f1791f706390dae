"""prometheus_client's multiprocess mode for the cloud's worker processes.

Each worker writes its metrics to files in one directory (`PROMETHEUS_MULTIPROC_DIR`), which
/metrics sums. The directory must start empty (files of an earlier run would be counted
again) and private (it sits in the data folder), and a dead worker's live gauges must be
dropped (`mark_process_dead`), which the supervisor does for every worker that ends.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["MULTIPROC_ENV", "mark_worker_dead", "prepare_multiproc_dir"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_FOLDER = "metrics"


def prepare_multiproc_dir(data_dir: Path) -> Path:
    """`data_dir/metrics`, created 0700 and emptied of an earlier run's files."""
    path = data_dir / _FOLDER
    path.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    return path


def mark_worker_dead(pid: int, path: Path) -> None:
    """Drop a dead worker's live gauges; its counters and histograms keep counting."""
    from prometheus_client import multiprocess  # noqa: PLC0415 - only the supervisor needs it

    multiprocess.mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]
