"""What applying one event needs: the working set, the keys, the rules, who sent it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .book import Book, Member
from .keys import KeyRing
from .payload import Rejected
from .postings import Booking
from .rulesets import RuleLookup

__all__ = ["Context"]


@dataclass
class Context:
    book: Book
    keys: KeyRing
    rules: RuleLookup
    station_id: str
    event_id: str = ""

    def booking(self, at: datetime) -> Booking:
        return Booking(at=at, event_id=self.event_id, station_id=self.station_id)

    def member(self, member_id: str) -> Member:
        """The active member an event names (merged ones lead to their survivor)."""
        member = self.book.active(member_id)
        if member is None:
            raise Rejected("member.unknown", f"no member {member_id}")
        return member
