"""Running the cloud ledger service: open the ledger, serve HTTP, expire lots hourly.

`serve` blocks until SIGTERM/SIGINT (or the `stop` event) and then shuts down in order:
stop accepting requests, let the running ones finish, stop the expiry job, close the ledger.
"""

from __future__ import annotations

import logging
import os
import signal
import stat
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from cloud_sync.cloud.ledger import AllowancePolicy, CloudLedger, PoolSize

from .heap import settle_heap
from .keyfiles import ensure_data_dir, load_or_create_chain_keys, load_or_create_signing_key
from .periodic import PeriodicJob
from .replica import open_replica
from .serving import base_url, http_server, listen, run_http, stop_on_signals
from .settings import CloudConfigError, CloudSettings

__all__ = [
    "EXPIRY_INTERVAL_S",
    "ExpiryJob",
    "allowance_policy",
    "open_ledger",
    "private_sqlite_file",
    "refuse_open_data_dir",
    "safe_url",
    "serve",
]

log = logging.getLogger(__name__)

EXPIRY_INTERVAL_S = 3600.0


def allowance_policy(settings: CloudSettings) -> AllowancePolicy:
    section = settings.offline_redemption
    return AllowancePolicy(
        points=section.points,
        per_member_cap=section.per_member_cap,
        lifetime_s=section.lifetime_h * 3600,
        max_snapshot_age_s=section.max_snapshot_age_h * 3600,
    )


def safe_url(url: str) -> str:
    """The database URL fit for messages and logs: the password is masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        return "(unparsable database URL)"


def open_ledger(
    settings: CloudSettings, *, create: bool = True, pool: PoolSize | None = None
) -> CloudLedger:
    """Open (and create or migrate) the ledger with the chain keys from the data directory.

    `pool` sizes this process's PostgreSQL connections (default: `cloud.pool_size` and
    `cloud.max_overflow`).

    Until the chain has a station or a rule set, `[offline_redemption] enabled = false` turns
    HQ's switch off at each open; from then on the switch lives only in the database (the
    policy route and CLI change it).
    """
    ensure_data_dir(settings.data_dir)
    keys = load_or_create_chain_keys(settings.data_dir)
    url = settings.database_url
    private_sqlite_file(url)
    try:
        ledger = CloudLedger.open(
            url,
            chain_keys=keys,
            policy=allowance_policy(settings),
            trust=settings.trust_policy(),
            create=create,
            pool=pool or PoolSize(settings.cloud.pool_size, settings.cloud.max_overflow),
        )
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise CloudConfigError(f"database {safe_url(url)}: {first}") from exc
    if not settings.offline_redemption.enabled and not ledger.rulesets() and not ledger.stations():
        ledger.set_offline_redemption(False, datetime.now(UTC))
    return ledger


def private_sqlite_file(url: str) -> None:
    """A SQLite ledger's file is created 0600 (SQLite gives its -wal and -shm that mode);
    one an older version left readable by others is tightened, companions included."""
    try:
        parsed = make_url(url)
    except (SQLAlchemyError, ValueError):
        return  # CloudLedger.open reports it
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    path = Path(parsed.database or "")
    try:
        if path.parent.is_dir():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        for file in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
            if file.exists() and stat.S_IMODE(file.stat().st_mode) & 0o077:
                os.chmod(file, 0o600)
    except OSError as exc:
        raise CloudConfigError(f"database file {path}: {exc.strerror or exc}") from exc


def refuse_open_data_dir(data_dir: Path) -> None:
    """The service refuses a data folder other users can read, write or enter."""
    try:
        mode = stat.S_IMODE(data_dir.stat().st_mode)
    except FileNotFoundError:
        return  # created 0700 on the way
    except OSError as exc:
        raise CloudConfigError(f"data folder {data_dir}: {exc.strerror or exc}") from exc
    if mode & 0o077:
        raise CloudConfigError(
            f"data folder {data_dir} is open to other users (mode {mode:04o}); "
            f"run: chmod 700 {data_dir}"
        )


class ExpiryJob(PeriodicJob):
    """Expire lots past their date and make the coming months' events partitions: once at
    start, then every `interval_s`, in a thread."""

    def __init__(
        self,
        ledger: CloudLedger,
        clock: Callable[[], datetime],
        interval_s: float = EXPIRY_INTERVAL_S,
    ) -> None:
        super().__init__("cloud-expiry", interval_s)
        self._ledger = ledger
        self._clock = clock

    def run_once(self) -> None:
        try:
            expired = self._ledger.expire_lots(self._clock())
            if expired:
                log.info("expired %d lot(s)", expired)
        except Exception:  # a failed run is retried at the next tick, never fatal
            log.exception("lot expiry failed")
        try:
            made = self._ledger.keep_partitions(self._clock())
            if made:
                log.info("events partitions made: %s", ", ".join(made))
        except Exception:
            log.exception("events partition upkeep failed")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def serve(
    settings: CloudSettings,
    *,
    ready: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], datetime] | None = None,
    expiry_interval_s: float = EXPIRY_INTERVAL_S,
    workers: int = 1,
) -> None:
    """Run the service until SIGTERM/SIGINT or `stop`; `ready(base_url)` once it listens.

    One worker serves from this process (threads: HTTP, expiry); more are processes under a
    supervisor (supervisor.py; PostgreSQL only, see `worker_count`). Refuses
    (CloudConfigError) a data folder open to other users. Run as the process's own service
    (from the main thread: `cloud run`), it sets umask 077 first, so every file it creates
    is private whatever the caller's umask.
    """
    if workers > 1:
        if clock is not None:
            raise ValueError("worker processes keep the real clock")
        from .supervisor import serve_workers  # noqa: PLC0415 - one module per way of serving

        serve_workers(
            settings, workers, ready=ready, stop=stop, expiry_interval_s=expiry_interval_s
        )
        return
    from .app import build_cloud_app  # noqa: PLC0415 - a supervisor never builds the app

    if threading.current_thread() is threading.main_thread():
        os.umask(0o077)
    refuse_open_data_dir(settings.data_dir)
    stop = stop or threading.Event()
    clock = clock or _utc_now
    ledger = open_ledger(settings)
    replica = open_replica(settings, ledger.db)  # None without database_url_read
    try:
        signing_key = load_or_create_signing_key(settings.data_dir)
        if not settings.admin_token():
            log.warning("no admin_token configured: every HQ route answers 401")
        app = build_cloud_app(
            settings, ledger=ledger, signing_key=signing_key, clock=clock, replica=replica
        )
        sock = listen(settings.cloud.host, settings.cloud.port)
        url = base_url(settings.cloud.host, sock)
        expiry = ExpiryJob(ledger, clock, expiry_interval_s)

        def started() -> None:
            settle_heap()
            log.info("cloud ledger on %s (%s)", url, ledger.dialect)
            expiry.start()
            if replica is not None:
                replica.start()  # the heartbeat the replica's lag is measured by
            if ready is not None:
                ready(url)

        restore = stop_on_signals(stop)
        restore_hup = _ignore_hup()
        try:
            asked = run_http(http_server(settings, app), sock, stop, started)
        finally:
            expiry.stop()
            restore_hup()
            restore()
            sock.close()
        if not asked:
            raise CloudConfigError(f"the HTTP server on {url} stopped unexpectedly")
    finally:
        if replica is not None:
            replica.close()
        ledger.close()


def _ignore_hup() -> Callable[[], None]:
    """One process has no workers to restart: SIGHUP is logged, not fatal."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: FrameType | None) -> None:
        log.warning("SIGHUP ignored: this service runs in one process (--workers 1)")

    previous = signal.signal(signal.SIGHUP, handler)

    def restore() -> None:
        signal.signal(signal.SIGHUP, previous)

    return restore
