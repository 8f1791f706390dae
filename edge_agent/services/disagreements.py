"""What the cloud did otherwise than this station booked: events it rejected, flagged as
beyond the station's authority, or held for HQ's approval (docs/sync.md, "Trust").

The station's own ledger is consistent either way; these are where the chain's ledger
differs from it, so `edge verify` lists them instead of passing until a manager settles
each one (once HQ has looked at it).
"""

from __future__ import annotations

from ..errors import ServiceError
from ..store.audit import record_audit
from ..store.sync import Disagreement, open_disagreements, settle_disagreement
from .station import Station

__all__ = ["describe", "open_cloud_disagreements", "settle_cloud_disagreement"]

_WORDS = {"rejected": "rejected", "flagged": "booked but flagged", "held": "held for HQ"}


def describe(found: Disagreement) -> str:
    """One line a manager can act on."""
    return (
        f"the cloud {_WORDS.get(found.status, found.status)} {found.kind} event "
        f"{found.event_id} (seq {found.seq}): {found.reason}"
    )


def open_cloud_disagreements(station: Station, limit: int = 1000) -> list[Disagreement]:
    with station.store.read() as tx:
        return open_disagreements(tx, limit)


def settle_cloud_disagreement(station: Station, event_id: str, *, actor: str) -> None:
    """Mark a disagreement settled (audited): HQ answered, nothing more to do here."""
    at = station.now().isoformat()
    with station.store.write() as tx:
        if not settle_disagreement(tx, event_id, actor, at):
            raise ServiceError(
                "disagreement.not_found", f"no open disagreement about event {event_id}"
            )
        record_audit(
            tx,
            at=at,
            actor=actor,
            action="cloud.disagreement_settled",
            subject=f"event:{event_id}",
            details={},
        )
