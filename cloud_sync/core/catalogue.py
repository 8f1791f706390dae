"""Error catalogues: each code a side can answer, declared once with its HTTP status.

The station (`edge_agent.error_codes`) and the cloud (`cloud_sync.cloud.server.errors`)
each keep their own codes; this is the one way both index them and look a status up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Final, Protocol, TypeVar

__all__ = ["UNDECLARED_STATUS", "Declared", "index_codes", "status_in"]

UNDECLARED_STATUS: Final = 422


class Declared(Protocol):
    @property
    def code(self) -> str: ...
    @property
    def status(self) -> int: ...


D = TypeVar("D", bound=Declared)


def index_codes(entries: Iterable[D]) -> dict[str, D]:
    """The catalogue by code; a code declared twice is a programming error."""
    catalogue: dict[str, D] = {}
    for entry in entries:
        if entry.code in catalogue:
            raise ValueError(f"error code {entry.code!r} is declared twice")
        catalogue[entry.code] = entry
    return catalogue


def status_in(catalogue: Mapping[str, Declared], code: str, log: logging.Logger) -> int:
    """The HTTP status of `code`; an undeclared one (a bug the catalogue tests catch) is
    answered 422 and logged."""
    entry = catalogue.get(code)
    if entry is None:
        log.warning("undeclared error code %r answered %d", code, UNDECLARED_STATUS)
        return UNDECLARED_STATUS
    return entry.status
