"""The sync events: one typed model per kind a station pushes (event schema version 1).

The station builds these models and stores their canonical JSON in its outbox
(`model_dump(mode="json")`); the cloud validates each pushed payload against the model of its
kind (`EVENT_MODELS`) and hands its handler the model. A payload that does not validate is
rejected alone, with a readable reason (`payload_fault`), quarantined for HQ, and never blocks
the batch. The envelope (event id, sequence, epoch) is `cloud_sync.core.wire.WireEvent`.

Wire units, one per quantity: points and fen are integers; litres and yuan are decimal
strings with at least two places; times are ISO 8601 with a UTC offset. Every value is
bounded so no column or sum can overflow: text lengths, integers below 2**53 in size,
decimals below 10**9, times between 1970 and 9000.

Compatibility: events of schema version 1 written by release 0.6 wait in deployed outboxes.
Reading accepts their exact payloads: older key names are validation aliases (`pump` for
`fuelling_point`, `to` and `from` for a tier change), and keys no model names are ignored.
Writing uses the names below and keeps every key a 0.6 cloud reads. Pure: pydantic only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar, Final

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    Strict,
    StringConstraints,
    ValidationError,
    model_serializer,
)

__all__ = [
    "EVENT_MODELS",
    "EVENT_SCHEMA_VERSION",
    "ID_LENGTH",
    "MAX_INTEGER",
    "SHORT_LENGTH",
    "TEXT_LENGTH",
    "EarnReceipt",
    "EarnStep",
    "Event",
    "LedgerEntry",
    "MemberRegistered",
    "MemberTierChanged",
    "PlateAttached",
    "PointsAdjusted",
    "PointsExpired",
    "PointsRedeemed",
    "SaleDetached",
    "SaleMemberAttached",
    "SaleRecorded",
    "SaleReversed",
    "parse_moment",
    "payload_fault",
]

EVENT_SCHEMA_VERSION: Final = 1
TEXT_LENGTH: Final = 512
ID_LENGTH: Final = 64  # member, sale, redemption and allowance ids
SHORT_LENGTH: Final = 32  # grades, tiers, channels
# Points and fen: exact in a JSON number and in a float, far inside BIGINT even when summed.
MAX_INTEGER: Final = 2**53
# Litres and yuan of one sale: anything this large is a recording fault, not a sale.
_MAX_DECIMAL = Decimal(10) ** 9
# Times the ledger can turn into epoch milliseconds and add a year of expiry to.
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def parse_moment(value: str) -> datetime:
    """An ISO 8601 instant with an offset (a naive time could mean any zone), between 1970
    and 9000 so epoch milliseconds and expiry dates computed from it always exist."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{value!r} has no UTC offset")
    if not _EARLIEST <= moment < _LATEST:
        raise ValueError(f"{value!r} is outside the years 1970 to 9000")
    return moment


def _moment(value: object) -> datetime:
    if isinstance(value, datetime):  # built by the station
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("must be a time with a UTC offset")
        return value
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 time with an offset")
    try:
        return parse_moment(value)
    except ValueError:
        raise ValueError(
            "must be an ISO 8601 time with an offset, between the years 1970 and 9000"
        ) from None


def _decimal(value: object, *, bounded: bool) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError("must be a decimal string")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError("must be a decimal string") from None
    if not number.is_finite():
        raise ValueError("must be a finite decimal")
    if bounded and number < 0:
        raise ValueError("must be a finite, non-negative decimal")
    if bounded and number >= _MAX_DECIMAL:
        raise ValueError(f"must be below {_MAX_DECIMAL:,}")
    return number


def _decimal_text(value: Decimal) -> str:
    """At least two decimals, more only when the value really has them."""
    exponent = value.as_tuple().exponent
    shown = max(2, -exponent if isinstance(exponent, int) else 2)
    return f"{value:.{shown}f}"


def _note(value: object) -> str | None:
    """Free text for HQ's eyes only: cut to length, never a reason to reject."""
    return value[:TEXT_LENGTH] if isinstance(value, str) else None


def _list(value: object) -> object:
    return [] if value is None else value


# An ISO 8601 time with a UTC offset; written as `datetime.isoformat()`.
Moment = Annotated[
    datetime, BeforeValidator(_moment), PlainSerializer(datetime.isoformat, return_type=str)
]
# An integer (never a bool or a numeric string) below 2**53 in size.
Integer = Annotated[int, Strict(), Field(gt=-MAX_INTEGER, lt=MAX_INTEGER)]
Count = Annotated[int, Strict(), Field(ge=0, lt=MAX_INTEGER)]
# Litres or yuan: a non-negative decimal string below 10**9, written with >= 2 places.
Quantity = Annotated[
    Decimal,
    BeforeValidator(lambda v: _decimal(v, bounded=True)),
    PlainSerializer(_decimal_text, return_type=str),
]
# A factor or an exact value inside a receipt: any finite decimal, written as `str()`.
Exact = Annotated[
    Decimal, BeforeValidator(lambda v: _decimal(v, bounded=False)), PlainSerializer(str)
]
Id = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=ID_LENGTH)]
Short = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=SHORT_LENGTH)]
Text = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=TEXT_LENGTH)]
Note = Annotated[str | None, BeforeValidator(_note)]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="ignore", frozen=True, validate_by_name=True, validate_by_alias=True
    )


class Event(_Model):
    """Base of every event payload; `kind` names it on the wire (`WireEvent.kind`)."""

    kind: ClassVar[str]

    def payload(self) -> dict[str, Any]:
        """The canonical JSON object the outbox stores and the station pushes."""
        return self.model_dump(mode="json")


class LedgerEntry(_Model):
    """One of the station's ledger entries behind an event (its own bookkeeping)."""

    kind: Short = Field(description="earn | reverse | redeem | adjust | expire")
    points: Integer = Field(description="points, signed: credits positive, debits negative")
    expires_at: Moment | None = Field(
        default=None, description="earn entries: when the lot expires; null: never"
    )
    entry_id: Integer | None = Field(default=None, description="the station's ledger entry id")


Entries = Annotated[list[LedgerEntry], BeforeValidator(_list)]


class EarnStep(_Model):
    code: Text = Field(description="the pricing step: base | tier | bonus | rounding | ...")
    description: str = Field(max_length=TEXT_LENGTH, description="for the member's receipt")
    factor: Exact = Field(description="the step's multiplier, a decimal string")
    value: Exact = Field(description="the running points after the step, a decimal string")


class EarnReceipt(_Model):
    """The points a sale earned and why (`cloud_sync.core.pricing.PointsReceipt`): the
    cloud reprices the sale under `ruleset_version` at `tier` to check `points`."""

    ruleset_version: Integer = Field(description="the rule set that priced the sale")
    grade: Short = Field(description="fuel grade code, as in the rule set")
    tier: Short = Field(description="the member's tier code at the sale")
    bonus_name: str | None = Field(default=None, max_length=TEXT_LENGTH)
    exact: Exact = Field(description="points before rounding, a decimal string")
    points: Integer = Field(description="points earned (rounded)")
    rounding: Short = Field(description="floor | round | ceil")
    discount_per_litre: Exact = Field(description="yuan per litre off, a decimal string")
    discount_fen: Integer = Field(description="the discount of the whole sale, in fen")
    steps: list[EarnStep] = Field(default_factory=list)


class MemberRegistered(Event):
    kind: ClassVar[str] = "member.registered"
    member_id: Id = Field(description="time-ordered id the station chose (uuid7)")
    phone_index: Text = Field(description="blind index (keyed hash) of the E.164 phone")
    phone_sealed: Text = Field(description="the E.164 phone, sealed: '<key_id>:<token>'")
    phone_masked: str | None = Field(default=None, description="shown form, e.g. 138****8000")
    name_sealed: Text | None = Field(default=None, description="the name, sealed")
    registered_at: Moment
    consent_at: Moment | None = None
    consent_channel: Short | None = Field(default=None, description="counter | cli | web | ...")
    key_id: str | None = Field(default=None, description="the keys that sealed the fields")


class PlateAttached(Event):
    """A plate belongs to one member at a time: attaching it moves it from its owner."""

    kind: ClassVar[str] = "plate.attached"
    member_id: Id
    plate_index: Text = Field(description="blind index of the normalized plate")
    plate_sealed: Text = Field(description="the normalized plate, sealed")
    from_member: Id | None = Field(default=None, description="the owner it moved from")
    at: Moment


class _Earning(Event):
    """What a sale earns once a member is on it: the station's claim, its receipt and lots."""

    member_id: Id | None = None
    points: Count = Field(description="points the station booked for the member")
    tier: Short | None = Field(default=None, description="the member's tier code at the sale")
    ruleset_version: Integer | None = Field(default=None, description="the rules that priced it")
    receipt: EarnReceipt | None = None
    ledger: Entries = Field(
        default_factory=list, description="the earn entries: one lot each, summing to points"
    )


class SaleRecorded(_Earning):
    """A completed fuel sale as the dispenser (or a person) reported it."""

    kind: ClassVar[str] = "sale.recorded"
    sale_id: Id
    source: Text = Field(description="who reported it: dart | ifsf | manual | ...")
    source_key: Text | None = Field(
        default=None, description="the source's stable key of the sale (dedupe at the station)"
    )
    fuelling_point: Integer | None = Field(
        default=None,
        validation_alias=AliasChoices("fuelling_point", "pump"),
        description="the fuelling point (pump) number at the station; `pump` in 0.6",
    )
    nozzle: Integer | None = Field(default=None, description="the nozzle number on that point")
    grade: Short = Field(description="fuel grade code, as in the rule set")
    litres: Quantity = Field(description="volume in litres, a decimal string")
    amount: Quantity = Field(description="money in yuan, a decimal string (2 places)")
    unit_price: Quantity | None = Field(default=None, description="yuan per litre")
    started_at: str | None = Field(
        default=None, max_length=TEXT_LENGTH, description="as the driver reported it, if at all"
    )
    ended_at: Moment
    recorded_at: str | None = Field(default=None, max_length=TEXT_LENGTH)
    recorded_by: Note = Field(default=None, description="who keyed a manual sale")


class SaleMemberAttached(_Earning):
    kind: ClassVar[str] = "sale.member_attached"
    sale_id: Id
    member_id: Id
    at: Moment | None = None


class SaleReversed(Event):
    kind: ClassVar[str] = "sale.reversed"
    sale_id: Id
    at: Moment
    member_id: Id | None = None
    points: Integer | None = Field(default=None, description="points the sale had earned")
    reason: Note = None
    actor: Note = None
    ledger: Entries = Field(default_factory=list)


class SaleDetached(Event):
    """An attach undone at the till (the wrong member, or a slip): the points the sale
    earned that member are taken back, its own lot first, and the sale is open for a member
    again, so a later `sale.member_attached` can name the right one. `attach_no` says which
    attach of the sale this undoes (1 for the first, one more after each undo)."""

    kind: ClassVar[str] = "sale.detached"
    sale_id: Id
    member_id: Id = Field(description="the member taken off the sale")
    attach_no: Annotated[int, Strict(), Field(ge=1, lt=MAX_INTEGER)]
    points: Count = Field(description="points the attach had earned")
    at: Moment
    reason: Note = None
    actor: Note = None
    ledger: Entries = Field(
        default_factory=list, description="the station's take-back (a reverse entry, negative)"
    )


class PointsRedeemed(Event):
    kind: ClassVar[str] = "points.redeemed"
    redemption_id: Id = Field(description="the station's id; scoped by station in the cloud")
    member_id: Id
    points: Annotated[int, Strict(), Field(ge=1, lt=MAX_INTEGER)]
    value_fen: Count = Field(description="what the points paid, in fen")
    at: Moment
    allowance_id: Id | None = Field(default=None, description="the allowance it drew on")
    entry_id: Integer | None = None
    actor: Note = None
    ruleset_version: Integer | None = None


class PointsAdjusted(Event):
    """A manager's correction. A positive adjustment's `expires_at`: a time, or null for
    never; without the key (older stations), the rules in force at `at` decide."""

    kind: ClassVar[str] = "points.adjusted"
    member_id: Id
    points: Integer = Field(description="signed, never zero")
    at: Moment
    expires_at: Moment | None = None
    reason: Note = None
    actor: Note = None
    entry_id: Integer | None = None

    @property
    def expiry_declared(self) -> bool:
        return "expires_at" in self.model_fields_set

    @model_serializer(mode="wrap")
    def _keep_absence(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if not self.expiry_declared:
            data.pop("expires_at", None)
        return data


class PointsExpired(Event):
    """Recorded only: the cloud expires lots by their dates itself."""

    kind: ClassVar[str] = "points.expired"
    member_id: Id
    points: Count
    at: str | None = Field(
        default=None, max_length=TEXT_LENGTH, description="ISO 8601; recorded, never read"
    )
    entry_id: Integer | None = None
    lots: list[Integer] = Field(default_factory=list, description="the station's lot ids")


class MemberTierChanged(Event):
    kind: ClassVar[str] = "member.tier_changed"
    member_id: Id
    tier: Short = Field(
        validation_alias=AliasChoices("tier", "to"), description="the new tier code; `to` in 0.6"
    )
    previous_tier: str | None = Field(
        default=None,
        max_length=SHORT_LENGTH,
        validation_alias=AliasChoices("previous_tier", "from"),
        description="the tier before ('' for none); `from` in 0.6",
    )
    at: Moment | None = None


EVENT_MODELS: Final[dict[str, type[Event]]] = {
    model.kind: model
    for model in (
        MemberRegistered,
        PlateAttached,
        SaleRecorded,
        SaleMemberAttached,
        SaleReversed,
        SaleDetached,
        PointsRedeemed,
        PointsAdjusted,
        PointsExpired,
        MemberTierChanged,
    )
}


def payload_fault(kind: str, error: ValidationError) -> tuple[str, str]:
    """(code, detail) of the first fault: `payload.missing` or `payload.invalid`, naming the
    kind and the field, e.g. ("payload.invalid", "sale.recorded field 'litres': must be ...")."""
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "payload"
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "missing":
        return "payload.missing", f"{kind} needs {where!r}"
    return "payload.invalid", f"{kind} field {where!r}: {message}"
