"""The README's commands for the soak and the benchmarks name only options that exist.

Each README line that runs `python -m tests.soak` or `benchmarks/<script>.py` is checked
against that command's own `--help`, so the docs cannot drift from the code unnoticed. The
`loyalpump …` commands of the README's tables, code blocks and inline code are checked
against the program's command tree in `tests/test_docs.py` (every command shown exists with
every option shown, and every command of the program is shown).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
COMMANDS = {
    "python -m tests.soak": [sys.executable, "-m", "tests.soak", "--help"],
    "benchmarks/run_all.py": [sys.executable, "benchmarks/run_all.py", "--help"],
    "benchmarks/sync_catchup.py": [sys.executable, "benchmarks/sync_catchup.py", "--help"],
    "benchmarks/driver_latency.py": [sys.executable, "benchmarks/driver_latency.py", "--help"],
    "benchmarks/edge_accrual.py": [sys.executable, "benchmarks/edge_accrual.py", "--help"],
    "benchmarks/cashier_lookup.py": [sys.executable, "benchmarks/cashier_lookup.py", "--help"],
}


def _options_in_readme(command: str) -> set[str]:
    found: set[str] = set()
    for line in README.splitlines():
        at = line.find(command)
        if at >= 0:
            found |= set(re.findall(r"(--[a-z][a-z-]*)", line[at + len(command) :]))
    return found


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_the_readme_shows_exists(command: str) -> None:
    shown = _options_in_readme(command)
    assert shown or command.startswith("benchmarks/"), f"the README never shows {command}"
    if not shown:
        return
    result = subprocess.run(
        COMMANDS[command], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    missing = sorted(option for option in shown if option not in result.stdout)
    assert not missing, f"{command}: the README shows {missing}, --help does not know them"
