"""Reading an event's payload: every field checked, every fault a `Rejected` with a reason.

A payload that is wrong for its kind is a fact the station recorded badly, not a reason to
stop its queue: the event is stored as rejected (quarantined for HQ) and the batch goes on.
So every value is bounded here, before it reaches a column or a sum: a value no column or
calculation could hold must be a rejection, never a database error that fails the batch
(which the station would then retry forever).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "ID_LENGTH",
    "MAX_INTEGER",
    "SHORT_LENGTH",
    "Payload",
    "Rejected",
    "checked_integer",
    "parse_moment",
]

_MAX_TEXT = 512
ID_LENGTH = 64  # member, sale, redemption and allowance ids; blind indexes
SHORT_LENGTH = 32  # grades, tiers, channels, masked phones
# Points and fen: exact in a JSON number and in a float, far inside BIGINT even when summed.
MAX_INTEGER = 2**53
# Litres and yuan of one sale: anything this large is a recording fault, not a sale.
_MAX_DECIMAL = Decimal(10) ** 9
# Times the ledger can turn into epoch milliseconds and add a year of expiry to.
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


class Rejected(Exception):
    """This event cannot be applied; `reason` is stored with it and shown to HQ."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.reason = f"{code}: {detail}"


def parse_moment(value: str) -> datetime:
    """An ISO 8601 instant with an offset (a naive time could mean any zone), between 1970
    and 9000 so epoch milliseconds and expiry dates computed from it always exist."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{value!r} has no UTC offset")
    if not _EARLIEST <= moment < _LATEST:
        raise ValueError(f"{value!r} is outside the years 1970 to 9000")
    return moment


def checked_integer(kind: str, key: str, value: object, *, low: int | None = None) -> int:
    """An integer (not a bool) with |value| < 2**53, at least `low` when given."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise Rejected("payload.invalid", f"{kind} field {key!r} must be an integer")
    if low is not None and value < low:
        raise Rejected("payload.invalid", f"{kind} field {key!r} must be at least {low}")
    if abs(value) >= MAX_INTEGER:
        raise Rejected("payload.invalid", f"{kind} field {key!r} must be below 2**53 in size")
    return value


class Payload:
    """Typed access to one event's payload, naming the kind and the field in every fault."""

    def __init__(self, kind: str, data: Mapping[str, Any]) -> None:
        self.kind = kind
        self.data = data

    def has(self, key: str) -> bool:
        return key in self.data

    def _get(self, key: str) -> Any:
        if key not in self.data:
            raise Rejected("payload.missing", f"{self.kind} needs {key!r}")
        return self.data[key]

    def _wrong(self, key: str, expected: str) -> Rejected:
        return Rejected("payload.invalid", f"{self.kind} field {key!r} must be {expected}")

    def text(self, key: str, *, longest: int = _MAX_TEXT) -> str:
        value = self._get(key)
        if not isinstance(value, str) or not value:
            raise self._wrong(key, "a non-empty string")
        if len(value) > longest:
            raise self._wrong(key, f"at most {longest} characters long")
        return value

    def opt_text(self, key: str, *, longest: int = _MAX_TEXT) -> str | None:
        if self.data.get(key) is None:
            return None
        return self.text(key, longest=longest)

    def integer(self, key: str, *, low: int | None = None) -> int:
        return checked_integer(self.kind, key, self._get(key), low=low)

    def opt_integer(self, key: str) -> int | None:
        if self.data.get(key) is None:
            return None
        return self.integer(key)

    def decimal(self, key: str) -> Decimal:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self._wrong(key, "a decimal string")
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise self._wrong(key, "a decimal string") from None
        if not number.is_finite() or number < 0:
            raise self._wrong(key, "a finite, non-negative decimal")
        if number >= _MAX_DECIMAL:
            raise self._wrong(key, f"below {_MAX_DECIMAL:,}")
        return number

    def moment(self, key: str) -> datetime:
        value = self._get(key)
        if not isinstance(value, str):
            raise self._wrong(key, "an ISO 8601 time with an offset")
        try:
            return parse_moment(value)
        except ValueError:
            raise self._wrong(key, "an ISO 8601 time with an offset") from None

    def opt_moment(self, key: str) -> datetime | None:
        if self.data.get(key) is None:
            return None
        return self.moment(key)

    def opt_object(self, key: str) -> Mapping[str, Any] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self._wrong(key, "an object")
        return value

    def objects(self, key: str) -> list[Mapping[str, Any]]:
        """A list of objects; a missing or null list is empty."""
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise self._wrong(key, "a list of objects")
        return value
