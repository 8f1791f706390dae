"""Faults of an event the ledger cannot apply: `Rejected` carries the reason stored with it.

A payload that is wrong for its kind is a fact the station recorded badly, not a reason to
stop its queue: the event is stored as rejected (quarantined for HQ) and the batch goes on.
The bounds every value must keep (so a value no column or calculation could hold is a
rejection, never a database error that fails the batch) live on the event models,
`cloud_sync.core.events`; a payload that does not validate is rejected with `payload_fault`.
"""

from __future__ import annotations

from cloud_sync.core.events import ID_LENGTH, MAX_INTEGER, SHORT_LENGTH, parse_moment

__all__ = ["ID_LENGTH", "MAX_INTEGER", "SHORT_LENGTH", "Rejected", "parse_moment"]


class Rejected(Exception):
    """This event cannot be applied; `reason` is stored with it and shown to HQ."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.reason = f"{code}: {detail}"
