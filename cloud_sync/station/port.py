"""What the sync engine needs from a station, and nothing more.

`cloud_sync` never imports `edge_agent`; the station implements this protocol
(`edge_agent.services.sync.StationSyncPort`) and hands it to `cloud_sync.station.engine.SyncEngine`.
Every method that changes the station commits before it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cloud_sync.core.wire import (
    ChangesResponse,
    EnrolRequest,
    EnrolResponse,
    PushRequest,
    PushResponse,
)

__all__ = ["Backlog", "StationPort"]


@dataclass(frozen=True)
class Backlog:
    pending: int  # events not yet acknowledged by the cloud
    oldest_created_at: str | None  # creation time of the oldest pending event


class StationPort(Protocol):
    @property
    def station_id(self) -> str: ...

    def cloud_url(self) -> str:
        """Base URL of the cloud ledger, e.g. http://127.0.0.1:8000 (empty: not configured)."""
        ...

    def cloud_token(self) -> str:
        """The station's bearer token, read afresh each call (token files may be rotated)."""
        ...

    def enrolment_request(self) -> EnrolRequest | None:
        """None once the station holds the chain's keys; otherwise what to send."""
        ...

    def complete_enrolment(self, response: EnrolResponse) -> None:
        """Store the chain keys and signing key, re-seal local members (one transaction)."""
        ...

    def pending_batch(self, limit: int) -> PushRequest | None:
        """The oldest unacknowledged events of one epoch, contiguous by seq; None if none."""
        ...

    def next_batch(self, epoch: int, after_seq: int, limit: int) -> PushRequest | None:
        """The unacknowledged events of `epoch` that follow `after_seq` without a hole; None
        when the next pending event is not `after_seq + 1` of that epoch.

        The engine reads the next batch while the cloud works on the current one (still one
        request in flight), and uses it only once the current one is acknowledged in full."""
        ...

    def acknowledge(self, response: PushResponse) -> None:
        """Mark every event the response lists as acknowledged (rejected ones included)."""
        ...

    def rewind(self, epoch: int, expected_seq: int) -> int:
        """The cloud lost events: mark events of `epoch` from `expected_seq` on as pending
        again; returns how many were re-queued."""
        ...

    def changes_cursor(self) -> int: ...

    def apply_changes(self, page: ChangesResponse) -> None:
        """Apply a page and store `page.next_cursor`, all in one transaction."""
        ...

    def backlog(self) -> Backlog: ...

    def record_contact(self, at: str) -> None:
        """A full push+pull cycle succeeded at `at` (ISO 8601)."""
        ...

    def record_alert(self, code: str, detail: str) -> None:
        """A condition an operator must see (a conflict, a refused rule set); '' clears."""
        ...
