"""What the till needs beyond the sales list: a short number per sale, each pump's sales
still waiting for a member, and the member search that fits the counter.

The short number is the last six characters of the sale id, upper-cased: the id is a
uuid7 whose tail is random, so it never changes, needs no counter in the store, is printed
on the receipt as it is shown on the screen, and two sales a cashier could confuse (the
same pump, the same minutes) practically never share one.

The last four digits of a phone find at most `MAX_PICK` members (masked phones and
plates: enough for the cashier to ask "which car?"). In a chain whose members all reach
every station, four digits match many: then only those who bought at this station in the
last `REGULAR_DAYS` days are offered, if they are at most `MAX_PICK` (`narrowed`). More is
refused rather than listed, and each login may ask only `LAST4_PER_WINDOW` times in
`LAST4_WINDOW_S`, so the pick list cannot be used to list the station's members.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from ..errors import ServiceError
from ..store.audit import AttachRecord, last_attaches
from ..store.members import plates_of
from ..store.sales import get_sale, recent_sales
from ..store.till import attaches_undone, members_by_last4, unattached_sales
from .members import MemberView, _opened, find_member
from .sales import SaleView
from .sales import _view as view_of_row  # the one SaleRow -> SaleView mapping
from .station import Station
from .tiers import current_tier

__all__ = [
    "LAST4_PER_WINDOW",
    "LAST4_WINDOW_S",
    "MAX_PICK",
    "MAX_PUMP_SALES",
    "REGULAR_DAYS",
    "PickItem",
    "SearchLimiter",
    "SearchResult",
    "TillSale",
    "is_last4",
    "pump_sales",
    "recent_till_sales",
    "sale_no",
    "search_members",
    "till_sales",
    "unattached_by_pump",
]

MAX_PICK = 10
REGULAR_DAYS = 90
MAX_PUMP_SALES = 20
LAST4_PER_WINDOW = 30
LAST4_WINDOW_S = 300.0
# A sale that ended this long before the attach window opened is not looked at: catch-up
# sales recorded long after they ended are rare, and the bound keeps the query short.
_ENDED_SLACK = timedelta(hours=2)
_LAST4 = re.compile(r"[0-9]{4}")


def sale_no(sale_id: str) -> str:
    """The sale's short number for the screen and the receipt: its id's last 6 characters."""
    return sale_id.replace("-", "")[-6:].upper()


@dataclass(frozen=True)
class TillSale:
    """A sale as the till shows it: the sale, its short number, and what can be done with
    it now (attach until `attach_until`; undo its `attach_no`-th attach while `can_undo`:
    a manager; its own cashier (`attached_by`) alone until `undo_until`)."""

    sale: SaleView
    sale_no: str
    attach_until: str
    attach_no: int  # the attach an undo would undo (1 for the first; +1 per attach undone)
    can_attach: bool
    can_undo: bool  # a manager could undo it now (a member on it, the attach window open)
    attached_by: str | None = None  # who made the attach (None: the member came with it)
    undo_until: str | None = None  # until when `attached_by` may undo it alone
    checked_at: str = ""  # when `can_undo` and `undo_until` were judged

    def undoable_by(self, actor: str, *, manager: bool) -> bool:
        """`actor` may undo this attach now (a manager with a reason: see detach.py)."""
        if not self.can_undo:
            return False
        if manager:
            return True
        return (
            self.attached_by == actor
            and self.undo_until is not None
            and datetime.fromisoformat(self.checked_at) <= datetime.fromisoformat(self.undo_until)
        )

    def to_dict(self, viewer: tuple[str, bool] | None = None) -> dict[str, Any]:
        """The sale for the JSON API; `can_undo` for `viewer` (actor, manager) when given."""
        if viewer is None:
            can_undo = self.can_undo
        else:
            can_undo = self.undoable_by(viewer[0], manager=viewer[1])
        return self.sale.to_dict() | {
            "sale_no": self.sale_no,
            "attach_until": self.attach_until,
            "attach_no": self.attach_no,
            "can_attach": self.can_attach,
            "can_undo": can_undo,
            "attached_by": self.attached_by,
            "undo_until": self.undo_until,
        }


def _window(station: Station) -> timedelta:
    return timedelta(minutes=station.settings.station.attach_window_min)


def _till_sale(
    view: SaleView,
    recorded_at: str,
    undone: int,
    station: Station,
    attach: AttachRecord | None = None,
) -> TillSale:
    now = station.now()
    until = datetime.fromisoformat(recorded_at) + _window(station)
    open_ = now <= until and view.status == "recorded"
    own_until = None
    if attach is not None and view.member_id is not None:
        cashier = timedelta(minutes=station.settings.station.cashier_undo_min)
        own_until = min(until, datetime.fromisoformat(attach.at) + cashier).isoformat()
    return TillSale(
        sale=view,
        sale_no=sale_no(view.sale_id),
        attach_until=until.isoformat(),
        attach_no=undone + 1,
        can_attach=open_ and view.member_id is None,
        can_undo=open_ and view.member_id is not None,
        attached_by=None if attach is None or view.member_id is None else attach.actor,
        undo_until=own_until,
        checked_at=now.isoformat(),
    )


def till_sales(station: Station, sale_ids: Sequence[str]) -> list[TillSale]:
    """The till's view of these sales (unknown ids are left out), in the order given."""
    if len(sale_ids) > 500:
        raise ServiceError("limit", "at most 500 sales at a time")
    with station.store.read() as tx:
        rows = [row for row in (get_sale(tx, s) for s in sale_ids) if row is not None]
        undone = attaches_undone(tx, [row.sale_id for row in rows])
        attaches = last_attaches(tx, [row.sale_id for row in rows if row.member_id])
    return [
        _till_sale(
            view_of_row(row),
            row.recorded_at,
            undone.get(row.sale_id, 0),
            station,
            attaches.get(row.sale_id),
        )
        for row in rows
    ]


def recent_till_sales(station: Station, limit: int = 20) -> list[TillSale]:
    """The newest sales with what the till can do with each (attach, undo), newest first."""
    if not 1 <= limit <= 500:
        raise ServiceError("limit", "limit must be between 1 and 500")
    with station.store.read() as tx:
        rows = recent_sales(tx, limit)
        undone = attaches_undone(tx, [row.sale_id for row in rows])
        attaches = last_attaches(tx, [row.sale_id for row in rows if row.member_id])
    return [
        _till_sale(
            view_of_row(row),
            row.recorded_at,
            undone.get(row.sale_id, 0),
            station,
            attaches.get(row.sale_id),
        )
        for row in rows
    ]


def _unattached(station: Station, pump: int | None, per_pump: int) -> dict[int, list[TillSale]]:
    now = station.now()
    window = _window(station)
    since_ms = int((now - window - _ENDED_SLACK).timestamp() * 1000)
    found: dict[int, list[TillSale]] = {}
    with station.store.read() as tx:
        for row in unattached_sales(tx, pump, since_ms):
            if now - datetime.fromisoformat(row.recorded_at) > window:
                continue  # no longer attachable
            kept = found.setdefault(row.pump, [])
            if len(kept) < per_pump:
                kept.append(_till_sale(view_of_row(row), row.recorded_at, 0, station))
            if pump is not None and len(kept) >= per_pump:
                break
    return found


def pump_sales(station: Station, pump: int, *, limit: int = 5) -> list[TillSale]:
    """A fuelling point's sales that a member can still be attached to, newest first."""
    if not 1 <= pump <= 99:
        raise ServiceError("sale.pump", "pump must be a fuelling point number from 1 to 99")
    if not 1 <= limit <= MAX_PUMP_SALES:
        raise ServiceError("limit", f"limit must be between 1 and {MAX_PUMP_SALES}")
    return _unattached(station, pump, limit).get(pump, [])


def unattached_by_pump(station: Station, *, per_pump: int = 3) -> dict[int, list[TillSale]]:
    """Every fuelling point's attachable sales, newest first, at most `per_pump` each."""
    if not 1 <= per_pump <= MAX_PUMP_SALES:
        raise ServiceError("limit", f"per_pump must be between 1 and {MAX_PUMP_SALES}")
    return _unattached(station, None, per_pump)


# ------------------------------------------------------------------ the member search


@dataclass
class SearchLimiter:
    """Last-4 searches per login: at most `limit` within `window_s`, counted before the
    search runs. Memory stays bounded: stale logins are forgotten, at most `max_keys`."""

    limit: int = LAST4_PER_WINDOW
    window_s: float = LAST4_WINDOW_S
    max_keys: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _seen: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: str) -> float:
        """Count one search: 0 when allowed, else the seconds until one is."""
        now = self.clock()
        with self._lock:
            recent = self._seen.setdefault(key, deque())
            while recent and recent[0] <= now - self.window_s:
                recent.popleft()
            if len(recent) >= self.limit:
                return max(1.0, recent[0] + self.window_s - now)
            recent.append(now)
            if len(self._seen) > self.max_keys:
                self._forget(now)
            return 0.0

    def _forget(self, now: float) -> None:
        for key in [
            k for k, seen in self._seen.items() if not seen or seen[-1] <= now - self.window_s
        ]:
            del self._seen[key]
        while len(self._seen) > self.max_keys:  # still too many: the oldest entries go
            del self._seen[next(iter(self._seen))]


@dataclass(frozen=True)
class PickItem:
    """One line of the pick list: enough to ask the customer which one they are."""

    member_id: str
    phone_masked: str
    plates: tuple[str, ...]
    tier: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "member_id": self.member_id,
            "phone_masked": self.phone_masked,
            "plates": list(self.plates),
            "tier": self.tier,
        }


@dataclass(frozen=True)
class SearchResult:
    """`member` for a full phone or plate; `pick` (1 to MAX_PICK) for the last 4 digits."""

    kind: Literal["member", "pick"]
    member: MemberView | None = None
    pick: tuple[PickItem, ...] = ()
    narrowed: bool = False  # more than MAX_PICK matched: these are the station's regulars

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "member": None if self.member is None else self.member.to_dict(),
            "pick": [item.to_dict() for item in self.pick],
            "narrowed": self.narrowed,
        }


def is_last4(q: str) -> bool:
    return _LAST4.fullmatch(q.strip()) is not None


def search_members(station: Station, q: str, *, who: str, limiter: SearchLimiter) -> SearchResult:
    """A full phone or plate finds one member; exactly four digits, a pick list.

    `who` is the login the limiter counts (a cashier's name); `limiter` is shared by every
    route that searches, so two screens do not double anyone's allowance.
    """
    if not is_last4(q):
        return SearchResult("member", member=find_member(station, q=q))
    wait = limiter.take(who)
    if wait > 0:
        raise ServiceError(
            "search.rate_limited",
            f"too many last-4 searches; use the full phone or the plate, or wait {wait:.0f} s",
        )
    last4 = q.strip()
    now = station.now()
    narrowed = False
    with station.store.read() as tx:
        rows = members_by_last4(tx, last4, MAX_PICK + 1)
        if len(rows) > MAX_PICK:  # a big chain: the station's own regulars, if few enough
            since = int((now - timedelta(days=REGULAR_DAYS)).timestamp() * 1000)
            rows = members_by_last4(tx, last4, MAX_PICK + 1, bought_since_ms=since)
            narrowed = True
        if len(rows) > MAX_PICK or (narrowed and not rows):
            raise ServiceError(
                "search.too_many",
                f"more than {MAX_PICK} members' phones end in {last4}; "
                "enter the full phone or the plate",
            )
        if not rows:
            raise ServiceError("member.not_found", f"no member's phone ends in {last4}")
        items = []
        for row in rows:
            plates = (
                _opened(station, "plate", p.plate_sealed) for p in plates_of(tx, row.member_id)
            )
            tier = current_tier(station, tx, row, now)
            items.append(
                PickItem(
                    member_id=row.member_id,
                    phone_masked=row.phone_masked,
                    plates=tuple(p for p in plates if p is not None),
                    tier=tier if tier is not None else (row.tier or "standard"),
                )
            )
    return SearchResult("pick", pick=tuple(items), narrowed=narrowed)
