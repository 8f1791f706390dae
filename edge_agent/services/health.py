"""Can the store still take a write? The question /healthz asks first.

A sale is only acknowledged once it is committed, so a store that cannot take the write
lock means every sale from now on is at risk: that is the one "failing" condition.
"""

from __future__ import annotations

import logging

from .station import Station

__all__ = ["store_writable", "store_write_error"]

log = logging.getLogger(__name__)


class _RollBack(Exception):
    """Raised inside the probe transaction so the store rolls it back instead of committing."""


def store_write_error(station: Station) -> str | None:
    """None when a `BEGIN IMMEDIATE` succeeds (then rolled back), else the failure's kind.

    The probe takes the same write lock as a sale (so a stuck writer or a closed or
    read-only database shows here) and leaves nothing behind: no commit, no WAL frame.
    """
    try:
        with station.store.write():
            raise _RollBack
    except _RollBack:
        return None
    except Exception as exc:  # any failure means "cannot write"; its kind is the answer
        log.warning("store write probe failed: %s: %s", type(exc).__name__, exc)
        return type(exc).__name__


def store_writable(station: Station) -> bool:
    """True when the store takes the write lock right now."""
    return store_write_error(station) is None
