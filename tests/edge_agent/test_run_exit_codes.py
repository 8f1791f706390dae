"""How `edge run` tells systemd whether to try again: exit 75 for a store another loyalpump
process holds for a moment, exit 2 for a refusal only a person can lift (the unit sets
RestartPreventExitStatus=2), so a bad config never restarts every few seconds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edge_agent.store.lock import AgentLock

LOYALPUMP = str(Path(sys.executable).with_name("loyalpump"))


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "station.toml"
    path.write_text(
        f'[station]\nid = "S001"\ndata_dir = "data"\n[web]\nport = 65000\n{extra}', encoding="utf-8"
    )
    init = subprocess.run(
        [LOYALPUMP, "edge", "init", "--config", str(path)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    return path  # the web port is never bound: both refusals come before the page starts


def _run(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOYALPUMP, "edge", "run", "--config", str(config), "--log-format", "text"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_store_held_by_another_loyalpump_process_exits_75_to_be_retried(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    with AgentLock(tmp_path / "data"):
        result = _run(config)
    assert result.returncode == 75, result.stderr
    assert "in use by loyalpump" in result.stderr + result.stdout


def test_a_refusal_a_person_must_lift_exits_2(tmp_path: Path) -> None:
    config = _config(tmp_path)
    config.write_text(config.read_text(encoding="utf-8").replace('"S001"', '"S002"'), "utf-8")
    result = _run(config)  # the store belongs to S001: a config mistake, not a hiccup
    assert result.returncode == 2, result.stderr
    assert "belongs to station S001" in result.stderr + result.stdout
