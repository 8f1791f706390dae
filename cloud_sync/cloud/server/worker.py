"""One worker process of a multi-process cloud service (`cloud run --workers N`, N > 1).

The supervisor starts it with the `spawn` method: a fresh interpreter that inherits only the
listening socket and a pipe, never a database connection. It opens its own ledger (its own
engine and connection pool), serves until SIGTERM/SIGINT, finishes the requests in flight and
closes its pool. It dies with the supervisor: a supervisor killed with SIGKILL must not leave
workers holding the port.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import sys
import threading
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection

from cloud_sync.cloud.ledger import LedgerError

from .heap import settle_heap
from .keyfiles import KeyFileError, load_or_create_signing_key
from .replica import open_replica
from .run import open_ledger
from .serving import http_server, run_http, stop_on_signals
from .settings import CloudConfigError, CloudSettings

__all__ = ["LOG_FORMAT", "STARTUP_FAILURE", "worker_main"]

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
STARTUP_FAILURE = 3  # the worker never served: the supervisor waits before trying again
_PR_SET_PDEATHSIG = 1


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _die_with_parent(parent_pid: int) -> None:
    """Die at once when the supervisor dies (SIGKILL, as at a power cut: an unanswered push
    rolls back and is sent again), so no orphan keeps the port; prctl is Linux's, elsewhere
    a thread watches the parent."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)
        return

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def worker_main(
    settings: CloudSettings,
    sock: socket.socket,
    parent_pid: int,
    ready: Connection,
    log_level: int,
) -> None:
    """The worker's life: open the ledger, serve on the shared socket, close the pool.

    `ready` gets the worker's pid once it accepts requests. Exit 0 after an asked-for stop,
    STARTUP_FAILURE when it cannot open its ledger, 1 when the HTTP server ends on its own.
    """
    from .app import build_cloud_app  # noqa: PLC0415 - the supervisor imports this module

    logging.basicConfig(level=log_level, format=LOG_FORMAT)
    stop = threading.Event()
    restore = stop_on_signals(stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the supervisor's signal, not ours
    _die_with_parent(parent_pid)
    try:
        ledger = open_ledger(settings, create=False)
    except (CloudConfigError, LedgerError) as exc:
        log.error("worker %d cannot open the ledger: %s", os.getpid(), exc)
        sys.exit(STARTUP_FAILURE)
    try:
        try:
            signing_key = load_or_create_signing_key(settings.data_dir)
        except KeyFileError as exc:
            log.error("worker %d: %s", os.getpid(), exc)
            sys.exit(STARTUP_FAILURE)
        replica = open_replica(settings, ledger.db)  # None without database_url_read
        app = build_cloud_app(
            settings, ledger=ledger, signing_key=signing_key, clock=_utc_now, replica=replica
        )

        def started() -> None:
            settle_heap()
            if replica is not None:
                replica.start()  # each worker beats; the row holds the latest
            ready.send(os.getpid())

        asked = run_http(http_server(settings, app), sock, stop, started=started)
    finally:
        if replica is not None:
            replica.close()
        ledger.close()
        sock.close()
        restore()
    if not asked:
        log.error("worker %d: the HTTP server stopped unexpectedly", os.getpid())
        sys.exit(1)
