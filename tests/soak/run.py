"""The chain under fire: N stations and a cloud as real processes, faults, then the verdict.

    .venv/bin/python -m tests.soak [--stations 4] [--minutes 3] [--backend sqlite|postgresql]

Phases: set up (the cloud, HQ's rules and switch, each station with its simulators, its
fault proxy, a cashier login and `edge run`); traffic and faults for `--minutes` (pumps
selling, cashiers attaching members and redeeming, the chaos thread cutting links and
killing processes, HQ publishing a rule update half-way); then every fault is lifted, the
forecourts close, the chain drains, everything stops, and the verdict compares the cloud
with the simulators' ground truth. Exit 0 only when every check passes.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from cloud_sync.core.ruleset import RuleSet
from cloud_sync.core.ruleset.parser import parse_ruleset
from tests.cloud.chain import CloudProcess

from .cashier import Cashier, CashierStats, Member
from .chaos import Chaos
from .nodes import MARKER, StationNode, leftover_processes
from .report import SoakReport, render
from .verdict import CashierAnswers, Check, check_chain, cloud_progress

__all__ = ["SoakOptions", "main", "run_soak"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RULES = PROJECT_ROOT / "config" / "rulesets" / "sample.json"
PG_ADMIN_URL = os.environ.get("LOYALPUMP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
_SAMPLE_S = 1.0
_CASHIERS_JOIN_S = 120.0  # all cashiers together, after the faults are lifted
_OVERHEAD_S = 20 * 60.0  # set-up, drain, stops and verdict, beyond --minutes (a hard limit)


@dataclass(frozen=True)
class SoakOptions:
    stations: int = 4
    minutes: float = 3.0
    backend: str = "sqlite"  # or "postgresql"
    seed: int = 1
    members_per_station: int = 12
    sale_interval_s: float = 4.0  # seconds between sales, per pump (4 pumps a station)
    drain_timeout_s: float = 300.0
    work_dir: Path | None = None  # None: a fresh temporary directory
    keep: bool = False  # keep the work directory even when the soak passes


def run_soak(options: SoakOptions, say: Callable[[str], None] = print) -> SoakReport:
    """Run the whole soak; the report's `passed` is the verdict."""
    run_id = uuid.uuid4().hex[:12]
    work = options.work_dir or Path(tempfile.mkdtemp(prefix="loyalpump-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, MARKER: run_id}
    report = SoakReport(options.stations, options.minutes, options.backend, options.seed)
    report.work_dir = str(work)
    with _database(options.backend, work, run_id, say) as database_url:
        soak = _Soak(options, work, env, database_url, report, say)
        # A hard limit: a hang anywhere kills every process of the run, so it fails, not hangs.
        watchdog = threading.Timer(options.minutes * 60 + _OVERHEAD_S, soak.time_is_up)
        watchdog.daemon = True
        watchdog.start()
        try:
            soak.run()
        finally:
            watchdog.cancel()
            report.leftovers = _leftovers(run_id)  # alive after the orderly stop (then killed)
            soak.abort()
            report.checks.append(_nothing_left(report.leftovers))
            if soak.timed_out:
                report.checks.append(
                    Check("the run ended in time", False, "the hard time limit killed it")
                )
    if report.passed and not options.keep and options.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return report


@contextmanager
def _database(backend: str, work: Path, run_id: str, say: Callable[[str], None]) -> Iterator[str]:
    """A fresh cloud database for this run (a PostgreSQL one is dropped at the end)."""
    if backend == "sqlite":
        yield f"sqlite:///{work / 'cloud' / 'cloud.sqlite3'}"
        return
    name = f"loyalpump_soak_{run_id}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        yield f"{base}/{name}"
    finally:
        try:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg.Error as exc:  # never hide the run's own outcome behind this
            say(f"could not drop the soak database {name}: {exc}")


def _leftovers(run_id: str) -> list[str]:
    """Processes of this run still alive a moment after the end (then killed)."""
    time.sleep(0.5)
    found = leftover_processes(run_id)
    for line in found:
        with suppress(OSError):
            os.kill(int(line.split()[0]), signal.SIGKILL)
    return found


def phone_of(station_index: int, member: int) -> str:
    return f"139{station_index:02d}{member:06d}"


def _second_ruleset(first: dict[str, object], now: datetime) -> dict[str, object]:
    """HQ's update half-way: 95 earns double from now on (a new version, signed and pulled)."""
    document: dict[str, Any] = json.loads(json.dumps(first))
    document["version"] = int(document["version"]) + 1
    document["name"] = "soak update"
    document["effective_from"] = now.astimezone(UTC).isoformat()
    document["earn"] = [
        {**rule, "points_per_litre": "2"} if rule["grade"] == "95" else rule
        for rule in document["earn"]
    ]
    return document


class _Soak:
    def __init__(
        self,
        options: SoakOptions,
        work: Path,
        env: dict[str, str],
        database_url: str,
        report: SoakReport,
        say: Callable[[str], None],
    ) -> None:
        self.options = options
        self.work = work
        self.env = env
        self.database_url = database_url
        self.report = report
        self.say = say
        self.rng = random.Random(options.seed)
        # PostgreSQL serves from two worker processes (the chaos also kills single workers).
        workers = ("--workers", "2") if options.backend == "postgresql" else ()
        self.cloud = CloudProcess(work / "cloud", database_url, env=env, args=workers)
        self.nodes: list[StationNode] = []
        self.rulesets: dict[int, RuleSet] = {}
        self.first_rules: dict[str, object] = json.loads(RULES.read_text(encoding="utf-8"))
        self._max_backlog: dict[str, int] = Counter()
        self._cashiers: list[Cashier] = []
        self._stuck: list[str] = []
        self._stop_sampler = threading.Event()
        self.timed_out = False

    # ------------------------------------------------------------------ phases

    def run(self) -> None:
        started = time.monotonic()
        self._set_up()
        self.say(f"set up in {time.monotonic() - started:.0f} s; traffic and faults begin")
        sampler = threading.Thread(target=self._sample, name="soak-sampler", daemon=True)
        sampler.start()
        try:
            chaos, lifted_at = self._traffic_under_fire()
            self.say("faults lifted; forecourts closing, the chain drains")
            for node in self.nodes:
                node.close_forecourt()
            self.report.converged_s = self._drain(lifted_at)
        finally:
            self._stop_sampler.set()
            sampler.join()
        self._stop_all()
        self._judge(chaos)

    def _set_up(self) -> None:
        options = self.options
        ids = [f"S{n + 1:03d}" for n in range(options.stations)]
        tokens = {station_id: self.cloud.add_station(station_id) for station_id in ids}
        self._publish(self.first_rules, "rules-v1.json")
        self.cloud.cli("policy", "--offline-redemption", "on")
        self.cloud.start()
        for index, station_id in enumerate(ids):
            node = StationNode(
                station_id,
                self.work / station_id,
                self.cloud.port,
                tokens[station_id],
                self.env,
                seed=options.seed * 100 + index,
                sale_interval_s=options.sale_interval_s,
            )
            self.nodes.append(node)
            node.start()
        for node in self.nodes:
            node.wait_ready()

    def _publish(self, document: dict[str, object], name: str) -> None:
        path = self.work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
        self.cloud.cli("rules", "publish", str(path))
        ruleset = parse_ruleset(document)
        self.rulesets[ruleset.version] = ruleset

    def _traffic_under_fire(self) -> tuple[Chaos, float]:
        """Traffic and faults for the run's minutes; answers when the last fault was lifted."""
        options = self.options
        members = [
            Member(phone_of(i, n), node.station_id)
            for i, node in enumerate(self.nodes)
            for n in range(options.members_per_station)
        ]
        longest_black_hole = min(180.0, max(20.0, options.minutes * 60 / 3))
        chaos = Chaos(
            self.nodes,
            self.cloud,
            random.Random(self.rng.random()),
            mean_gap_s=12.0 / max(1, options.stations),
            longest_black_hole_s=longest_black_hole,
        )
        cashiers = [
            Cashier(
                node,
                members,
                random.Random(self.rng.random()),
                offline=functools.partial(chaos.offline, node.station_id),
            )
            for node in self.nodes
        ]
        self._cashiers = cashiers
        stop_chaos, stop_cashiers = threading.Event(), threading.Event()
        threads = [
            threading.Thread(target=chaos.run, args=(stop_chaos,), name="soak-chaos", daemon=True),
            *(
                threading.Thread(
                    target=c.run,
                    args=(stop_cashiers,),
                    name=f"soak-{c.node.station_id}",
                    daemon=True,
                )
                for c in cashiers
            ),
        ]
        for thread in threads:
            thread.start()
        try:
            end = time.monotonic() + options.minutes * 60
            half = time.monotonic() + options.minutes * 30
            updated = False
            while time.monotonic() < end:
                time.sleep(min(5.0, max(0.0, end - time.monotonic())))
                if not updated and time.monotonic() >= half:
                    update = _second_ruleset(self.first_rules, datetime.now(UTC))
                    self._publish(update, "rules-v2.json")
                    updated = True
                self.say(self._progress(chaos))
        finally:
            stop_chaos.set()
            threads[0].join()
            lifted_at = time.monotonic()  # the cloud's and agents' restarts count from here
            chaos.lift_all()
            stop_cashiers.set()
            deadline = time.monotonic() + _CASHIERS_JOIN_S
            for thread in threads[1:]:
                thread.join(max(0.0, deadline - time.monotonic()))
            self._stuck = [t.name for t in threads[1:] if t.is_alive()]
        return chaos, lifted_at

    def _drain(self, lifted_at: float) -> float | None:
        """Until every sale made is in its store and in the cloud, and no backlog is left."""
        deadline = lifted_at + self.options.drain_timeout_s
        while time.monotonic() < deadline:
            closed = all(node.forecourt_closed() for node in self.nodes)
            if closed and self.report.closed_s is None:
                self.report.closed_s = time.monotonic() - lifted_at
            if closed and self._converged():
                return time.monotonic() - lifted_at
            time.sleep(_SAMPLE_S)
        return None

    def _converged(self) -> bool:
        try:
            progress = cloud_progress(self.database_url)
        except Exception:  # the cloud's database busy or restarting: not converged yet
            return False
        for node in self.nodes:
            truth = len(node.truth())
            sales, backlog, last = node.store_counts()
            cloud_sales, mark = progress.get(node.station_id, (0, 0))
            if (sales, backlog, mark, cloud_sales) != (truth, 0, last, truth):
                return False
        return True

    def _sample(self) -> None:
        while not self._stop_sampler.wait(_SAMPLE_S):
            for node in self.nodes:
                backlog = node.store_counts()[1]
                if backlog > self._max_backlog[node.station_id]:
                    self._max_backlog[node.station_id] = backlog

    def _stop_all(self) -> None:
        stops: dict[str, object] = {}
        for node in self.nodes:
            stops[node.station_id] = node.stop()
        if self.cloud.process is not None:
            stops["cloud"] = {"ledger": self.cloud.kill(signal.SIGTERM)}
        self.report.stops = stops

    def abort(self) -> None:
        """Whatever happened, nothing of this run may keep running."""
        for node in self.nodes:
            with suppress(Exception):
                node.kill_everything()
        if self.cloud.process is not None:
            with suppress(Exception):
                self.cloud.kill()

    def time_is_up(self) -> None:
        self.timed_out = True
        self.say("the soak ran past its hard time limit: killing every process")
        self.abort()

    # ------------------------------------------------------------------ the verdict

    def _judge(self, chaos: Chaos) -> None:
        r = self.report
        truth = [key for node in self.nodes for key in node.truth()]
        r.sales = dict(Counter(key[0] for key in truth))
        r.litres = str(sum((key[4] for key in truth), Decimal(0)))
        r.amount = str(sum((key[5] for key in truth), Decimal(0)))
        r.cashier = cashier_totals(c.stats for c in self._cashiers)
        r.faults = dict(chaos.stats.faults)
        r.black_hole_s = chaos.stats.black_hole_s
        r.longest_black_hole_s = chaos.stats.longest_black_hole_s
        r.station_restarts = chaos.stats.station_restarts
        r.cloud_restarts = chaos.stats.cloud_restarts
        if self._max_backlog:
            station, most = max(self._max_backlog.items(), key=lambda item: item[1])
            r.max_backlog, r.max_backlog_station = most, station
        r.events = sum(node.store_counts()[2] for node in self.nodes)
        answers = CashierAnswers(
            {k: v for c in self._cashiers for k, v in c.redeemed.items()},
            {k: v for c in self._cashiers for k, v in c.attached.items()},
        )
        ledger = self.cloud.open_ledger()
        try:
            r.checks = check_chain(
                self.nodes, ledger, self.database_url, self.rulesets, datetime.now(UTC), answers
            )
        finally:
            ledger.close()
        errors = [c.error for c in self._cashiers if c.error] + [chaos.error or ""]
        errors = [e for e in errors if e] + [f"{name} still running" for name in self._stuck]
        r.checks.append(
            Check(
                "the chaos and the cashiers ran to the end",
                not errors,
                "no harness thread failed or hung" if not errors else "; ".join(errors),
            )
        )
        r.checks.append(_clean_stops(r.stops))
        if r.converged_s is None:
            r.checks.append(_never_converged(self.options.drain_timeout_s))

    def _progress(self, chaos: Chaos) -> str:
        counts = [node.store_counts() for node in self.nodes]
        sales = sum(c[0] for c in counts)
        backlog = sum(c[1] for c in counts)
        return (
            f"  {sales} sales, backlog {backlog}, faults {sum(chaos.stats.faults.values())}, "
            f"restarts {chaos.stats.station_restarts + chaos.stats.cloud_restarts}"
        )


def cashier_totals(all_stats: Iterable[CashierStats]) -> dict[str, object]:
    """The cashiers' counts summed, refusals by error code (JSON-ready)."""
    totals: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    for stats in all_stats:
        refused.update(stats.refused)
        totals.update(
            {
                name: int(getattr(stats, name))
                for name in (f.name for f in fields(stats))
                if name != "refused"
            }
        )
    return {**totals, "refused": dict(refused)}


def _clean_stops(stops: dict[str, object]) -> Check:
    unclean = [
        f"{station} {name} exit {code}"
        for station, codes in stops.items()
        if isinstance(codes, dict)
        for name, code in codes.items()
        if code != 0
    ]
    return Check(
        "every process stopped cleanly on SIGTERM",
        not unclean,
        "agents, simulators and the cloud exited 0" if not unclean else "; ".join(unclean),
    )


def _nothing_left(leftovers: list[str]) -> Check:
    return Check(
        "no process left behind",
        not leftovers,
        "every child of this run has exited" if not leftovers else "; ".join(leftovers),
    )


def _never_converged(timeout: float) -> Check:
    return Check("the chain converged", False, f"not within {timeout:.0f} s of the last fault")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--stations", type=int, default=4, help="station agents (4)")
    parser.add_argument("--minutes", type=float, default=3.0, help="minutes of faults (3)")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=None, help="work directory (kept)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    if args.stations < 1 or args.minutes <= 0:
        parser.error("--stations must be at least 1 and --minutes above 0")
    options = SoakOptions(
        stations=args.stations,
        minutes=args.minutes,
        backend=args.backend,
        seed=args.seed,
        work_dir=args.dir,
        keep=args.keep,
    )
    report = run_soak(options, say=lambda line: print(line, file=sys.stderr, flush=True))
    print(render(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_dict(), indent=2, default=str), encoding="utf-8")
    return 0 if report.passed else 1
