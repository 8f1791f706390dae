"""The import-linter contracts in pyproject.toml hold, and each one catches the wrong import
it exists for: a copy of the packages with one bad module added must fail `lint-imports`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import PROJECT_ROOT

LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))
PACKAGES = ("edge_agent", "cloud_sync", "drivers")

# (where the bad module goes, what it imports, the contract that must break)
WRONG = [
    ("drivers/bad_probe.py", "import edge_agent.store", "drivers are a protocol library"),
    ("cloud_sync/core/bad_probe.py", "import sqlalchemy", "the shared core is pure"),
    ("cloud_sync/core/bad_probe.py", "import cloud_sync.cloud.ledger", "the shared core is pure"),
    (
        "cloud_sync/station/bad_probe.py",
        "import cloud_sync.cloud.server",
        "the station's sync client never imports the cloud service",
    ),
    (
        "cloud_sync/cloud/ledger/bad_probe.py",
        "import cloud_sync.cloud.server",
        "the ledger is a library",
    ),
    ("cloud_sync/cloud/bad_probe.py", "import edge_agent", "cloud_sync never imports the station"),
    (
        "edge_agent/web/bad_probe.py",
        "from edge_agent.store import sales",
        "entry points go through services",
    ),
    (
        "edge_agent/services/bad_probe.py",
        "import cloud_sync.cloud.ledger",
        "the station runs without the cloud service",
    ),
    ("edge_agent/services/bad_probe.py", "import edge_agent.web", "station layers flow one way"),
]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three packages and pyproject.toml, copied: the probes never touch the real tree."""
    root = tmp_path_factory.mktemp("contracts")
    for package in PACKAGES:
        shutil.copytree(
            PROJECT_ROOT / package,
            root / package,
            ignore=shutil.ignore_patterns("__pycache__", "static", "templates"),
        )
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "COLUMNS": "400"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_tree_keeps_every_contract(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.split("Contracts:")[-1].split(",")[0]


@pytest.mark.parametrize(("where", "statement", "contract"), WRONG)
def test_a_wrong_import_breaks_its_contract(
    tree: Path, where: str, statement: str, contract: str
) -> None:
    probe = tree / where
    probe.write_text(f"{statement}  # a deliberately wrong import\n", encoding="utf-8")
    try:
        result = _lint(tree)
    finally:
        probe.unlink()
    assert result.returncode != 0, result.stdout
    assert _verdict(result.stdout, contract) == "BROKEN", result.stdout


def _verdict(output: str, contract: str) -> str:
    """KEPT or BROKEN, as the report says of the contract whose name starts so."""
    flat = " ".join(output.split())
    at = flat.index(contract)
    kept, broken = flat.find(" KEPT", at), flat.find(" BROKEN", at)
    if broken >= 0 and (kept < 0 or broken < kept):
        return "BROKEN"
    return "KEPT"
