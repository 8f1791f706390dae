"""Who a member token speaks for, as the ledger sees it now: the survivor of any merge, and
nobody once erased.

A session outlives nothing the ledger did since: a member merged into another acts as the
survivor, an erased (or missing) member is signed out. The member app's routes ask this in
the transaction that acts, so a merge or an erasure racing a request is seen.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from .views import _survivor

__all__ = ["signed_in_member"]


def signed_in_member(conn: Connection, member_id: str) -> Any | None:
    """The survivor's `members` row, or None when the member is gone (erased, unknown)."""
    row = _survivor(conn, member_id)
    if row is None or row.status != "active" or row.phone_index is None:
        return None
    return row
