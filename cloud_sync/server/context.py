"""What every route of the cloud app shares: the ledger, the keys, the clock, the counters.

Built by `build_cloud_app` and kept on `app.state`, so each app (a test's, the service's)
has its own and nothing lives at module level.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Request

from cloud_sync.ledger import CloudLedger
from cloud_sync.loyalty.privacy import MemberKeys
from cloud_sync.wire import Problem

from .metrics import CloudMetrics

__all__ = ["STATION_ID_KEY", "ApiProblem", "CloudContext", "cloud_context", "station_of"]

STATION_ID_KEY = "loyalpump_station_id"


class ApiProblem(Exception):
    """Answer the request with `status` and a `Problem` body."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        *,
        expected_seq: int | None = None,
        epoch: int | None = None,
        event_id: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.problem = Problem(
            error=error, detail=detail, expected_seq=expected_seq, epoch=epoch, event_id=event_id
        )


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

    def now(self) -> datetime:
        return self.clock()


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
