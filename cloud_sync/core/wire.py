"""The station <-> cloud wire contract (schema version 1).

Both sides import these models and nothing else of each other. Money and points are
integers or decimal strings on the wire, never floats. Events travel as raw objects inside
`PushRequest` so the cloud can reject one malformed event (acknowledged, quarantined)
without refusing the whole batch and blocking the station's queue behind it.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "FLAGGED_PREFIX",
    "HELD_PREFIX",
    "MAX_BATCH",
    "SCHEMA_VERSION",
    "Allowance",
    "ChangesResponse",
    "DenyEntry",
    "EnrolRequest",
    "EnrolResponse",
    "EventResult",
    "LotSnapshot",
    "MemberDelta",
    "MemberKeysWire",
    "PlateDelta",
    "Problem",
    "PushRequest",
    "PushResponse",
    "SignedRuleSet",
    "WireEvent",
]

SCHEMA_VERSION: Final = 1
MAX_BATCH = 1000
# An applied event's `reason` when the cloud took it but disagrees with the station: booked
# and flagged for HQ (beyond the station's authority), or held for HQ's approval. Stations
# of schema 1 that predate these read them as a plain reason and go on.
FLAGGED_PREFIX: Final = "flagged: "
HELD_PREFIX: Final = "held: "

StationId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
EventId = Annotated[str, Field(pattern=_UUID)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WireEvent(_Wire):
    """One outbox event: a time-ordered id, a dense per-station sequence, its epoch."""

    event_id: EventId
    seq: Annotated[int, Field(ge=1)]
    epoch: Annotated[int, Field(ge=1)]
    kind: Annotated[str, Field(min_length=1, max_length=64)]
    payload: dict[str, Any]
    created_at: str


class PushRequest(_Wire):
    """A contiguous run of one epoch's events, oldest first.

    `epoch_first_seq` is the first sequence number the station used in this epoch, so the
    cloud can tell a new epoch's start (after a station restore) from a gap.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    station_id: StationId
    epoch: Annotated[int, Field(ge=1)]
    epoch_first_seq: Annotated[int, Field(ge=1)] = 1
    events: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_BATCH)]


class EventResult(_Wire):
    event_id: str
    seq: int
    status: Literal["applied", "duplicate", "rejected"]
    reason: str | None = None

    @property
    def disagreement(self) -> str | None:
        """What the cloud did otherwise than the station booked: rejected, flagged or
        held (the reason), or None when it applied the event as sent."""
        if self.status == "rejected":
            return self.reason or "rejected"
        # A replay carries the first answer's reason: applied as sent had none.
        if self.reason is not None and (
            self.status == "duplicate" or self.reason.startswith((FLAGGED_PREFIX, HELD_PREFIX))
        ):
            return self.reason
        return None

    @property
    def disagreement_kind(self) -> Literal["rejected", "flagged", "held"] | None:
        """`disagreement` in one word: not booked, booked but flagged, or held for HQ."""
        reason = self.disagreement
        if reason is None:
            return None
        if reason.startswith(HELD_PREFIX):
            return "held"
        if reason.startswith(FLAGGED_PREFIX):
            return "flagged"
        return "rejected"


class PushResponse(_Wire):
    schema_version: Literal[1] = SCHEMA_VERSION
    station_id: str
    epoch: int
    high_water: int  # every seq up to this one, in this epoch, is stored for good
    results: list[EventResult]


class Problem(_Wire):
    """The body of every 4xx from the cloud: a stable code, a sentence, and what to do."""

    error: str  # sequence_gap | event_conflict | unauthorized | forbidden | invalid | ...
    detail: str
    expected_seq: int | None = None  # sequence_gap: resend from here
    epoch: int | None = None
    event_id: str | None = None  # event_conflict: the id sent with another payload


class MemberKeysWire(_Wire):
    """Member-data keys (base64), handed out at enrolment or uploaded by a station."""

    key_id: str
    encryption_key: str = Field(repr=False)
    index_key: str = Field(repr=False)


class EnrolRequest(_Wire):
    """Sent once by a station: the keys it sealed members with before it had chain keys,
    so the cloud can re-seal and re-index those members under the chain's keys."""

    schema_version: Literal[1] = SCHEMA_VERSION
    station_id: StationId
    station_keys: list[MemberKeysWire] = Field(default_factory=list)


class EnrolResponse(_Wire):
    schema_version: Literal[1] = SCHEMA_VERSION
    station_id: str
    member_keys: MemberKeysWire  # chain-wide: a phone found at one station is found at all
    signing_key_id: str
    signing_public_key: str  # base64 of the raw 32-byte Ed25519 public key


class SignedRuleSet(_Wire):
    version: int
    document: str  # the exact bytes (UTF-8) that were signed
    signature: str  # base64 Ed25519 signature over `document`
    signing_key_id: str


class PlateDelta(_Wire):
    plate_index: str
    plate_sealed: str


class LotSnapshot(_Wire):
    points: Annotated[int, Field(gt=0)]
    expires_at: str | None


class MemberDelta(_Wire):
    """A member's chain-wide state when the page was built.

    `lots` and `overdraft` give the chain balance; `as_of_seq` is the pulling station's
    high-water mark in `as_of_epoch` at that moment, so the station adds only its own
    events the cloud had not yet seen.
    """

    member_id: str
    status: Literal["active", "merged", "erased"]
    merged_into: str | None = None
    phone_index: str | None = None
    phone_sealed: str | None = None
    phone_masked: str = ""
    name_sealed: str | None = None
    key_id: str = ""
    registered_at: str = ""
    tier: str | None = None
    plates: list[PlateDelta] = Field(default_factory=list)
    lots: list[LotSnapshot] = Field(default_factory=list)
    overdraft: Annotated[int, Field(ge=0)] = 0
    as_of_epoch: int = 1
    as_of_seq: Annotated[int, Field(ge=0)] = 0


class DenyEntry(_Wire):
    member_id: str
    denied: bool
    overdraft: Annotated[int, Field(ge=0)] = 0


class Allowance(_Wire):
    """The points this station may redeem before it next reaches the cloud."""

    allowance_id: str
    points: Annotated[int, Field(ge=0)]
    per_member_cap: Annotated[int, Field(ge=0)]
    expires_at: str
    max_snapshot_age_s: Annotated[int, Field(ge=0)]


class ChangesResponse(_Wire):
    schema_version: Literal[1] = SCHEMA_VERSION
    cursor: int  # the `since` this page answers
    next_cursor: int  # store this with the page, in the same transaction
    more: bool  # another page is waiting
    rulesets: list[SignedRuleSet] = Field(default_factory=list)
    members: list[MemberDelta] = Field(default_factory=list)
    deny: list[DenyEntry] = Field(default_factory=list)
    allowance: Allowance | None = None
    offline_redemption: bool = True  # HQ's switch; off: redeem only while in contact
    server_time: str = ""
