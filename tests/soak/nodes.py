"""The soak's moving parts as real processes: a station with its simulators and its link.

A `StationNode` is what one forecourt looks like from outside: `loyalpump sim dart --pty`
(pumps on a pseudo-terminal) and `loyalpump sim fdc` (an FDC on loopback), each writing
its ground truth; `loyalpump edge run` reading both; and a `FaultProxy` between the agent
and the cloud, which the chaos switches. Every child carries `LOYALPUMP_SOAK=<run id>` in
its environment, so `leftover_processes` can prove none outlived the run.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx

from tests.cloud.chain import LOYALPUMP
from tests.cloud.faults import FaultProxy
from tests.support import free_port

__all__ = [
    "CASHIER_NAME",
    "CASHIER_PIN",
    "MARKER",
    "SaleKey",
    "StationNode",
    "leftover_processes",
    "sale_key",
]

MARKER = "LOYALPUMP_SOAK_RUN"  # no double underscore: not a settings override
CASHIER_NAME = "soak-cashier"
CASHIER_PIN = "246810"
_STOP_S = 20.0

SaleKey = tuple[str, int, int, str, Decimal, Decimal]
"""(source, fuelling point, nozzle, grade, litres, amount): what a pump says it sold."""


def sale_key(source: str, sale: dict[str, str]) -> SaleKey:
    """The key of a simulator's ground-truth line."""
    return (
        source,
        int(sale["fuelling_point"]),
        int(sale["nozzle"]),
        sale["grade"],
        Decimal(sale["volume"]),
        Decimal(sale["amount"]),
    )


@dataclass
class StationNode:
    """One station: simulators, agent and the fault proxy in front of the cloud."""

    station_id: str
    home: Path
    cloud_port: int
    token: str
    env: dict[str, str]
    seed: int
    dart_pumps: int = 2
    fdc_pumps: int = 2
    sale_interval_s: float = 4.0  # per pump
    noise: float = 0.01
    web_port: int = field(default_factory=free_port)
    fdc_port: int = field(default_factory=free_port)
    proxy: FaultProxy | None = None
    agent: subprocess.Popen[bytes] | None = None
    dart_sim: subprocess.Popen[bytes] | None = None
    fdc_sim: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.home / "station.toml"

    @property
    def store(self) -> Path:
        return self.home / "data" / "station.sqlite3"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def dart_truth(self) -> Path:
        return self.home / "dart-truth.jsonl"

    @property
    def fdc_truth(self) -> Path:
        return self.home / "fdc-truth.jsonl"

    # ------------------------------------------------------------------ set-up

    def start(self) -> None:
        """Simulators, proxy, a fresh store with a cashier login, then the agent."""
        self.home.mkdir(parents=True, exist_ok=True)
        device = self._start_dart_sim()
        self._start_fdc_sim()
        self.proxy = FaultProxy(self.cloud_port)
        self.proxy.start()
        self._write_config(device)
        self._cli("edge", "init", "-c", str(self.config))
        self._cli(
            "edge", "user", "add", "-c", str(self.config),
            "--name", CASHIER_NAME, "--role", "cashier", "--pin", CASHIER_PIN,
        )  # fmt: skip
        self.start_agent()

    def _spawn(self, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as sink:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(
                [LOYALPUMP, *args],
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
            )

    def _cli(self, *args: str) -> None:
        result = subprocess.run(
            [LOYALPUMP, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=self.env,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{self.station_id}: loyalpump {args[:2]}: {result.stderr}")

    def _start_dart_sim(self) -> str:
        out = self.home / "dart-sim.log"
        self.dart_sim = self._spawn(
            [
                "sim", "dart", "--pty", "--pumps", str(self.dart_pumps),
                "--interval", str(self.sale_interval_s), "--noise", str(self.noise),
                "--seed", str(self.seed), "--ground-truth", str(self.dart_truth),
            ],
            out,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for line in out.read_text(errors="replace").splitlines():
                if line.startswith("pty "):
                    return line.split()[1]
            if self.dart_sim.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.station_id}: the DART simulator gave no pseudo-terminal")

    def _start_fdc_sim(self) -> None:
        # One producer for all fuelling points: the same rate per pump as the DART bus.
        interval = self.sale_interval_s / self.fdc_pumps
        self.fdc_sim = self._spawn(
            [
                "sim", "fdc", "--port", str(self.fdc_port), "--pumps", str(self.fdc_pumps),
                "--interval", f"{interval:.3f}", "--noise", str(self.noise),
                "--seed", str(self.seed + 1000), "--ground-truth", str(self.fdc_truth),
            ],
            self.home / "fdc-sim.log",
        )  # fmt: skip

    def _write_config(self, device: str) -> None:
        pumps = "".join(
            f"[[drivers.pumps]]\naddress = {0x50 + n}\nfuelling_point = {n + 1}\n"
            'nozzles = { 1 = "92", 2 = "95" }\n'
            for n in range(self.dart_pumps)
        )
        assert self.proxy is not None
        self.config.write_text(
            f'[station]\nid = "{self.station_id}"\ndata_dir = "{self.home / "data"}"\n'
            'timezone = "Asia/Shanghai"\n\n'
            f'[cloud]\nurl = "{self.proxy.url}"\ntoken = "{self.token}"\nsync_interval_s = 1\n\n'
            f'[web]\nhost = "127.0.0.1"\nport = {self.web_port}\n\n'
            f'[[drivers]]\nkind = "dart"\nname = "bus1"\nport = "{device}"\nmode = "master"\n'
            f'authorize = "auto"\n{pumps}\n'
            f'[[drivers]]\nkind = "ifsf-fdc"\nname = "fdc"\nhost = "127.0.0.1"\n'
            f'port = {self.fdc_port}\nproducts = {{ 1 = "92", 2 = "95", 3 = "0" }}\n',
            encoding="utf-8",
        )

    # ------------------------------------------------------------------ the agent

    def start_agent(self) -> None:
        self.agent = self._spawn(["edge", "run", "-c", str(self.config)], self.home / "agent.log")

    def kill_agent(self) -> None:
        """A power cut: SIGKILL, no goodbye."""
        if self.agent is not None and self.agent.poll() is None:
            self.agent.send_signal(signal.SIGKILL)
            self.agent.wait(_STOP_S)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the cashier page answers (the store is open and the web server listens)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.agent is not None and self.agent.poll() is not None:
                raise RuntimeError(f"{self.station_id}: edge run exited {self.agent.returncode}")
            try:
                if httpx.get(f"{self.web_url}/healthz", timeout=2).status_code in (200, 503):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.station_id}: the cashier page never answered")

    # ------------------------------------------------------------------ closing time

    def close_forecourt(self) -> None:
        """SIGUSR1 to both simulators: no new sale, but they keep answering the agent."""
        for sim in (self.dart_sim, self.fdc_sim):
            if sim is not None and sim.poll() is None:
                sim.send_signal(signal.SIGUSR1)

    def forecourt_closed(self) -> bool:
        """Both simulators said `closed`: no sale in progress, the ground truth is final."""
        return all(
            "closed" in path.read_text(errors="replace").splitlines()
            for path in (self.home / "dart-sim.log", self.home / "fdc-sim.log")
            if path.exists()
        )

    def stop(self) -> dict[str, int | None]:
        """SIGTERM everything; the exit codes say whether each stopped cleanly."""
        codes: dict[str, int | None] = {}
        for name, process in (
            ("agent", self.agent),
            ("dart", self.dart_sim),
            ("fdc", self.fdc_sim),
        ):
            if process is None:
                continue
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                codes[name] = process.wait(_STOP_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(_STOP_S)
                codes[name] = None  # did not stop on SIGTERM
        if self.proxy is not None:
            self.proxy.stop()
        return codes

    def kill_everything(self) -> None:
        """For an aborted run: nothing may outlive the harness."""
        for process in (self.agent, self.dart_sim, self.fdc_sim):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(_STOP_S)
        if self.proxy is not None:
            self.proxy.stop()

    # ------------------------------------------------------------------ what it holds

    def truth(self) -> list[SaleKey]:
        """Every sale the simulators completed, from their ground-truth files."""
        keys: list[SaleKey] = []
        for source, path in (("dart", self.dart_truth), ("ifsf", self.fdc_truth)):
            if path.exists():
                for line in path.read_text(encoding="utf-8").splitlines():
                    if line.strip():
                        keys.append(sale_key(source, json.loads(line)))
        return keys

    def store_counts(self) -> tuple[int, int, int]:
        """(sales recorded, events queued and not yet acknowledged, last event seq)."""
        if not self.store.exists():
            return 0, 0, 0
        try:
            with sqlite3.connect(f"file:{self.store}?mode=ro", uri=True, timeout=5) as db:
                sales = int(db.execute("SELECT count(*) FROM sales").fetchone()[0])
                backlog = int(
                    db.execute("SELECT count(*) FROM outbox WHERE acked_at IS NULL").fetchone()[0]
                )
                last = int(db.execute("SELECT coalesce(max(seq), 0) FROM outbox").fetchone()[0])
        except sqlite3.OperationalError:
            return 0, 0, 0  # a store mid-creation: nothing to count yet
        return sales, backlog, last

    def rule_versions(self) -> set[int]:
        """The rule-set versions installed in the station's store."""
        if not self.store.exists():
            return set()
        with sqlite3.connect(f"file:{self.store}?mode=ro", uri=True, timeout=5) as db:
            return {int(row[0]) for row in db.execute("SELECT version FROM rulesets")}


def leftover_processes(run_id: str) -> list[str]:
    """Every live process whose environment carries this run's marker (pid and command)."""
    needle = f"{MARKER}={run_id}".encode()
    found: list[str] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            if needle not in environ.split(b"\0"):
                continue
            status = (entry / "status").read_text()
            if "\nState:\tZ" in status:
                continue  # a zombie is already dead; its parent reaps it
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found.append(f"{entry.name} {command.strip()}")
    return found
