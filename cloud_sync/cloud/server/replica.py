"""The read replica (`database_url_read`): opened read-only, watched for lag, fed a heartbeat.

The replica is a second PostgreSQL database that streams from the primary (physical or
logical replication; the program does not care which). Every session on it starts with
`default_transaction_read_only = on`, so a route that writes by mistake fails loudly there
instead of writing where no one will look.

How far behind it is comes from the heartbeat row (ledger/heartbeat.py): the primary's
service rewrites it every `HEARTBEAT_EVERY_S`, and `now - beat` read on the replica bounds
the age of its data. `ReadReplica.state()` measures that at most every `RECHECK_S` (one
request measures, the others use the last answer) and says whether reads may go there: not
when it is unreachable, has no beat yet, or lags more than `read_max_lag_s`. Each change of
that state is logged once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, create_engine, inspect, select
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from cloud_sync.cloud.ledger.database import SCHEMA_VERSION, Database, PoolSize
from cloud_sync.cloud.ledger.heartbeat import beat, last_beat_ms, replica_heartbeat
from cloud_sync.cloud.ledger.schema import schema_version

from .periodic import PeriodicJob
from .settings import CloudSettings

__all__ = [
    "HEARTBEAT_EVERY_S",
    "RECHECK_S",
    "HeartbeatJob",
    "ReadReplica",
    "ReplicaState",
    "open_read_database",
    "open_replica",
]

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 1.0
RECHECK_S = 0.5
CONNECT_TIMEOUT_S = 3  # an unreachable replica costs a request this long, then the primary

# Why reads go to the primary (or "ok": they go to the replica). "schema": the replica's
# tables are missing or at another schema version than this program's (logical replication
# copies rows, never DDL: a migration must be run against the replica too).
Reason = Literal["ok", "lagging", "unreachable", "no-heartbeat", "schema"]


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def open_read_database(url: str, pool: PoolSize | None = None) -> Database:
    """The replica's engine: read-only sessions, a short connect timeout, and the same
    connection budget and wait per process as the primary's (`pool`).

    Nothing is asked of the replica here: one that is down or behind at start only sends
    the reads to the primary until it is back (`ReadReplica.state`), it never stops the
    service.
    """
    sizes = pool or PoolSize()
    engine = create_engine(
        url,
        pool_pre_ping=True,
        pool_size=sizes.size,
        max_overflow=sizes.overflow,
        pool_timeout=sizes.wait_s,
        connect_args={
            "options": "-c default_transaction_read_only=on",
            "connect_timeout": CONNECT_TIMEOUT_S,
        },
    )
    return Database(engine)


def _replica_facts(conn: Connection) -> tuple[int | None, int | None]:
    """The replica's ledger schema version and last heartbeat (None: missing)."""
    tables = inspect(conn)
    if not tables.has_table("schema_version") or not tables.has_table(replica_heartbeat.name):
        return None, None
    version = conn.execute(select(schema_version.c.version)).scalar_one_or_none()
    return (None if version is None else int(version)), last_beat_ms(conn)


@dataclass(frozen=True)
class ReplicaState:
    """One measurement: may reads go to the replica, and how old may its data be."""

    reason: Reason
    lag_ms: int | None  # now - beat when measured; None when it could not be measured
    measured_at: float  # time.monotonic() of the measurement

    @property
    def usable(self) -> bool:
        return self.reason == "ok"

    def lag_bound_ms(self, now_monotonic: float) -> int:
        """The data's age now: the measured lag plus the time since it was measured."""
        elapsed = max(0, int((now_monotonic - self.measured_at) * 1000))
        return (self.lag_ms or 0) + elapsed


class ReadReplica:
    """The replica, its measured lag, and the heartbeat the primary's service writes."""

    def __init__(
        self,
        replica: Database,
        primary: Database,
        max_lag_s: int,
        *,
        wall_ms: Callable[[], int] = _wall_ms,
        recheck_s: float = RECHECK_S,
        heartbeat_every_s: float = HEARTBEAT_EVERY_S,
    ) -> None:
        self.db = replica
        self.max_lag_ms = max_lag_s * 1000
        self._wall_ms = wall_ms
        self._recheck_s = recheck_s
        self._lock = threading.Lock()
        self._measuring = False
        self._state: ReplicaState | None = None
        self._logged: Reason = "ok"
        self._heartbeat = HeartbeatJob(primary, wall_ms, heartbeat_every_s)

    def beat_now(self) -> None:
        """Write one heartbeat on the primary now (before the first request measures)."""
        self._heartbeat.beat_once()

    def start(self) -> None:
        """Start the heartbeat (the service's own: `serve` calls it once it listens)."""
        self._heartbeat.start()

    def close(self) -> None:
        self._heartbeat.stop()
        self.db.close()

    def state(self) -> ReplicaState:
        """The replica's state, measured afresh when the last measurement is `recheck_s` old.

        One caller measures at a time; the others meanwhile take the last measurement, so a
        slow replica slows one request per `recheck_s`, not all of them.
        """
        with self._lock:
            state = self._state
            stale = state is None or time.monotonic() - state.measured_at >= self._recheck_s
            if state is not None and (not stale or self._measuring):
                return state
            self._measuring = True
        try:
            state, exc = self._measure()
        finally:
            with self._lock:
                self._measuring = False
        self._set(state, exc)
        return state

    def failed(self, exc: BaseException) -> None:
        """A read on the replica failed for want of the replica: unreachable until re-measured."""
        self._set(ReplicaState("unreachable", None, time.monotonic()), exc)

    def _measure(self) -> tuple[ReplicaState, SQLAlchemyError | None]:
        try:
            version, beat_ms = self.db.read(_replica_facts)
        except (OperationalError, InterfaceError) as exc:
            return ReplicaState("unreachable", None, time.monotonic()), exc
        except SQLAlchemyError as exc:  # answers, but not as a ledger of ours does
            return ReplicaState("schema", None, time.monotonic()), exc
        now = time.monotonic()
        if version != SCHEMA_VERSION:
            return ReplicaState("schema", None, now), None
        if beat_ms is None:
            return ReplicaState("no-heartbeat", None, now), None
        lag_ms = max(0, self._wall_ms() - beat_ms)
        reason: Reason = "ok" if lag_ms <= self.max_lag_ms else "lagging"
        return ReplicaState(reason, lag_ms, now), None

    def _set(self, state: ReplicaState, exc: BaseException | None = None) -> None:
        with self._lock:
            self._state = state
        self._log_change(state, exc)

    def _log_change(self, state: ReplicaState, exc: BaseException | None = None) -> None:
        with self._lock:
            if state.reason == self._logged:
                return
            self._logged = state.reason
        if state.usable:
            log.info("read replica back in use (lag %d ms)", state.lag_ms or 0)
        elif state.reason == "lagging":
            log.warning(
                "read replica lags %d ms, more than read_max_lag_s (%d s): reading the primary",
                state.lag_ms or 0,
                self.max_lag_ms // 1000,
            )
        elif state.reason == "no-heartbeat":
            log.warning("read replica has no heartbeat yet: reading the primary")
        elif state.reason == "schema":
            log.warning(
                "read replica holds no ledger at schema %d (run the migration against it): "
                "reading the primary",
                SCHEMA_VERSION,
            )
        else:
            why = "" if exc is None else f": {type(exc).__name__}"
            log.warning("read replica unreachable%s: reading the primary", why)


class HeartbeatJob(PeriodicJob):
    """Rewrite the heartbeat row on the primary every `every_s`, in a thread."""

    def __init__(self, primary: Database, wall_ms: Callable[[], int], every_s: float) -> None:
        super().__init__("cloud-heartbeat", every_s)
        self._db = primary
        self._wall_ms = wall_ms
        self._failing = False

    def beat_once(self) -> None:
        self._db.transact(lambda conn: beat(conn, self._wall_ms()))

    def run_once(self) -> None:
        try:
            self.beat_once()
        except Exception:  # the primary is down: every route says so; log it once
            if not self._failing:
                log.exception("replica heartbeat failed (retrying every %.0f s)", self._every_s)
            self._failing = True
        else:
            if self._failing:
                log.info("replica heartbeat written again")
            self._failing = False


def open_replica(settings: CloudSettings, primary: Database) -> ReadReplica | None:
    """The configured replica (one first beat written on the primary); None without one."""
    url = settings.cloud.database_url_read
    if not url:
        return None
    pool = PoolSize(settings.cloud.pool_size, settings.cloud.max_overflow)
    replica = ReadReplica(open_read_database(url, pool), primary, settings.cloud.read_max_lag_s)
    replica.beat_now()
    return replica
