"""`cloud run --workers N`: N worker processes serving one port, and the one supervisor.

The supervisor binds the port, opens the ledger once (creating or migrating the schema before
any worker starts) and runs the hourly lot expiry, so the job runs once per service, not once
per worker. (Were it ever to run twice, no harm: expiry locks each member's row and expires
only lots with points left, so a second run finds nothing.) Workers are `spawn`ed (fresh
interpreters: no database connection crosses a fork) and each opens its own pool.

Signals to the supervisor:
- SIGTERM, SIGINT: every worker stops accepting, finishes the requests in flight (a push is
  answered only once its transaction has committed), closes its pool; then the supervisor
  exits 0.
- SIGHUP: the workers are replaced one by one, each replacement serving before its
  predecessor is stopped, so the port always answers.
- A worker that dies (killed, crashed) is replaced at once; its unanswered push rolled back
  with its connection and the station sends it again (a replay is idempotent).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from pathlib import Path
from types import FrameType

from cloud_sync.cloud.ledger import PoolSize

from .metrics import MULTIPROC_ENV, prepare_multiprocess_dir, worker_exited
from .run import EXPIRY_INTERVAL_S, ExpiryJob, open_ledger, refuse_open_data_dir
from .serving import GRACE_S, base_url, listen, stop_on_signals
from .settings import CloudConfigError, CloudSettings
from .worker import STARTUP_FAILURE, worker_main

__all__ = ["cores", "serve_workers", "worker_count"]

METRICS_FOLDER = "metrics"  # in the data folder: the workers' metric files

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 60.0  # a worker imports the app and opens its pool within this
_RETRY_FIRST_S = 1.0  # a worker that could not start is tried again after this, doubling
_RETRY_MAX_S = 30.0


def cores() -> int:
    """The cores this process may run on (its affinity), at least 1."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)


def worker_count(
    requested: int | None, settings: CloudSettings, cpus: int
) -> tuple[int, str | None]:
    """How many workers serve (`requested`: --workers; else cloud.workers; 0 = one per core),
    and a line to tell the operator when that is not what the configuration says.

    A SQLite ledger has one writer at a time, so it is served by one process: by default
    that is said in one line; asking for more explicitly is refused (CloudConfigError).
    """
    asked = settings.cloud.workers if requested is None else requested
    source = "cloud.workers" if requested is None else "--workers"
    if not settings.database_url.startswith("sqlite"):
        return (asked or cpus), None
    if asked > 1:
        raise CloudConfigError(
            f"{source}: {asked} workers need PostgreSQL; a SQLite ledger has one writer at a "
            "time and is served by one process (set 1, or a postgresql:// database_url)"
        )
    if asked == 0:
        return 1, (
            "serving from one process: a SQLite ledger has one writer at a time "
            "(a postgresql:// database_url serves from one worker per core)"
        )
    return 1, None


@dataclass
class _Worker:
    process: SpawnProcess
    ready_pipe: Connection
    ready: bool = False
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.process.pid or 0

    def poll_ready(self) -> bool:
        """Whether the worker said it serves (reads its pipe without blocking)."""
        if not self.ready:
            # EOF: it died before serving; is_alive() says so
            with contextlib.suppress(EOFError, OSError):
                self.ready = self.ready_pipe.poll() and bool(self.ready_pipe.recv())
        return self.ready


class _Pool:
    """The worker processes, their replacements and their metrics files."""

    def __init__(
        self, settings: CloudSettings, sock: socket.socket, metrics: Path, log_level: int
    ) -> None:
        self._settings = settings
        self._sock = sock
        self._metrics = metrics
        self._log_level = log_level
        self._spawn = multiprocessing.get_context("spawn")
        self.slots: list[_Worker | None] = []
        self._retry_at: dict[int, float] = {}
        self._retry_pause: dict[int, float] = {}

    def start(self) -> _Worker:
        reader, writer = self._spawn.Pipe(duplex=False)
        process = self._spawn.Process(
            target=worker_main,
            args=(self._settings, self._sock, os.getpid(), writer, self._log_level),
            name="cloud-worker",
        )
        process.start()
        writer.close()  # the worker holds the other copy: its death is EOF here
        return _Worker(process, reader)

    def wait_ready(self, worker: _Worker, stop: threading.Event) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and not stop.is_set():
            if worker.poll_ready():
                log.info("worker %d serving", worker.pid)
                return True
            if not worker.process.is_alive():
                return False
            worker.ready_pipe.poll(0.1)
        return worker.poll_ready()

    def retire(self, worker: _Worker, sig: int = signal.SIGTERM) -> None:
        """Stop a worker (SIGTERM: gracefully), wait for it, drop its live gauges."""
        _signal(worker, sig)
        worker.process.join(GRACE_S + 10)
        if worker.process.is_alive():
            log.warning("worker %d did not stop in time; killing it", worker.pid)
            worker.process.kill()
            worker.process.join(5)
        self._buried(worker)

    def _buried(self, worker: _Worker) -> None:
        worker.ready_pipe.close()
        worker_exited(worker.pid, self._metrics)

    def replace_dead(self) -> None:
        """Bury workers that died and start their replacements (later after a failed start)."""
        now = time.monotonic()
        for slot, worker in enumerate(self.slots):
            if worker is not None:
                worker.poll_ready()
                if worker.process.is_alive():
                    if worker.ready:
                        self._retry_pause.pop(slot, None)
                    continue
                code = worker.process.exitcode
                self._buried(worker)
                self.slots[slot] = None
                if code == STARTUP_FAILURE or not worker.ready:
                    pause = min(self._retry_pause.get(slot, _RETRY_FIRST_S / 2) * 2, _RETRY_MAX_S)
                    self._retry_pause[slot] = pause
                    self._retry_at[slot] = now + pause
                    log.error("worker %d could not start; again in %.0f s", worker.pid, pause)
                else:
                    log.warning("worker %d ended (exit code %s); replacing it", worker.pid, code)
            if self.slots[slot] is None and self._retry_at.get(slot, 0.0) <= now:
                self._retry_at.pop(slot, None)
                self.slots[slot] = self.start()

    def restart_all(self, stop: threading.Event) -> None:
        """One by one: a new worker serves before the one it replaces stops."""
        for slot, old in enumerate(self.slots):
            if stop.is_set():
                return
            new = self.start()
            if not self.wait_ready(new, stop):
                if stop.is_set():  # the service is stopping: the new one goes with the rest
                    self.retire(new)
                    return
                self.retire(new, signal.SIGKILL)
                log.error("a new worker did not start serving; the restart stops here")
                return
            self.slots[slot] = new
            if old is not None:
                self.retire(old)

    def stop_all(self) -> None:
        running = [worker for worker in self.slots if worker is not None]
        for worker in running:
            _signal(worker, signal.SIGTERM)  # all at once: they finish their requests together
        for worker in running:
            self.retire(worker)
        self.slots = [None] * len(self.slots)


def serve_workers(
    settings: CloudSettings,
    count: int,
    *,
    ready: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
    expiry_interval_s: float = EXPIRY_INTERVAL_S,
) -> None:
    """Serve from `count` worker processes until SIGTERM/SIGINT or `stop`; SIGHUP restarts
    them one by one. `ready(base_url)` once every worker serves. Run it from the main thread
    (workers die with the thread that started them)."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("serve_workers runs in the main thread")
    os.umask(0o077)
    refuse_open_data_dir(settings.data_dir)
    stop = stop or threading.Event()
    restart = threading.Event()
    ledger = open_ledger(settings, pool=PoolSize(size=1, overflow=1))  # migrates, then expiry
    previous_env = os.environ.get(MULTIPROC_ENV)
    try:
        # The port first: a second `cloud run` on this data folder fails here, before it
        # could empty the metric files the running service's workers are writing.
        sock = listen(settings.cloud.host, settings.cloud.port)
        metrics = prepare_multiprocess_dir(settings.data_dir / METRICS_FOLDER)
        os.environ[MULTIPROC_ENV] = str(metrics)  # the workers inherit it at spawn
        url = base_url(settings.cloud.host, sock)
        pool = _Pool(settings, sock, metrics, logging.getLogger().getEffectiveLevel())
        restore = stop_on_signals(stop)
        previous_hup = signal.signal(signal.SIGHUP, _setter(restart))
        expiry = ExpiryJob(ledger, _utc_now, expiry_interval_s)
        try:
            pool.slots = [pool.start() for _ in range(count)]
            for worker in list(pool.slots):
                if worker is not None and not pool.wait_ready(worker, stop) and not stop.is_set():
                    raise CloudConfigError(
                        f"worker {worker.pid} did not start serving; its reason is logged above"
                    )
            if not stop.is_set():
                log.info("cloud ledger on %s (%s, %d workers)", url, ledger.dialect, count)
                expiry.start()
                if ready is not None:
                    ready(url)
            while not stop.wait(0.2):
                if restart.is_set():
                    restart.clear()
                    log.info("SIGHUP: restarting the workers one by one")
                    pool.restart_all(stop)
                pool.replace_dead()
        finally:
            pool.stop_all()
            expiry.stop()
            signal.signal(signal.SIGHUP, previous_hup)
            restore()
            sock.close()
    finally:
        if previous_env is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous_env
        ledger.close()


def _signal(worker: _Worker, sig: int) -> None:
    if worker.process.is_alive():
        with contextlib.suppress(ProcessLookupError):  # it ended in between
            os.kill(worker.pid, sig)


def _setter(event: threading.Event) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        event.set()

    return handler


def _utc_now() -> datetime:
    return datetime.now(UTC)
