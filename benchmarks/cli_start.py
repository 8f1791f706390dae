"""CLI start-up: the whole `loyalpump` process, from exec to exit, as a script or helper sees it.

Every script and cashier-side helper pays the command's start-up, so this times whole
processes: `loyalpump --help`, and `loyalpump edge member show --phone …` against a small
station store it creates first in a temporary directory through the station's own services
(`open_station`, `install_ruleset`, `register_member`). Each command runs --runs times
(after one untimed warm-up that also byte-compiles), interleaved with the in-run baseline:
`python -c pass` with the same interpreter, the floor any Python command pays on this
machine at this moment. Reports the minimum and the median wall time of each, the ratio
median / baseline median, and each one's median CPU time (user + system), which other work
on the machine moves less than the wall time. Target: `loyalpump --help` median wall time
under 300 ms.

    .venv/bin/python benchmarks/cli_start.py [--runs 15] [--members 200]

The figures are printed as a table, then as one line `RESULT {json}` for run_all.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.members_at_scale import phone_of, positive_int
from edge_agent.services.members import register_member
from edge_agent.services.rules import install_ruleset
from edge_agent.services.station import open_station
from edge_agent.settings import load_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RULESET_FILE = PROJECT_ROOT / "config" / "rulesets" / "field-examples.json"
TARGET_HELP_MS = 300.0
PHONE_PREFIX = "137"


def loyalpump_command() -> list[str]:
    """The installed console script beside this interpreter (what a user runs)."""
    script = Path(sys.executable).with_name("loyalpump")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from edge_agent.cli import main; main()"]


def child_env(pycache: Path) -> dict[str, str]:
    """This checkout first on the path, so the processes run the code under test; byte code
    cached (in the temporary directory, not the checkout) as in an installed package, even
    where PYTHONDONTWRITEBYTECODE is set: compiling every module on each start is not what
    a station pays."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if part
    )
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def make_store(work: Path, members: int) -> tuple[Path, str]:
    """A station store with `members` members; its station.toml and one member's phone."""
    config = work / "station.toml"
    config.write_text(
        f'[station]\nid = "S001"\ndata_dir = "{work / "data"}"\ntimezone = "Asia/Shanghai"\n',
        encoding="utf-8",
    )
    station = open_station(load_settings(config), create=True)
    try:
        install_ruleset(station, RULESET_FILE.read_bytes(), actor="bench")
        for number in range(members):
            register_member(
                station, phone=phone_of(PHONE_PREFIX, number), consent_channel="cli", actor="bench"
            )
    finally:
        station.close()
    return config, phone_of(PHONE_PREFIX, members // 2)


def _cpu_s() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def timed(command: Sequence[str], env: dict[str, str]) -> tuple[float, float]:
    """One whole process, exec to exit: (wall ms, its CPU ms, user + system); a failed
    command stops the benchmark. The CPU time barely moves when other work shares the
    cores, so it says what the command costs even on a busy machine."""
    cpu = _cpu_s()
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    elapsed = (time.perf_counter() - started) * 1000
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {result.returncode}: {result.stderr}")
    return elapsed, (_cpu_s() - cpu) * 1000


def summary(samples: Sequence[tuple[float, float]]) -> dict[str, float]:
    walls = [wall for wall, _ in samples]
    return {
        "min_ms": round(min(walls), 2),
        "median_ms": round(statistics.median(walls), 2),
        "cpu_median_ms": round(statistics.median(cpu for _, cpu in samples), 2),
    }


def run(runs: int, members: int) -> dict[str, Any]:
    load_start = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="lp-cli-start-"))
    try:
        config, phone = make_store(work, members)
        cli, env = loyalpump_command(), child_env(work / "pycache")
        commands = {
            "baseline": [sys.executable, "-c", "pass"],
            "help": [*cli, "--help"],
            "show": [*cli, "edge", "member", "show", "-c", str(config), "--phone", phone],
        }
        shown = subprocess.run(
            [*commands["show"], "--json"], capture_output=True, text=True, env=env, check=False
        )
        if shown.returncode != 0 or phone[-4:] not in shown.stdout:
            raise SystemExit(f"member show did not find the member: {shown.stderr}")
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(runs + 1):  # the first round warms the page cache, untimed
            for name, command in commands.items():
                samples[name].append(timed(command, env))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures = {name: summary(values[1:]) for name, values in samples.items()}
    baseline = figures["baseline"]["median_ms"]
    help_median = figures["help"]["median_ms"]
    return {
        "benchmark": "cli_start",
        "runs": runs,
        "members": members,
        "command": " ".join(cli),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_start": round(load_start, 2),
        "load_end": round(os.getloadavg()[0], 2),
        **{f"{name}_{key}": value for name, fig in figures.items() for key, value in fig.items()},
        "help_ratio": round(help_median / baseline, 2),
        "show_ratio": round(figures["show"]["median_ms"] / baseline, 2),
        "help_target_ms": TARGET_HELP_MS,
        "help_ok": help_median < TARGET_HELP_MS,
    }


def report(result: dict[str, Any]) -> str:
    lines = [
        f"CLI start-up: {result['runs']} runs each, python {result['python']}, "
        f"{result['cpus']} cpus, load {result['load_start']:.2f} -> {result['load_end']:.2f}",
        f"{'process':<40} {'min ms':>8} {'median ms':>10} {'ratio':>6} {'CPU ms':>7}",
    ]
    for name, label in (
        ("baseline", "python -c pass (baseline)"),
        ("help", "loyalpump --help"),
        ("show", f"loyalpump edge member show ({result['members']} members)"),
    ):
        ratio = "" if name == "baseline" else f"{result[f'{name}_ratio']:.2f}"
        lines.append(
            f"{label:<40} {result[f'{name}_min_ms']:>8.1f} "
            f"{result[f'{name}_median_ms']:>10.1f} {ratio:>6} "
            f"{result[f'{name}_cpu_median_ms']:>7.1f}"
        )
    verdict = "pass" if result["help_ok"] else "short"
    lines.append(f"target: --help median < {TARGET_HELP_MS:g} ms: {verdict}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=positive_int, default=15)
    parser.add_argument("--members", type=positive_int, default=200)
    args = parser.parse_args(argv)
    result = run(args.runs, args.members)
    print(report(result))
    print("RESULT " + json.dumps(result, ensure_ascii=False, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
