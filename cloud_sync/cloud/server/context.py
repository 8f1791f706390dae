"""What every route of the cloud app shares: the ledger, the keys, the clock, the counters.

Built by `build_cloud_app` and kept on `app.state`, so each app (a test's, the service's)
has its own and nothing lives at module level.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Request
from sqlalchemy.exc import TimeoutError as PoolTimeout

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.core.privacy import MemberKeys
from cloud_sync.core.wire import Problem

from .metrics import CloudMetrics
from .replica import ReadReplica

__all__ = [
    "ADMIN_TOKEN_KEY",
    "STATION_ID_KEY",
    "ApiProblem",
    "CloudContext",
    "cloud_context",
    "station_of",
]

STATION_ID_KEY = "loyalpump_station_id"
# Set by the gate on an HQ console request that carried the admin token.
ADMIN_TOKEN_KEY = "loyalpump_hq_admin_token"  # noqa: S105 (a scope key, not a secret)


class ApiProblem(Exception):
    """Answer the request with `status` and a `Problem` body.

    `headers` go with the answer (`Retry-After` on a 429); `extra` adds fields a client acts
    on beside `error` (a one-time code's `tries_left`)."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        *,
        expected_seq: int | None = None,
        epoch: int | None = None,
        event_id: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, int | str | bool] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        self.problem = Problem(
            error=error, detail=detail, expected_seq=expected_seq, epoch=epoch, event_id=event_id
        )


BUSY_RETRY_AFTER_S = (1, 5)  # a request that found no connection comes back 1 to 5 s later
_TOO_MANY_CONNECTIONS = "53300"  # PostgreSQL's too_many_connections


def is_overload(exc: BaseException) -> bool:
    """True for "no database connection to be had right now": this worker's pool waited in
    vain (SQLAlchemy's TimeoutError), or the server refused a new one (max_connections)."""
    if isinstance(exc, PoolTimeout):
        return True
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == _TOO_MANY_CONNECTIONS


def busy() -> ApiProblem:
    """503 busy with Retry-After: every database connection of this worker is in use.

    Under a catch-up storm a worker's requests can outnumber its connections (`PoolSize`);
    the one that waited `wait_s` in vain is told to come back rather than failed (500), and a
    station's client does so after Retry-After; its push then applies exactly once. The
    delay is spread over a few seconds so that 200 stations told at once do not all return
    at once.
    """
    low, high = BUSY_RETRY_AFTER_S
    return ApiProblem(
        503,
        "busy",
        "every database connection of the service is in use; retry in a moment",
        headers={"Retry-After": str(random.randint(low, high))},  # noqa: S311 - spread, not secret
    )


TOTALS_MAX_AGE_S = 15.0


class _TotalsCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at = -TOTALS_MAX_AGE_S
        self._value: dict[str, int] | None = None

    def get(self, ledger: CloudLedger) -> dict[str, int] | None:
        with self._lock:
            if time.monotonic() - self._at >= TOTALS_MAX_AGE_S:
                try:
                    self._value = ledger.totals()
                except Exception:  # the database is down: answer with database_up 0
                    self._value = None
                self._at = time.monotonic()
            return self._value


@dataclass(frozen=True)
class CloudContext:
    ledger: CloudLedger
    chain_keys: MemberKeys
    signing_key: Ed25519PrivateKey
    signing_public_key: str  # base64 of the raw Ed25519 public key
    signing_key_id: str
    admin_token: str  # '' disables the HQ routes
    clock: Callable[[], datetime]
    metrics: CloudMetrics
    max_body_bytes: int
    replica: ReadReplica | None = None  # database_url_read: see read_ledger.ReadLedger
    _totals: _TotalsCache = field(default_factory=_TotalsCache)

    def now(self) -> datetime:
        return self.clock()

    def cached_totals(self) -> dict[str, int] | None:
        """The ledger's totals, at most `TOTALS_MAX_AGE_S` old; None while the database is
        down. /metrics needs no token, so a scraper (or anyone) must not be able to make
        the database run its aggregates on every request."""
        return self._totals.get(self.ledger)


def cloud_context(request: Request) -> CloudContext:
    context = request.app.state.cloud
    assert isinstance(context, CloudContext)
    return context


def station_of(request: Request) -> str:
    """The station the request's bearer token belongs to (set by the gate)."""
    station_id = request.scope.get("state", {}).get(STATION_ID_KEY)
    if not isinstance(station_id, str):
        raise ApiProblem(401, "unauthorized", "a station token is required")
    return station_id
