"""One transaction's working set: the rows a push (or a job) reads and changes.

Rows are loaded once, in bulk where the batch names them, changed in memory while the
events are applied in order, and written back at the end with one executemany per table
and kind of change. On PostgreSQL member and plate rows are read FOR UPDATE, so two
stations touching one member queue instead of overwriting each other.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, func, select, update

from .aggregates import tally_book, write
from .aggregates_retract import retract_visits
from .bulk import one_of
from .database import bulk_insert
from .schema import (
    adjustments,
    allowances,
    journals,
    lines,
    lots,
    member_phones,
    members,
    plates,
    redemptions,
    sales,
)

__all__ = ["Book", "Lot", "Member", "Plate", "Sale", "new_id"]

_CHUNK = 500


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(eq=False)
class _Row:
    """A table row held in memory; `new` rows are inserted, `dirty` ones updated."""

    new: bool = field(default=False, init=False, repr=False)
    dirty: bool = field(default=False, init=False, repr=False)

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _columns(type(self))}


_COLUMNS: dict[type[_Row], tuple[str, ...]] = {}


def _columns(kind: type[_Row]) -> tuple[str, ...]:
    """The fields a row class stores (its init fields), computed once per class."""
    names = _COLUMNS.get(kind)
    if names is None:
        names = _COLUMNS[kind] = tuple(f.name for f in fields(kind) if f.init)
    return names


@dataclass(eq=False)
class Member(_Row):
    member_id: str
    phone_index: str | None
    phone_sealed: str | None
    phone_masked: str
    name_sealed: str | None
    key_id: str
    registered_at: str
    registered_station: str | None
    consent_at: str | None
    consent_channel: str | None
    tier: str | None
    status: str
    merged_into: str | None
    overdraft: int
    denied: bool
    event_id: str | None
    marketing_at: str | None = None  # schema 4: marketing consent given (the member's app)


@dataclass(eq=False)
class Lot(_Row):
    lot_id: str
    member_id: str
    points: int
    remaining: int
    expired: int
    repaid: int  # points that repaid the member's overdraft instead of filling the lot
    expires_at: str | None
    expires_ms: int | None
    earned_ms: int
    source: str
    sale_id: str | None
    journal_id: str


@dataclass(eq=False)
class Sale(_Row):
    sale_id: str
    station_id: str
    event_id: str
    member_id: str | None
    grade: str
    litres: str
    amount: str
    ended_at: str
    points: int
    tier: str | None
    ruleset_version: int | None
    recomputed: int | None
    status: str
    source: str | None = None
    source_key: str | None = None
    fuelling_point: int | None = None
    nozzle: int | None = None


@dataclass(eq=False)
class Plate(_Row):
    plate_index: str
    member_id: str
    plate_sealed: str
    attached_at: str


_MEMBER_CHANGES = ("tier", "status", "merged_into", "overdraft", "denied")
# `sale_id` is cleared when an attach is undone (the lot is no longer the sale's).
_LOT_CHANGES = ("member_id", "remaining", "expired", "sale_id")
_SALE_CHANGES = ("member_id", "points", "tier", "ruleset_version", "recomputed", "status")
_PLATE_CHANGES = ("member_id", "plate_sealed", "attached_at")


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class Book:
    def __init__(self, conn: Connection, now: datetime, *, lock: bool) -> None:
        self.conn = conn
        self.now = now
        self.booked_at = now.isoformat()
        self._lock = lock
        self._members: dict[str, Member | None] = {}
        # Every held member by phone index, and the phones whose active members (if any) the
        # database has been asked for: a batch of sign-ups finds each phone in O(1).
        self._by_phone: dict[str, list[str]] = {}
        self._phones_asked: set[str] = set()
        self._lots: dict[str, Lot] = {}
        self._member_lots: dict[str, list[Lot]] = {}
        self._unloaded_new_lots: dict[str, list[Lot]] = {}
        self._sales: dict[str, Sale | None] = {}
        # Loaded sales' (status, member): the report aggregates add each sale's difference.
        self._sale_origins: dict[str, tuple[str, str | None]] = {}
        self._plates: dict[str, Plate | None] = {}
        self._redemptions: dict[tuple[str, str], bool] = {}
        self._allowances: dict[str, Any] = {}
        # Allowance use and adjustment size: what the database held when first asked, plus
        # running totals of what this transaction added (a batch of 1,000 sums once, not
        # 1,000 times).
        self._redeemed: dict[tuple[str, str, str | None], int] = {}
        self._redeemed_here: Counter[tuple[str, str, str | None]] = Counter()
        self._adjusted: dict[tuple[str, int], int] = {}
        self._adjusted_here: Counter[str] = Counter()
        self._moves: list[tuple[str, str]] = []
        self.journals: list[dict[str, Any]] = []
        self.lines: list[dict[str, Any]] = []
        self.redemptions: list[dict[str, Any]] = []
        self.adjustments: list[dict[str, Any]] = []
        self.touched: dict[str, None] = {}
        self.deny_touched: dict[str, None] = {}

    # ------------------------------------------------------------------ members

    def load_members(self, member_ids: Iterable[str]) -> None:
        wanted = sorted({m for m in member_ids if m not in self._members})
        for chunk in _chunks(wanted):
            stmt = select(members).where(one_of(self.conn, members.c.member_id, chunk))
            stmt = stmt.order_by(members.c.member_id)
            if self._lock:
                stmt = stmt.with_for_update()
            for row in self.conn.execute(stmt):
                self._hold(Member(**row._mapping))
            for member_id in chunk:
                self._members.setdefault(member_id, None)

    def member(self, member_id: str) -> Member | None:
        if member_id not in self._members:
            self.load_members([member_id])
        return self._members[member_id]

    def active(self, member_id: str) -> Member | None:
        """The member, or the one it was merged into: later events follow the survivor."""
        member = self.member(member_id)
        hops = 0
        while member is not None and member.status == "merged" and hops < 64:
            member = None if member.merged_into is None else self.member(member.merged_into)
            hops += 1
        return member if member is not None and member.status == "active" else None

    def _hold(self, member: Member) -> None:
        self._members[member.member_id] = member
        if member.phone_index is not None:
            self._by_phone.setdefault(member.phone_index, []).append(member.member_id)

    def preload_phones(self, phone_indexes: Iterable[str]) -> None:
        """Load the active members of these phones (a batch's sign-ups) in a few statements."""
        wanted = sorted({p for p in phone_indexes if p not in self._phones_asked})
        for chunk in _chunks(wanted):
            # member_phones holds each phone's one active member (schema 5: a lookup table
            # distributed by the phone, where the members table is distributed by member).
            found = self.conn.execute(
                select(member_phones.c.member_id).where(
                    one_of(self.conn, member_phones.c.phone_index, chunk)
                )
            ).scalars()
            self.load_members(list(found))
            self._phones_asked.update(chunk)

    def active_by_phone(self, phone_index: str) -> Member | None:
        """The active member with this phone: held members first, the database once."""
        self.preload_phones([phone_index])
        for member_id in self._by_phone.get(phone_index, ()):
            member = self._members.get(member_id)
            if (
                member is not None
                and member.status == "active"
                and member.phone_index == phone_index
            ):
                return member
        return None

    def add_member(self, member: Member) -> None:
        member.new = True
        self._hold(member)
        self._member_lots[member.member_id] = []

    def touch(self, member: Member) -> None:
        """The member's state changed: stations hear of it in the changes feed."""
        self.touched[member.member_id] = None

    def touch_deny(self, member: Member) -> None:
        self.deny_touched[member.member_id] = None

    def merge_rows(self, loser: str, survivor: str) -> None:
        """Hand every row of `loser` (lots, plates, earlier losers) to `survivor`."""
        self.preload_lots([loser, survivor])
        moved = self._member_lots.pop(loser, [])
        for lot in moved:
            lot.member_id = survivor
            lot.dirty = True
        self._member_lots[loser] = []
        self._member_lots[survivor].extend(moved)
        for plate in self._plates.values():
            if plate is not None and plate.member_id == loser:
                plate.member_id = survivor
                plate.dirty = True
        for member in self._members.values():
            if member is not None and member.merged_into == loser:
                member.merged_into = survivor
                member.dirty = True
        self._moves.append((loser, survivor))

    # ------------------------------------------------------------------ lots

    def preload_lots(self, member_ids: Iterable[str]) -> None:
        wanted = sorted({m for m in member_ids if m not in self._member_lots})
        for chunk in _chunks(wanted):
            stmt = select(lots).where(lots.c.member_id.in_(chunk), lots.c.remaining > 0)
            for row in self.conn.execute(stmt):
                self._remember_lot(row._mapping)
            for member_id in chunk:
                self._member_lots[member_id] = []
        wanted_set = set(wanted)
        for lot in self._lots.values():
            if lot.member_id in wanted_set and not lot.new:
                self._member_lots[lot.member_id].append(lot)
        for member_id in wanted:
            self._member_lots[member_id].extend(self._unloaded_new_lots.pop(member_id, []))

    def _remember_lot(self, values: Any) -> Lot:
        lot = self._lots.get(values["lot_id"])
        if lot is None:
            lot = Lot(**values)
            self._lots[lot.lot_id] = lot
        return lot

    def lots_of(self, member_id: str) -> list[Lot]:
        """The member's lots that still hold points, plus any booked in this transaction."""
        if member_id not in self._member_lots:
            self.preload_lots([member_id])
        return self._member_lots[member_id]

    def lots_of_sale(self, sale_id: str) -> list[Lot]:
        for row in self.conn.execute(select(lots).where(lots.c.sale_id == sale_id)):
            self._remember_lot(row._mapping)
        return [lot for lot in self._lots.values() if lot.sale_id == sale_id]

    def add_lot(self, lot: Lot) -> None:
        lot.new = True
        self._lots[lot.lot_id] = lot
        if lot.member_id in self._member_lots:
            self._member_lots[lot.member_id].append(lot)
        else:
            self._unloaded_new_lots.setdefault(lot.member_id, []).append(lot)

    # ------------------------------------------------------------------ sales, plates

    def preload_sales(self, sale_ids: Iterable[str]) -> None:
        wanted = sorted({s for s in sale_ids if s not in self._sales})
        for chunk in _chunks(wanted):
            for row in self.conn.execute(
                select(sales).where(one_of(self.conn, sales.c.sale_id, chunk))
            ):
                self._sales[row.sale_id] = Sale(**row._mapping)
                self._sale_origins[row.sale_id] = (row.status, row.member_id)
            for sale_id in chunk:
                self._sales.setdefault(sale_id, None)

    def sale(self, sale_id: str) -> Sale | None:
        if sale_id not in self._sales:
            self.preload_sales([sale_id])
        return self._sales[sale_id]

    def add_sale(self, sale: Sale) -> None:
        sale.new = True
        self._sales[sale.sale_id] = sale

    def plate(self, plate_index: str) -> Plate | None:
        if plate_index not in self._plates:
            stmt = select(plates).where(plates.c.plate_index == plate_index)
            if self._lock:
                stmt = stmt.with_for_update()
            row = self.conn.execute(stmt).first()
            self._plates[plate_index] = None if row is None else Plate(**row._mapping)
        return self._plates[plate_index]

    def set_plate(self, plate_index: str, member_id: str, sealed: str, at: str) -> None:
        plate = self.plate(plate_index)
        if plate is None:
            plate = Plate(plate_index, member_id, sealed, at)
            plate.new = True
            self._plates[plate_index] = plate
            return
        plate.member_id, plate.plate_sealed, plate.attached_at = member_id, sealed, at
        plate.dirty = True

    # ------------------------------------------------------------------ redemptions

    def preload_redemptions(self, station_id: str, ids: Iterable[str]) -> None:
        """Redemption ids are the station's own: (station, id) is the key."""
        wanted = sorted({i for i in ids if (station_id, i) not in self._redemptions})
        for chunk in _chunks(wanted):
            stmt = select(redemptions.c.redemption_id).where(
                redemptions.c.station_id == station_id, redemptions.c.redemption_id.in_(chunk)
            )
            found = set(self.conn.execute(stmt).scalars())
            for redemption_id in chunk:
                self._redemptions[(station_id, redemption_id)] = redemption_id in found

    def redemption_exists(self, station_id: str, redemption_id: str) -> bool:
        self.preload_redemptions(station_id, [redemption_id])
        return self._redemptions[(station_id, redemption_id)]

    def add_redemption(self, row: dict[str, Any]) -> None:
        self._redemptions[(row["station_id"], row["redemption_id"])] = True
        if row["allowance_id"] is not None:
            for member_sent in (None, row["member_sent"]):
                key = (row["allowance_id"], row["station_id"], member_sent)
                self._redeemed_here[key] += int(row["points"])
        self.redemptions.append(row)

    # ------------------------------------------------------------------ authority

    def allowance(self, allowance_id: str) -> Any:
        """The allowance row as granted (any station's: the caller checks whose), or None."""
        if allowance_id not in self._allowances:
            self._allowances[allowance_id] = self.conn.execute(
                select(allowances).where(allowances.c.allowance_id == allowance_id)
            ).first()
        return self._allowances[allowance_id]

    def redeemed_under(
        self, allowance_id: str, station_id: str, member_sent: str | None = None
    ) -> int:
        """Points the allowance's own station redeemed under it so far, this transaction's
        included (another station naming it is flagged, and spends none of it); with
        `member_sent`, only those the station booked to that member id."""
        key = (allowance_id, station_id, member_sent)
        if key not in self._redeemed:
            stmt = select(func.coalesce(func.sum(redemptions.c.points), 0)).where(
                redemptions.c.allowance_id == allowance_id,
                redemptions.c.station_id == station_id,
            )
            if member_sent is not None:
                stmt = stmt.where(redemptions.c.member_sent == member_sent)
            self._redeemed[key] = int(self.conn.execute(stmt).scalar_one())
        return self._redeemed[key] + self._redeemed_here[key]

    def adjusted_since(self, station_id: str, since_ms: int) -> int:
        """The size of the adjustments a station booked on its own since `since_ms`."""
        key = (station_id, since_ms)
        if key not in self._adjusted:
            stmt = select(func.coalesce(func.sum(func.abs(adjustments.c.points)), 0)).where(
                adjustments.c.station_id == station_id,
                adjustments.c.status == "applied",
                adjustments.c.received_ms >= since_ms,
            )
            self._adjusted[key] = int(self.conn.execute(stmt).scalar_one())
        return self._adjusted[key] + self._adjusted_here[station_id]

    def add_adjustment(self, row: dict[str, Any]) -> None:
        if row["status"] == "applied":
            self._adjusted_here[row["station_id"]] += abs(int(row["points"]))
        self.adjustments.append(row)

    # ------------------------------------------------------------------ journals

    def journal(
        self,
        kind: str,
        postings: Iterable[tuple[str, int]],
        *,
        at: str,
        event_id: str | None = None,
        station_id: str | None = None,
        member_id: str | None = None,
        journal_id: str | None = None,
    ) -> str | None:
        """Book one balanced journal; None when every line is zero (nothing moved)."""
        booked = [(account, points) for account, points in postings if points]
        if not booked:
            return None
        if sum(points for _, points in booked) != 0:
            raise AssertionError(f"unbalanced {kind} journal: {booked}")
        journal_id = journal_id or new_id()
        self.journals.append(
            {
                "journal_id": journal_id,
                "kind": kind,
                "event_id": event_id,
                "station_id": station_id,
                "member_id": member_id,
                "at": at,
                "booked_at": self.booked_at,
            }
        )
        self.lines.extend(
            {"journal_id": journal_id, "member_id": member_id, "account": account, "points": points}
            for account, points in booked
        )
        return journal_id

    # ------------------------------------------------------------------ write back

    def _update(self, table: Table, key: str, columns: Sequence[str], rows: list[Any]) -> None:
        if not rows:
            return
        stmt = (
            update(table)
            .where(table.c[key] == bindparam(f"k_{key}"))
            .values({c: bindparam(f"v_{c}") for c in columns})
        )
        params = [
            {f"k_{key}": getattr(r, key), **{f"v_{c}": getattr(r, c) for c in columns}}
            for r in rows
        ]
        self.conn.execute(stmt, params)

    def _insert(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        bulk_insert(self.conn, table, rows)

    def flush(self) -> None:
        """Write every change back, then add it to HQ's report aggregates (same transaction)."""
        self._write_rows()
        held = [s for s in self._sales.values() if s is not None]
        new = [m for m in self._members.values() if m is not None and m.new]
        tally = tally_book(self, held, new, self._sale_origins, self._moves)
        write(self.conn, tally, self._moves)
        if tally.retracted:  # members taken off sales: their visits go again
            retract_visits(self.conn, tally.zone, tally.retracted)

    def _write_phones(self, held: Sequence[Member]) -> None:
        """member_phones follows members: a member merged away leaves its phone before a
        new member takes it (the key refuses a second active member of one phone)."""
        gone = [
            {"p": m.phone_index, "m": m.member_id}
            for m in held
            if m.dirty and not m.new and m.status != "active" and m.phone_index is not None
        ]
        if gone:  # by the key (the phone): one shard and one index lookup each
            self.conn.execute(
                delete(member_phones).where(
                    member_phones.c.phone_index == bindparam("p"),
                    member_phones.c.member_id == bindparam("m"),
                ),
                gone,
            )
        self._insert(
            member_phones,
            [
                {"phone_index": m.phone_index, "member_id": m.member_id}
                for m in held
                if m.new and m.status == "active" and m.phone_index is not None
            ],
        )

    def _write_rows(self) -> None:
        held = [m for m in self._members.values() if m is not None]
        # A loser turns 'merged' before its survivor (same phone) is inserted 'active'.
        self._update(
            members, "member_id", _MEMBER_CHANGES, [m for m in held if m.dirty and not m.new]
        )
        self._insert(members, [m.values() for m in held if m.new])
        self._write_phones(held)
        for loser, survivor in self._moves:
            self.conn.execute(
                update(members).where(members.c.merged_into == loser).values(merged_into=survivor)
            )
            self.conn.execute(
                update(lots).where(lots.c.member_id == loser).values(member_id=survivor)
            )
            self.conn.execute(
                update(plates).where(plates.c.member_id == loser).values(member_id=survivor)
            )
        held_plates = [p for p in self._plates.values() if p is not None]
        self._update(
            plates, "plate_index", _PLATE_CHANGES, [p for p in held_plates if p.dirty and not p.new]
        )
        self._insert(plates, [p.values() for p in held_plates if p.new])
        held_sales = [s for s in self._sales.values() if s is not None]
        self._insert(sales, [s.values() for s in held_sales if s.new])
        self._update(
            sales, "sale_id", _SALE_CHANGES, [s for s in held_sales if s.dirty and not s.new]
        )
        self._insert(journals, self.journals)
        self._insert(lines, self.lines)
        held_lots = list(self._lots.values())
        self._insert(lots, [lot.values() for lot in held_lots if lot.new])
        self._update(
            lots, "lot_id", _LOT_CHANGES, [lot for lot in held_lots if lot.dirty and not lot.new]
        )
        self._insert(redemptions, self.redemptions)
        self._insert(adjustments, self.adjustments)
