"""Scalar checks for rule-set documents, and the fault collector that runs them.

Kept apart from the section parsers so every section (top level, tiers, bonuses) judges a
number, a code or a date the same way, and reports it with the same words.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from datetime import date, time
from decimal import Decimal
from typing import Any, TypeVar

from cloud_sync.core.ruleset.model import Fault

__all__ = [
    "MAX_AMOUNT",
    "MAX_DECIMAL_PLACES",
    "MAX_DISCOUNT_PER_LITRE",
    "MAX_EXPIRY_MONTHS",
    "MAX_LITRES",
    "MAX_MIN_POINTS",
    "MAX_MULTIPLIER",
    "MAX_POINTS_PER_LITRE",
    "MAX_POINTS_PER_YUAN",
    "MAX_POINTS_PER_YUAN_REDEEM",
    "MAX_TRIAL_DAYS",
    "MAX_VERSION",
    "MAX_VISITS",
    "MAX_WINDOW_DAYS",
    "Checker",
    "Invalid",
    "as_code",
    "as_date",
    "as_decimal",
    "as_int",
    "as_text",
    "as_time",
    "key_path",
]

_T = TypeVar("_T")

# Bounds that no real chain reaches; they catch a slipped digit before it reaches a pump.
MAX_VERSION = 1_000_000_000
MAX_POINTS_PER_LITRE = Decimal(1000)
MAX_POINTS_PER_YUAN = Decimal(1000)
MAX_MULTIPLIER = Decimal(100)
MAX_DISCOUNT_PER_LITRE = Decimal(10)
MAX_LITRES = Decimal(10_000_000)
MAX_AMOUNT = Decimal(1_000_000_000)
MAX_VISITS = 1_000_000
MAX_WINDOW_DAYS = 3660
MAX_TRIAL_DAYS = 3660
MAX_EXPIRY_MONTHS = 600
MAX_POINTS_PER_YUAN_REDEEM = 1_000_000
MAX_MIN_POINTS = 1_000_000_000
MAX_DECIMAL_PLACES = 6

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?\Z")
_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_TIME_TEXT = re.compile(r"[0-9]{2}:[0-9]{2}(:[0-9]{2})?\Z")


def key_path(parent: str, key: str) -> str:
    """The JSON path of `key` under `parent`; keys that are not identifiers are quoted."""
    if _IDENT.match(key):
        return f"{parent}.{key}"
    escaped = key.replace("\\", "\\\\").replace("'", "\\'")
    return f"{parent}['{escaped}']"


class Checker:
    """Collects faults while walking the document; every check carries on after a fault."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def fault(self, path: str, message: str) -> None:
        self.faults.append(Fault(path, message))

    def obj(
        self,
        value: object,
        path: str,
        *,
        required: tuple[str, ...] = (),
        optional: tuple[str, ...] = (),
    ) -> dict[str, object] | None:
        """Check an object's keys: required present, nothing unknown (typos do not pass)."""
        if not isinstance(value, Mapping):
            self.fault(path, "must be a JSON object")
            return None
        self.duplicates(value, path)
        known = required + optional
        result: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                self.fault(path, f"has a key that is not a string: {key!r}")
                continue
            if key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                suffix = f"; did you mean {hint[0]!r}?" if hint else ""
                self.fault(key_path(path, key), "unknown key" + suffix)
                continue
            result[key] = item
        for key in required:
            if key not in value:
                self.fault(key_path(path, key), "is required")
        return result

    def duplicates(self, value: Mapping[Any, Any], path: str) -> None:
        for key in getattr(value, "duplicate_keys", ()):
            self.fault(key_path(path, key), "appears more than once in the object")

    def check(self, path: str, convert: Callable[[], _T]) -> _T | None:
        """Run one conversion; an Invalid becomes a fault at `path` and the walk goes on."""
        try:
            return convert()
        except Invalid as exc:
            self.fault(path, str(exc))
            return None

    def text(self, value: object, path: str, *, max_len: int = 200) -> str | None:
        return self.check(path, lambda: as_text(value, max_len))

    def code(self, value: object, path: str) -> str | None:
        return self.check(path, lambda: as_code(value))

    def integer(self, value: object, path: str, *, low: int, high: int) -> int | None:
        return self.check(path, lambda: as_int(value, low, high))

    def decimal(
        self, value: object, path: str, *, high: Decimal, positive: bool = False
    ) -> Decimal | None:
        return self.check(path, lambda: as_decimal(value, high, positive=positive))


class Invalid(ValueError):
    """Internal: one value is wrong; the message becomes a Fault."""


def as_text(value: object, max_len: int = 200) -> str:
    if not isinstance(value, str):
        raise Invalid("must be a string")
    if not value.strip():
        raise Invalid("must not be empty")
    if len(value) > max_len:
        raise Invalid(f"must be at most {max_len} characters")
    return value


def as_code(value: object) -> str:
    text = as_text(value, 32)
    if text != text.strip():
        raise Invalid("must not start or end with spaces")
    return text


def as_int(value: object, low: int, high: int) -> int:
    # bool is an int subclass in Python, but `true` is never a count in a rule set.
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid("must be an integer")
    if value < low:
        raise Invalid(f"must be at least {low}")
    if value > high:
        raise Invalid(f"must be at most {high}")
    return value


def _to_decimal(value: object) -> Decimal:
    """Accept a decimal string ("1.5"), an integer, or a number already parsed as Decimal."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise Invalid("must be a finite number")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str) and _DECIMAL_TEXT.match(value):
        return Decimal(value)
    if isinstance(value, float):
        raise Invalid('is a binary float; write it as a string such as "1.5" or parse as Decimal')
    raise Invalid('must be a decimal number such as "1.5"')


def as_decimal(value: object, high: Decimal, *, positive: bool = False) -> Decimal:
    number = _to_decimal(value)
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_DECIMAL_PLACES:
        raise Invalid(f"must have at most {MAX_DECIMAL_PLACES} decimal places")
    if number < 0:
        raise Invalid("must not be negative")
    if positive and number == 0:
        raise Invalid("must be greater than 0")
    if number > high:
        raise Invalid(f"must be at most {high}")
    return number


def as_time(value: object) -> time:
    if not isinstance(value, str) or not _TIME_TEXT.match(value):
        raise Invalid('must be a local time "HH:MM" or "HH:MM:SS"')
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{value!r} is not a valid time of day") from None


def as_date(value: object) -> date:
    if not isinstance(value, str) or not _DATE_TEXT.match(value):
        raise Invalid('must be a date "YYYY-MM-DD"')
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{value!r} is not a calendar date") from None
