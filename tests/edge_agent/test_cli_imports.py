"""`loyalpump` starts fast because it loads only what a command runs.

Every script and cashier-side helper pays the CLI's start-up: the command modules import
their services inside the commands, so importing the CLI, printing its help or looking a
member up never loads the web stack (FastAPI, Starlette, uvicorn), SQLAlchemy, the station
daemon or the cloud ledger/server. Each check runs a fresh interpreter with
`-X importtime` and reads back every module it imported. No timing here: the start-up
time is a figure of benchmarks/cli_start.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.services.members import register_member
from edge_agent.services.station import open_station
from edge_agent.settings import load_settings

FORBIDDEN = (
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "edge_agent.daemon",
    "edge_agent.web",
    "cloud_sync.cloud.ledger",
    "cloud_sync.cloud.server",
)


def imported_modules(code: str, *, expect_exit: int = 0) -> set[str]:
    """Every module a fresh `python -X importtime -c CODE` imported, by name."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == expect_exit, result.stderr[-2000:]
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    assert "typer" in modules, "no importtime output read: the check would prove nothing"
    return modules


def forbidden(modules: set[str]) -> list[str]:
    return sorted(
        name for name in modules if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    )


@pytest.mark.parametrize("module", ["edge_agent.cli", "cloud_sync.cloud.cli"])
def test_importing_the_cli_loads_no_service(module: str) -> None:
    assert forbidden(imported_modules(f"import {module}")) == []


@pytest.mark.parametrize("args", [["--help"], ["edge", "--help"], ["cloud", "--help"]])
def test_help_loads_no_service(args: list[str]) -> None:
    code = f"from edge_agent.cli import main\nmain({args!r})"
    assert forbidden(imported_modules(code)) == []


def test_a_member_look_up_loads_no_service(tmp_path: Path) -> None:
    config = tmp_path / "station.toml"
    config.write_text(
        '[station]\nid = "S001"\ndata_dir = "data"\ntimezone = "Asia/Shanghai"\n',
        encoding="utf-8",
    )
    station = open_station(load_settings(config), create=True)
    try:
        register_member(
            station, phone="13900139000", consent_channel="cli", actor="test", plates=[]
        )
    finally:
        station.close()
    code = (
        "from edge_agent.cli import main\n"
        f"main(['edge', 'member', 'show', '-c', {str(config)!r}, '--phone', '13900139000'])"
    )
    modules = imported_modules(code)
    assert "edge_agent.services.members" in modules  # it did look the member up
    assert forbidden(modules) == []


def test_the_check_sees_a_forbidden_import() -> None:
    """The guard itself: a command that does load the web app is caught."""
    modules = imported_modules("import typer, edge_agent.web.app")
    assert "fastapi" in forbidden(modules)
    assert "edge_agent.web.app" in forbidden(modules)
