"""Files private by default (issue 13): the station's and the cloud's data folders are 0700 and
every file in them 0600 whatever the umask, and the daemons refuse a folder others can open.

Real processes: the CLI runs under `umask 022` (the usual one) and `umask 002` (a shared
group's), as a subprocess.
"""

from __future__ import annotations

import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support import free_port

LOYALPUMP = str(Path(sys.executable).with_name("loyalpump"))
UMASKS = [0o022, 0o002]


def _under(umask: int, *args: str) -> list[str]:
    """`loyalpump args…` run by a shell that set `umask` first."""
    return ["sh", "-c", f'umask {umask:03o}; exec "$0" "$@"', LOYALPUMP, *args]


def _run(umask: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _under(umask, *args), capture_output=True, text=True, timeout=60, check=False
    )


def _modes(folder: Path) -> dict[str, str]:
    """Every path under `folder` (itself included) with its permission bits, in octal."""
    found = {".": oct(stat.S_IMODE(folder.stat().st_mode))}
    for path in sorted(folder.rglob("*")):
        found[str(path.relative_to(folder))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


def _assert_private(folder: Path, expected: set[str]) -> None:
    modes = _modes(folder)
    assert expected <= set(modes), modes
    for name, mode in modes.items():
        wanted = "0o700" if (folder / name).is_dir() else "0o600"
        assert mode == wanted, (name, modes)


def _station_config(tmp_path: Path) -> tuple[Path, int]:
    port = free_port()
    config = tmp_path / "station.toml"
    config.write_text(
        f'[station]\nid = "S001"\ndata_dir = "data"\n[web]\nport = {port}\n', encoding="utf-8"
    )
    return config, port


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.mark.parametrize("umask", UMASKS, ids=lambda m: f"umask{m:03o}")
def test_the_station_keeps_its_files_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    config, port = _station_config(tmp_path)
    user = ("--name", "ann", "--role", "cashier", "--pin", "2468")
    for args in (
        ("edge", "init", "-c", str(config)),
        ("edge", "user", "add", "-c", str(config), *user),
        ("edge", "backup", "-c", str(config)),
    ):
        done = _run(umask, *args)
        assert done.returncode == 0, done.stderr
    agent = subprocess.Popen(
        _under(umask, "edge", "run", "-c", str(config), "--log-format", "text"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert agent.poll() is None, "edge run stopped"
            try:
                login = httpx.post(
                    f"http://127.0.0.1:{port}/api/v1/login",
                    json={"name": "ann", "pin": "2468"},
                    timeout=5,
                )
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "edge run never answered"
                time.sleep(0.1)
        assert login.status_code == 200
        data = tmp_path / "data"
        expected = {".", "station.sqlite3", "station.sqlite3-wal", "station.sqlite3-shm"}
        _assert_private(data, expected | {"keys", "keys/member-keys.json", "agent.lock"})
    finally:
        _stop(agent)
    _assert_private(tmp_path / "data", {"backups"})
    assert list((tmp_path / "data" / "backups").iterdir())


def test_edge_init_tightens_a_store_an_older_version_left_open(tmp_path: Path) -> None:
    config, _ = _station_config(tmp_path)
    assert _run(0o022, "edge", "init", "-c", str(config)).returncode == 0
    data = tmp_path / "data"
    data.chmod(0o755)
    (data / "station.sqlite3").chmod(0o644)
    done = _run(0o022, "edge", "init", "-c", str(config))
    assert done.returncode == 0, done.stderr
    _assert_private(data, {".", "station.sqlite3"})


@pytest.mark.parametrize("mode", [0o750, 0o705, 0o755, 0o770])
def test_edge_run_refuses_a_data_folder_others_can_open(tmp_path: Path, mode: int) -> None:
    config, _ = _station_config(tmp_path)
    assert _run(0o022, "edge", "init", "-c", str(config)).returncode == 0
    (tmp_path / "data").chmod(mode)
    result = _run(0o077, "edge", "run", "-c", str(config), "--log-format", "json")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert f"chmod 700 {tmp_path / 'data'}" in line
    assert "Traceback" not in result.stdout
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == mode  # left as it was


def _cloud_config(tmp_path: Path) -> tuple[Path, int]:
    port = free_port()
    config = tmp_path / "cloud.toml"
    config.write_text(
        f'[cloud]\ndata_dir = "cloud"\nhost = "127.0.0.1"\nport = {port}\n'
        'admin_token = "an-admin-token-for-the-file-mode-test"\n',
        encoding="utf-8",
    )
    return config, port


@pytest.mark.parametrize("umask", UMASKS, ids=lambda m: f"umask{m:03o}")
def test_the_cloud_keeps_its_files_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    config, port = _cloud_config(tmp_path)
    cloud = subprocess.Popen(
        _under(umask, "cloud", "run", "--config", str(config)),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert cloud.stdout is not None
        line = cloud.stdout.readline()
        assert f"127.0.0.1:{port}" in line, line
        stations = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/stations",
            headers={"Authorization": "Bearer an-admin-token-for-the-file-mode-test"},
            timeout=5,
        )
        assert stations.status_code < 500
        expected = {".", "cloud.sqlite3", "cloud.sqlite3-wal", "cloud.sqlite3-shm"}
        _assert_private(tmp_path / "cloud", expected | {"member-keys.json", "signing-key.pem"})
    finally:
        _stop(cloud)


def test_cloud_run_refuses_a_data_folder_others_can_open(tmp_path: Path) -> None:
    config, _ = _cloud_config(tmp_path)
    (tmp_path / "cloud").mkdir(mode=0o755)
    (tmp_path / "cloud").chmod(0o755)
    result = _run(0o022, "cloud", "run", "--config", str(config))
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert f"chmod 700 {tmp_path / 'cloud'}" in line
    assert not (tmp_path / "cloud" / "cloud.sqlite3").exists()  # refused before any work
