"""What applying one event needs: the working set, the keys, the rules, who sent it, and
what that station may do on its own authority."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .book import Book, Member
from .keys import KeyRing
from .payload import Rejected
from .postings import Booking
from .rulesets import RuleLookup
from .trust import Flag, TrustPolicy

__all__ = ["Context"]


@dataclass
class Context:
    book: Book
    keys: KeyRing
    rules: RuleLookup
    station_id: str
    trust: TrustPolicy = field(default_factory=TrustPolicy)
    event_id: str = ""
    # What the station did beyond its authority, by event; kept even when the event is
    # rejected, so HQ's review list sees the attempt.
    flags: list[tuple[str, Flag]] = field(default_factory=list)
    # The current event was taken but not booked (an adjustment waiting for HQ): why.
    held: str | None = None
    # HQ's review has suspended this station: every redemption is shown to HQ.
    suspended: bool = False
    # Sales this push took a member off or reversed: sale id -> (event id, why). Their
    # waiting invoice requests are rejected before the push commits (invoice_sales.py).
    changed_sales: dict[str, tuple[str, str]] = field(default_factory=dict)

    def booking(self, at: datetime) -> Booking:
        return Booking(at=at, event_id=self.event_id, station_id=self.station_id)

    def member(self, member_id: str) -> Member:
        """The active member an event names (merged ones lead to their survivor)."""
        member = self.book.active(member_id)
        if member is None:
            raise Rejected("member.unknown", f"no member {member_id}")
        return member

    def sale_changed(self, sale_id: str, why: str) -> None:
        """The sale is no longer its member's as it was: its invoice requests end."""
        self.changed_sales.setdefault(sale_id, (self.event_id, why))

    def flag(self, flag: Flag) -> None:
        self.flags.append((self.event_id, flag))

    def own_sale(self, station_id: str, sale_id: str) -> None:
        """Refuse (and flag) an action on a sale another station recorded."""
        if station_id != self.station_id:
            detail = f"sale {sale_id} was recorded by station {station_id}"
            self.flag(Flag("sale.foreign_station", detail))
            raise Rejected("sale.foreign_station", detail)
