"""`edge run` under a stand-in for systemd: a real process, a real notify socket, real signals.

The test binds the datagram socket systemd would (`NOTIFY_SOCKET`), asks for a 1 s watchdog
(`WATCHDOG_USEC`), feeds the agent from the FDC simulator, and checks READY (only once the
page answers), WATCHDOG pings, STATUS, a SIGTERM while sales flow in (exit 0 within 10 s),
a SIGKILL while they still flow, and that after the restarts every sale the simulator
completed is in the store exactly once. The simulator sells until the test stops it, so no
burst can run out before a signal however slowly a busy machine starts the agent. The
agent's output must be JSON lines that never carry the station token or a full phone number.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]

from edge_agent.daemon import _cancel_until_done
from edge_agent.jobs import build_scheduler, run_scheduled
from edge_agent.notify import Notifier
from edge_agent.services.backup import backup_store
from edge_agent.services.station import Station
from tests.edge_agent.test_daemon_drivers import (
    LOYALPUMP,
    _as_row,
    _recorded,
    _start,
    _stop,
    _truth,
    _wait_for,
    _write_config,
)
from tests.support import free_port

TOKEN = "station-token-do-not-log-7f3a9c"  # a test value that must never be logged
PHONE = "13800138000"
FULL_PHONE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


class NotifyListener:
    """systemd's side of `sd_notify`: a bound datagram socket, parsed messages with times."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        bind_to = "\0" + address[1:] if address.startswith("@") else address
        self.sock.bind(bind_to)
        self.sock.settimeout(0.05)
        self.received: list[dict[str, str]] = []

    def poll(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
            self.received.append(fields)

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if check():
                return
        raise AssertionError(f"timed out waiting for {what}; got {self.received}")

    def count(self, key: str) -> int:
        return sum(1 for fields in self.received if key in fields)

    def close(self) -> None:
        self.sock.close()
        if not self.address.startswith("@"):
            Path(self.address).unlink(missing_ok=True)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A unix socket path must fit in 108 bytes: pytest's tmp_path may not."""
    with tempfile.TemporaryDirectory(prefix="lp-") as folder:
        yield Path(folder)


def _agent(config: Path, log: Path, notify: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in {"WATCHDOG_PID", "LISTEN_FDS"}}
    env.update(NOTIFY_SOCKET=notify, WATCHDOG_USEC="1000000")
    return subprocess.Popen(
        [LOYALPUMP, "edge", "run", "-c", str(config)],
        stdout=log.open("ab"),
        stderr=log.with_suffix(".err").open("ab"),
        stdin=subprocess.DEVNULL,
        env=env,
    )


def _ready_only_when_serving(listener: NotifyListener, web_port: int) -> None:
    """READY=1 arrives, and by then the page answers /healthz."""
    listener.wait_for("READY=1", lambda: listener.count("READY") > 0)
    answer = httpx.get(f"http://127.0.0.1:{web_port}/healthz", timeout=2.0)
    assert answer.status_code in (200, 503), answer.text
    assert "status" in answer.json()


def _check_output(log: Path) -> int:
    """Every line on stdout and stderr is a JSON object without a secret; returns the count."""
    count = 0
    for path in (log, log.with_suffix(".err")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)  # a non-JSON line fails here, with the line shown
            assert {"ts", "level", "logger", "message"} <= set(entry), line
            assert TOKEN not in line, line
            assert not FULL_PHONE.search(line), line
            count += 1
    return count


@pytest.mark.slow
def test_notify_watchdog_sigterm_and_sigkill_in_a_burst_lose_and_double_nothing(
    tmp_path: Path, short_dir: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    fdc_port, web_port, dead_port = free_port(), free_port(), free_port()
    truth = tmp_path / "truth.jsonl"
    sim = _start(
        "sim",
        "fdc",
        "--port",
        str(fdc_port),
        "--pumps",
        "4",
        "--interval",
        "0.05",
        "--noise",
        "0.05",
        "--seed",
        "17",
        "--ground-truth",
        str(truth),
        log=tmp_path / "sim.log",
    )
    processes.append(sim)
    config = _write_config(
        tmp_path,
        f'[cloud]\nurl = "http://127.0.0.1:{dead_port}"\ntoken = "{TOKEN}"\n'
        f"sync_interval_s = 1\n\n[web]\nport = {web_port}\n\n"
        f'[[drivers]]\nkind = "ifsf-fdc"\nname = "fdc"\nhost = "127.0.0.1"\nport = {fdc_port}\n'
        'products = { 1 = "92", 2 = "95", 3 = "0" }\n',
    )
    subprocess.run(
        [LOYALPUMP, "edge", "member", "add", "-c", str(config), "--phone", PHONE],
        check=True,
        timeout=60,
        capture_output=True,
    )
    store = tmp_path / "data" / "station.sqlite3"
    log = tmp_path / "agent.log"

    # 1. READY once the page answers, watchdog pings from the loop, a status line.
    listener = NotifyListener(str(short_dir / "notify.sock"))
    try:
        agent = _agent(config, log, listener.address)
        processes.append(agent)
        _ready_only_when_serving(listener, web_port)
        listener.wait_for(
            "two watchdog pings and a status", lambda: listener.count("WATCHDOG") >= 2
        )
        statuses = [fields["STATUS"] for fields in listener.received if "STATUS" in fields]
        assert any("backlog" in status for status in statuses), statuses
        assert all(fields.get("WATCHDOG", "1") == "1" for fields in listener.received)

        # 2. SIGTERM in the middle of a burst: exit 0 well within 10 s, STOPPING=1 first.
        ready_with = len(_recorded(store))
        _wait_for(lambda: len(_recorded(store)) >= ready_with + 10, 60, "sales flowing in")
        asked = time.monotonic()
        agent.send_signal(signal.SIGTERM)
        status = agent.wait(timeout=12)
        took = time.monotonic() - asked
        assert status == 0, log.with_suffix(".err").read_text()[-3000:]
        assert took < 10.0, took
        listener.wait_for("STOPPING=1", lambda: listener.count("STOPPING") > 0, timeout=2)
    finally:
        listener.close()

    # 3. Restart (systemd's abstract-namespace socket this time), then SIGKILL mid-burst.
    listener = NotifyListener(f"@loyalpump-test-{uuid.uuid4().hex}")
    try:
        agent = _agent(config, log, listener.address)
        processes.append(agent)
        _ready_only_when_serving(listener, web_port)
        before = len(_recorded(store))
        _wait_for(lambda: len(_recorded(store)) >= before + 10, 60, "ten more sales")
        agent.send_signal(signal.SIGKILL)
        assert agent.wait(timeout=10) == -signal.SIGKILL
    finally:
        listener.close()

    # 4. Restart and catch up: every sale completed so far (those sold while the agent was
    # down included) reaches the store, then a few more live, so the store has caught up.
    agent = _start("edge", "run", "-c", str(config), "--log-format", "json", log=log)
    processes.append(agent)
    sold = Counter(_as_row(sale) for sale in _truth(truth))

    def caught_up() -> bool:
        got = _rows(_recorded(store))
        return not sold - got and got.total() >= sold.total() + 5

    _wait_for(caught_up, 120, "every sale sold before the restart in the store")
    time.sleep(1.0)  # let a late duplicate arrive before judging
    assert _stop(agent) == 0
    assert _stop(sim) == 0  # stops selling; its ground truth is now complete

    # Every sale the simulator completed before the agent stopped is in the store exactly
    # once; a sale completed during the agent's own shutdown may be missing, never doubled.
    recorded = _recorded(store)
    expected = Counter(_as_row(sale) for sale in _truth(truth))
    got = _rows(recorded)
    assert not got - expected, f"extra {got - expected}"
    assert not sold - got, f"missing {sold - got}"
    assert got.total() >= sold.total() + 5
    assert len({key for key, *_ in recorded}) == len(recorded)
    assert _check_output(log) > 10


Row = tuple[int, int, str, int, int]


def _rows(recorded: list[tuple[str, int, int, str, int, int]]) -> Counter[Row]:
    """The store's sales as ground-truth rows: (pump, nozzle, grade, ml, fen), counted."""
    return Counter((pump, nozzle, grade, ml, fen) for _, pump, nozzle, grade, ml, fen in recorded)


def test_a_page_that_cannot_listen_exits_non_zero_and_is_never_ready(
    tmp_path: Path, short_dir: Path
) -> None:
    """The page's port is taken: the agent logs it in JSON, says it in one line on stderr and
    exits 2 (RestartPreventExitStatus: a person must free the port)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = _write_config(tmp_path, f"[web]\nport = {port}\n")
        listener = NotifyListener(str(short_dir / "notify.sock"))
        log = tmp_path / "agent.log"
        try:
            agent = _agent(config, log, listener.address)
            status = agent.wait(timeout=30)
            listener.poll()
        finally:
            listener.close()
    assert status == 2
    assert listener.count("READY") == 0  # never ready: systemd sees a failed start
    error = log.with_suffix(".err")
    (line,) = error.read_text(encoding="utf-8").splitlines()
    assert f"port {port}" in line or f":{port}" in line, line
    assert "address already in use" in line.lower()
    error.write_text("", encoding="utf-8")  # the one plain line checked: the log is JSON
    assert _check_output(log) > 0
    assert "address already in use" in log.read_text().lower()


# --- in-process: the notifier, the nightly jobs ---------------------------------------------


def test_the_notifier_is_a_no_op_without_systemd() -> None:
    quiet = Notifier.from_environment({})
    assert not quiet.enabled
    assert quiet.watchdog_interval_s is None
    assert quiet.ready() is False
    assert quiet.watchdog() is False


def test_the_notifier_reaches_an_abstract_socket_and_halves_the_watchdog() -> None:
    listener = NotifyListener(f"@loyalpump-test-{uuid.uuid4().hex}")
    try:
        notifier = Notifier.from_environment(
            {"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "30000000"}
        )
        assert notifier.watchdog_interval_s == 15.0
        assert notifier.ready("up\nand running")
        assert notifier.watchdog()
        assert notifier.status("backlog 3")
        assert notifier.stopping()
        listener.wait_for("four messages", lambda: len(listener.received) == 4, timeout=2)
        assert listener.received == [
            {"READY": "1", "STATUS": "up and running"},
            {"WATCHDOG": "1"},
            {"STATUS": "backlog 3"},
            {"STOPPING": "1"},
        ]
        notifier.close()
    finally:
        listener.close()
    other = Notifier.from_environment(
        {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}
    )
    assert other.watchdog_interval_s is None  # the pings are meant for another process


def test_a_notifier_whose_socket_is_gone_drops_messages_without_raising(
    short_dir: Path,
) -> None:
    notifier = Notifier(str(short_dir / "nobody-listens.sock"), watchdog_usec=1_000_000)
    assert notifier.watchdog() is False
    assert notifier.status("still fine") is False
    notifier.close()


def _job_settings(scheduler: AsyncIOScheduler) -> list[tuple[object, ...]]:
    async def started() -> list[tuple[object, ...]]:
        scheduler.start(paused=True)  # job defaults apply once the scheduler runs
        try:
            return [
                (job.id, job.max_instances, job.coalesce, job.misfire_grace_time, job.executor)
                for job in scheduler.get_jobs()
            ]
        finally:
            scheduler.shutdown(wait=False)
            await asyncio.sleep(0.05)

    return asyncio.run(started())


def test_nightly_jobs_run_at_three_in_the_station_zone(station: Station) -> None:
    backup_store(station)  # a fresh backup: no catch-up run is needed
    scheduler = build_scheduler(station)
    zone = station.settings.zone
    now = datetime(2026, 11, 23, 12, 0, tzinfo=zone)
    fires = {
        job.id: job.trigger.get_next_fire_time(None, now).astimezone(zone)
        for job in scheduler.get_jobs()
    }
    tomorrow = now + timedelta(days=1)
    assert fires == {
        "points-expiry": tomorrow.replace(hour=3, minute=0),
        "tier-recalculation": tomorrow.replace(hour=3, minute=0),
        "backup": tomorrow.replace(hour=3, minute=30),
    }
    assert [row[1:] for row in _job_settings(scheduler)] == [(1, True, 3600, "default")] * 3


def test_a_station_without_a_recent_backup_backs_up_soon_after_start(station: Station) -> None:
    scheduler = build_scheduler(station)
    catch_up = scheduler.get_job("backup-catch-up")
    assert catch_up is not None
    at = catch_up.trigger.get_next_fire_time(None, datetime.now(station.settings.zone))
    assert timedelta(minutes=9) < at - datetime.now(station.settings.zone) <= timedelta(minutes=10)
    assert len(_job_settings(scheduler)) == 4


def test_a_failing_job_is_logged_and_never_raises(
    station: Station, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_: Station) -> None:
        raise OSError("disk full")

    with caplog.at_level(logging.INFO, logger="edge_agent.jobs"):
        run_scheduled("backup", broken, station)
        run_scheduled("points-expiry", lambda s: 0, station)
    failed = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failed) == 1 and "backup failed" in failed[0].getMessage()
    assert failed[0].exc_info is not None
    assert any("points-expiry done" in r.getMessage() for r in caplog.records)


def test_jobs_run_on_their_own_thread_while_the_loop_stays_free(station: Station) -> None:
    scheduler = build_scheduler(station)
    ran_on: list[str] = []

    release, finished = threading.Event(), threading.Event()

    def slow(_: Station) -> int:
        ran_on.append(threading.current_thread().name)
        release.wait(10)  # blocks until the loop has turned (or, on the loop, for 10 s)
        finished.set()
        return 1

    async def main() -> bool:
        scheduler.start()
        scheduler.add_job(
            run_scheduled, "date", args=("slow", slow, station), run_date=datetime.now(UTC)
        )
        deadline = time.monotonic() + 20
        while not ran_on and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for _ in range(3):
            await asyncio.sleep(0.01)  # the loop turns while the job is still blocked
        turned_while_blocked = bool(ran_on) and not finished.is_set()
        release.set()
        finished.wait(10)
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0.1)
        return turned_while_blocked

    # No timing margin to tune: a job run on the loop would block it until `release` timed
    # out, so the loop could only turn after the job had finished.
    assert asyncio.run(main())
    assert len(ran_on) == 1 and ran_on[0].startswith("jobs")


def test_a_task_that_swallows_a_cancellation_is_asked_again() -> None:
    """Python 3.11's wait_for can lose a cancel that races a result; shutdown insists."""
    swallowed: list[bool] = []

    async def stubborn() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            swallowed.append(True)  # as wait_for does when its inner result wins the race
        await asyncio.sleep(30)

    async def main() -> tuple[int, float]:
        task = asyncio.create_task(stubborn(), name="driver:stubborn")
        await asyncio.sleep(0)
        started = time.monotonic()
        left = await _cancel_until_done([task], 10.0)
        return len(left), time.monotonic() - started

    left, _ = asyncio.run(main())
    assert swallowed == [True]
    assert left == 0  # asked again: a single cancel would leave it running past the deadline
