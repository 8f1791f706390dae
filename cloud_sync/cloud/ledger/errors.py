"""The ledger's refusals: a stable `code` for programs, a readable sentence for people."""

from __future__ import annotations

__all__ = ["EventConflict", "LedgerError", "SequenceGap"]


class LedgerError(Exception):
    """A request the ledger refuses; nothing it asked for was written."""

    code: str

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def __reduce__(self) -> tuple[type[LedgerError], tuple[str, str]]:
        return (type(self), (self.code, str(self)))


class SequenceGap(LedgerError):
    """The batch starts after what the cloud holds: resend this epoch from `expected_seq`."""

    expected_seq: int
    epoch: int

    def __init__(self, expected_seq: int, epoch: int, message: str | None = None) -> None:
        super().__init__(
            "sequence_gap",
            message or f"the cloud expects event {expected_seq} of epoch {epoch} next",
        )
        self.expected_seq = expected_seq
        self.epoch = epoch

    def __reduce__(self) -> tuple[type[SequenceGap], tuple[int, int, str]]:  # type: ignore[override]
        return (type(self), (self.expected_seq, self.epoch, str(self)))


class EventConflict(LedgerError):
    """Two different facts under one event id (or one sequence number): the batch is refused."""

    event_id: str

    def __init__(self, event_id: str, message: str) -> None:
        super().__init__("event_conflict", message)
        self.event_id = event_id

    def __reduce__(self) -> tuple[type[EventConflict], tuple[str, str]]:
        return (type(self), (self.event_id, str(self)))
