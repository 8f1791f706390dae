"""Reading an event's payload: every field checked, every fault a `Rejected` with a reason.

A payload that is wrong for its kind is a fact the station recorded badly, not a reason to
stop its queue: the event is stored as rejected (quarantined for HQ) and the batch goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["Payload", "Rejected", "parse_moment"]

_MAX_TEXT = 512


class Rejected(Exception):
    """This event cannot be applied; `reason` is stored with it and shown to HQ."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.reason = f"{code}: {detail}"


def parse_moment(value: str) -> datetime:
    """An ISO 8601 instant with an offset; a naive time could mean any zone."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{value!r} has no UTC offset")
    return moment


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

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str) or not value or len(value) > _MAX_TEXT:
            raise self._wrong(key, "a non-empty string")
        return value

    def opt_text(self, key: str) -> str | None:
        if self.data.get(key) is None:
            return None
        return self.text(key)

    def integer(self, key: str, *, low: int | None = None) -> int:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong(key, "an integer")
        if low is not None and value < low:
            raise self._wrong(key, f"at least {low}")
        return value

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
