"""`ReadLedger`: how a route says "my reads may come from the read replica".

A route that only reads takes `reads: ReadLedger` and reads through `reads.read(work)`;
that parameter is the one place it declares itself replica-safe. Everything else keeps
`context.ledger.db` and the primary:
- every write, and the reads a write decides on;
- station sync, push and pull: a station must read its own writes, and the changes feed's
  cursor must never skip a change the replica has not applied yet;
- authentication: the member's token and HQ's session are checked on the primary. A token
  issued a moment ago must work at once, and a revoked one must stop at once; a session
  check is one indexed row, so reading it from the primary costs little, where "try the
  replica, then the primary when it has not seen the token" would answer a revoked token
  from a stale copy for up to `read_max_lag_s`.

A route whose answer would mislead when the replica has not yet seen a row the primary has
(the member signed up a second ago, and `/me` would say "signed out") passes `missing`: such
an answer is read again on the primary.

Answers read on the replica carry `Loyalpump-Replica-Lag-Ms` (how old its data may be) and
`Loyalpump-Read-Source: replica`; answers a replica-safe route read on the primary carry
`Loyalpump-Read-Source: primary; reason=…` (lagging, unreachable, no-heartbeat, schema,
missing, busy). Without `database_url_read` neither header is sent (docs/contracts.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy import Connection
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud_sync.cloud.ledger.database import Database

from .context import cloud_context
from .replica import ReadReplica

__all__ = [
    "LAG_HEADER",
    "READS_KEY",
    "SOURCE_HEADER",
    "LedgerReads",
    "ReadLedger",
    "ReplicaHeaders",
    "ledger_reads",
]

_T = TypeVar("_T")

LAG_HEADER = "Loyalpump-Replica-Lag-Ms"
SOURCE_HEADER = "Loyalpump-Read-Source"
READS_KEY = "loyalpump_reads"  # the request's LedgerReads, in the ASGI scope's state


class LedgerReads:
    """One request's reads: on the replica while it is fit, else on the primary.

    Remembers where its reads went, for the response's headers: the largest lag of the
    replica reads, and the reason of the last read sent to the primary.
    """

    def __init__(self, primary: Database, replica: ReadReplica | None) -> None:
        self._primary = primary
        self._replica = replica
        self._lock = threading.Lock()
        self.lag_ms: int | None = None
        self.primary_reason: str | None = None

    def read(
        self,
        work: Callable[[Connection], _T],
        *,
        snapshot: bool = False,
        missing: Callable[[_T], bool] | None = None,
    ) -> _T:
        """Run `work` in one read-only transaction (one snapshot with `snapshot`)."""
        replica = self._replica
        if replica is None:
            return self._primary.transact(work, write=False, snapshot=snapshot)
        state = replica.state()
        reason: str = state.reason
        if state.usable:
            lag_ms = state.lag_bound_ms(time.monotonic())
            try:
                found = replica.db.transact(work, write=False, snapshot=snapshot)
            except PoolTimeout:  # this worker's replica connections all busy: not a fault
                reason = "busy"
            except (OperationalError, InterfaceError) as exc:
                replica.failed(exc)
                reason = "unreachable"
            else:
                if missing is None or not missing(found):
                    self._note(lag_ms=lag_ms)
                    return found
                reason = "missing"
        self._note(reason=reason)
        return self._primary.transact(work, write=False, snapshot=snapshot)

    def _note(self, *, lag_ms: int | None = None, reason: str | None = None) -> None:
        with self._lock:
            if lag_ms is not None:
                self.lag_ms = lag_ms if self.lag_ms is None else max(self.lag_ms, lag_ms)
            if reason is not None:
                self.primary_reason = reason

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The response's read headers (none when nothing was read through here)."""
        with self._lock:
            lag_ms, reason = self.lag_ms, self.primary_reason
        out: list[tuple[bytes, bytes]] = []
        if lag_ms is not None:
            out.append((LAG_HEADER.lower().encode(), str(lag_ms).encode()))
        if reason is not None:
            out.append((SOURCE_HEADER.lower().encode(), f"primary; reason={reason}".encode()))
        elif lag_ms is not None:
            out.append((SOURCE_HEADER.lower().encode(), b"replica"))
        return out


def ledger_reads(request: Request) -> LedgerReads:
    """The request's `LedgerReads` (the FastAPI dependency behind `ReadLedger`)."""
    context = cloud_context(request)
    reads = LedgerReads(context.ledger.db, context.replica)
    if context.replica is not None:
        request.scope.setdefault("state", {})[READS_KEY] = reads
    return reads


ReadLedger = Annotated[LedgerReads, Depends(ledger_reads)]


class ReplicaHeaders:
    """Adds the read headers of the request's `LedgerReads` to its response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                reads: Any = scope.get("state", {}).get(READS_KEY)
                if isinstance(reads, LedgerReads):
                    message = {**message, "headers": [*message["headers"], *reads.headers()]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
