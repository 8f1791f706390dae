"""How many processes serve, the [cloud] serving keys, and the workers' metrics folder."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from cloud_sync.cloud.server.metrics import prepare_multiprocess_dir
from cloud_sync.cloud.server.settings import CloudConfigError, CloudSettings
from cloud_sync.cloud.server.supervisor import cores, worker_count

PG = "postgresql://loyalpump@db.example/chain"


def _settings(tmp_path: Path, database_url: str = "", **cloud: int) -> CloudSettings:
    return CloudSettings.model_validate(
        {"cloud": {"data_dir": str(tmp_path), "database_url": database_url, **cloud}}
    )


def test_postgresql_serves_one_worker_per_core_unless_told(tmp_path: Path) -> None:
    assert worker_count(None, _settings(tmp_path, PG), 8) == (8, None)
    assert worker_count(None, _settings(tmp_path, PG, workers=3), 8) == (3, None)
    assert worker_count(2, _settings(tmp_path, PG, workers=3), 8) == (2, None)  # CLI wins
    assert worker_count(0, _settings(tmp_path, PG, workers=3), 8) == (8, None)
    assert cores() >= 1


def test_sqlite_serves_from_one_process_and_says_so(tmp_path: Path) -> None:
    count, note = worker_count(None, _settings(tmp_path), 8)
    assert count == 1 and note is not None and "SQLite" in note
    assert worker_count(1, _settings(tmp_path), 8) == (1, None)


@pytest.mark.parametrize(
    ("requested", "configured", "named"), [(2, 0, "--workers"), (None, 4, "cloud.workers")]
)
def test_sqlite_refuses_more_workers_asked_for_explicitly(
    tmp_path: Path, requested: int | None, configured: int, named: str
) -> None:
    with pytest.raises(CloudConfigError, match=named):
        worker_count(requested, _settings(tmp_path, workers=configured), 8)


@pytest.mark.parametrize(
    "bad", [{"workers": -1}, {"workers": 65}, {"pool_size": 0}, {"max_overflow": -1}]
)
def test_serving_keys_are_bounded(tmp_path: Path, bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        _settings(tmp_path, PG, **bad)


def test_the_metrics_folder_starts_private_and_empty(tmp_path: Path) -> None:
    old = tmp_path / "metrics"
    old.mkdir(mode=0o755)
    (old / "counter_123.db").write_bytes(b"stale")
    (old / "keep.txt").write_text("not ours")
    path = prepare_multiprocess_dir(tmp_path / "metrics")
    assert path == old
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert sorted(p.name for p in path.iterdir()) == ["keep.txt"]
