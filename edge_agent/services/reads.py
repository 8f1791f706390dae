"""Read-only views the entry points need (the cashier page, the daemon's status line, the
demo's summary, the nightly jobs), so none of them opens a store transaction itself."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..store.backup import list_backups
from ..store.database import ensure_private_dir
from ..store.outbox import outbox_backlog
from ..store.sales import SaleRow, count_sales, recent_sales, sales_of_member
from ..store.sync import get_sync_state
from .station import Station

__all__ = [
    "SaleRow",
    "SyncFacts",
    "all_sale_rows",
    "backups_in",
    "member_sale_rows",
    "refuse_open_data_dir",
    "sync_facts",
]


@dataclass(frozen=True)
class SyncFacts:
    pending: int
    oldest_created_at: str | None
    last_contact: str | None


def sync_facts(station: Station) -> SyncFacts:
    """The outbox backlog and the last cloud contact, in one read."""
    with station.store.read() as tx:
        pending, oldest = outbox_backlog(tx)
        return SyncFacts(pending, oldest, get_sync_state(tx).last_contact)


def member_sale_rows(station: Station, member_id: str, limit: int) -> list[SaleRow]:
    """A member's most recent sales at this station, newest first."""
    with station.store.read() as tx:
        return list(sales_of_member(tx, member_id, limit))


def all_sale_rows(station: Station) -> list[SaleRow]:
    """Every sale of the store, newest first (the demo's summary; small stores only)."""
    with station.store.read() as tx:
        return list(recent_sales(tx, max(1, count_sales(tx))))


def backups_in(folder: Path) -> list[Path]:
    """The store's backups in `folder`, oldest first."""
    return list_backups(folder)


def refuse_open_data_dir(data_dir: Path) -> None:
    """StoreError when other users can open the data folder (it holds PIN hashes, keys)."""
    ensure_private_dir(data_dir)
