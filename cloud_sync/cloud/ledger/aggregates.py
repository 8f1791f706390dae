"""HQ's report aggregates, kept in step with the ledger as events are applied.

No report page reads postings or sales (hq-console.md, "Sizes"). Each transaction's Book
tallies what it books in memory (`tally_book`) and adds it once at its flush (`write`), with
one upsert-add per table. aggregates_ledger.py derives the very same figures from the ledger
itself, page by page: `rebuild` replaces the tables with them, `check` names every difference.

Movements of points (agg_points_day/agg_points_month, `movement` column), each signed as it
changes members' balances, from the non-member lines of every journal (each sums to zero):

- issued = −(points_issued lines): earn, less reversed earn;
- variance = −(variance lines): the station's claim beyond (or short of) the cloud's pricing;
- redeemed = points_redeemed lines (positive: points leaving members);
- expired = points_expired lines (a reversal of an already expired lot books it negative);
- adjusted_up / adjusted_down = −(adjustments lines), split by sign (adjustments = both);
- written_off = written_off lines as booked (≤ 0: the part of a take-back the member had
  already spent, which never left their balance);
- other = −(lines of any other non-member account), so the balance identity survives them;
- merged = points moved member to member by merge journals (information only: nets to zero).

closing = opening + issued + variance − redeemed − expired + adjusted_up + adjusted_down
          − written_off + other; see BALANCE_SIGN. `day` is the fact's own time (journal
`at`, sale `ended_at`) as a date in the chain's time zone; station '' is HQ's own postings.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, Final
from weakref import WeakKeyDictionary
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Connection,
    Engine,
    Table,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .accounts import ADJUSTMENTS, EXPIRED, ISSUED, REDEEMED, VARIANCE, WRITTEN_OFF
from .bulk import one_of
from .errors import LedgerError
from .schema import (
    agg_active_day,
    agg_members_day,
    agg_points_day,
    agg_points_month,
    agg_sales_day,
    agg_sales_hour,
    agg_tier_month,
    member_activity,
    member_days,
    settings,
)

if TYPE_CHECKING:
    from .book import Book, Member, Sale

__all__ = [
    "AGGREGATE_TABLES",
    "BALANCE_SIGN",
    "DEFAULT_TIMEZONE",
    "HQ_STATION",
    "MEMBER_PREFIX",
    "MOVEMENTS",
    "TIMEZONE_KEY",
    "Tally",
    "chain_zone",
    "contributes",
    "count_visits",
    "set_chain_timezone",
    "tally_book",
    "tier_moved",
    "tier_moves",
    "write",
]

HQ_STATION: Final = ""
TIMEZONE_KEY: Final = "chain_timezone"
DEFAULT_TIMEZONE: Final = "Asia/Shanghai"
BALANCE_SIGN: Final[dict[str, int]] = {
    "issued": 1,
    "variance": 1,
    "redeemed": -1,
    "expired": -1,
    "adjusted_up": 1,
    "adjusted_down": 1,
    "written_off": -1,
    "other": 1,
    "merged": 0,
}
MOVEMENTS: Final = tuple(BALANCE_SIGN)
AGGREGATE_TABLES: Final[tuple[Table, ...]] = (
    agg_sales_day,
    agg_sales_hour,
    agg_points_day,
    agg_points_month,
    agg_members_day,
    agg_active_day,
    member_days,
    member_activity,
    agg_tier_month,
)
MEMBER_PREFIX: Final = "member:"
_CHUNK: Final = 500
_zones: WeakKeyDictionary[Engine, ZoneInfo] = WeakKeyDictionary()


# ---------------------------------------------------------------- the chain's time zone


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise LedgerError("timezone.unknown", f"unknown time zone {name!r}") from exc


def chain_zone(conn: Connection) -> ZoneInfo:
    """The zone whose dates the reports use (settings `chain_timezone`), read once per ledger."""
    zone = _zones.get(conn.engine)
    if zone is None:
        stored = conn.execute(
            select(settings.c.value).where(settings.c.key == TIMEZONE_KEY)
        ).scalar_one_or_none()
        zone = _zones[conn.engine] = _zone(stored or DEFAULT_TIMEZONE)
    return zone


def set_chain_timezone(conn: Connection, name: str) -> None:
    """Store the chain's zone; the aggregates' days follow it after a rebuild."""
    zone = _zone(name)
    done = conn.execute(update(settings).where(settings.c.key == TIMEZONE_KEY).values(value=name))
    if not done.rowcount:
        conn.execute(insert(settings).values(key=TIMEZONE_KEY, value=name))
    _zones[conn.engine] = zone


# ---------------------------------------------------------------- tallies in memory


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _scaled(text: str, factor: int) -> int:
    return int((Decimal(text) * factor).to_integral_value(ROUND_HALF_UP))


def movements_of(kind: str, postings: Iterable[tuple[str, int]]) -> Iterator[tuple[str, int]]:
    """A journal's lines as movements of members' balances (see the module's docstring)."""
    for account, points in postings:
        if account.startswith(MEMBER_PREFIX):
            if kind == "merge" and points > 0:
                yield "merged", points
        elif account == ISSUED:
            yield "issued", -points
        elif account == VARIANCE:
            yield "variance", -points
        elif account == REDEEMED:
            yield "redeemed", points
        elif account == EXPIRED:
            yield "expired", points
        elif account == ADJUSTMENTS:
            yield ("adjusted_up" if points < 0 else "adjusted_down"), -points
        elif account == WRITTEN_OFF:
            yield "written_off", points
        else:
            yield "other", -points


@dataclass
class Tally:
    """Additions to every aggregate table, keyed by each table's primary key."""

    zone: ZoneInfo
    sales: defaultdict[tuple[str, str, str], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0, 0, 0])
    )
    hours: defaultdict[tuple[str, int, str], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0, 0])
    )
    points_day: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    points_month: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    registered: Counter[tuple[str, str]] = field(default_factory=Counter)
    visits: set[tuple[str, str, str]] = field(default_factory=set)
    # member -> [first_sale_ms, last_sale_ms, sales, amount_fen]
    activity: dict[str, list[Any]] = field(default_factory=dict)
    # Sales a member was taken off (an undone attach): (member as the sale named it, the
    # member it counted for, station, ended_at); aggregates_retract takes the visit back.
    retracted: list[tuple[str, str, str, str]] = field(default_factory=list)

    def local(self, iso: str) -> datetime:
        return datetime.fromisoformat(iso).astimezone(self.zone)

    def touch(self, member_id: str, survivor: str, station_id: str, ended_at: str) -> None:
        """A sale with this member: a visit that day (under the member the sale names), and
        its time for recency (under the member it belongs to now)."""
        local = self.local(ended_at)
        self.visits.add((local.date().isoformat(), station_id, member_id))
        self._activity(survivor, _ms(local), 0, 0)

    def count(self, values: dict[str, Any], member_id: str | None, sign: int) -> None:
        """Add (+1) or take back (−1) a recorded sale's litres, amount and count."""
        local = self.local(values["ended_at"])
        day = local.date().isoformat()
        ml = sign * _scaled(values["litres"], 1000)
        fen = sign * _scaled(values["amount"], 100)
        row = self.sales[(day, values["station_id"], values["grade"])]
        for i, add in enumerate((sign, sign if member_id else 0, ml, fen)):
            row[i] += add
        hour = self.hours[(day, local.hour, values["station_id"])]
        for i, add in enumerate((sign, ml, fen)):
            hour[i] += add
        if member_id is not None:
            self._activity(member_id, _ms(local), sign, fen)

    def _activity(self, member_id: str, ms: int, sales_: int, fen: int) -> None:
        row = self.activity.get(member_id)
        if row is None:
            self.activity[member_id] = [ms, ms, sales_, fen]
            return
        row[0], row[1] = min(row[0], ms), max(row[1], ms)
        row[2] += sales_
        row[3] += fen

    def journal(self, kind: str, station_id: str | None, at: str, postings: Iterable[Any]) -> None:
        local = self.local(at)
        day, month = local.date().isoformat(), local.strftime("%Y-%m")
        station = station_id or HQ_STATION
        for movement, points in movements_of(kind, postings):
            if points:
                self.points_day[(day, station, movement)] += points
                self.points_month[(month, station, movement)] += points

    def member(self, registered_at: str, station_id: str | None, sign: int = 1) -> None:
        day = self.local(registered_at).date().isoformat()
        self.registered[(day, station_id or HQ_STATION)] += sign


def contributes(status: str | None) -> bool:
    return status == "recorded"


def tally_book(
    book: Book,
    held: Sequence[Sale],
    new_members: Sequence[Member],
    origins: dict[str, tuple[str, str | None]],
    moves: Sequence[tuple[str, str]],
) -> Tally:
    """What this transaction adds: its journals, new members (less those merged away), and
    each sale's change from what the database held (`origins`: status and member when
    loaded)."""
    tally = Tally(chain_zone(book.conn))

    def survivor(member_id: str) -> str:
        found = book.active(member_id)
        return member_id if found is None else found.member_id

    for sale in held:
        if not sale.new and not sale.dirty:
            continue
        values = sale.values()
        before_status, before_member = (None, None) if sale.new else origins[sale.sale_id]
        if sale.member_id is not None and before_member != sale.member_id:
            tally.touch(sale.member_id, survivor(sale.member_id), sale.station_id, sale.ended_at)
        if before_member is not None and before_member != sale.member_id:
            tally.retracted.append(
                (before_member, survivor(before_member), sale.station_id, sale.ended_at)
            )
        if contributes(before_status):
            before = None if before_member is None else survivor(before_member)
            tally.count(values, before, -1)
        if contributes(sale.status):
            after = None if sale.member_id is None else survivor(sale.member_id)
            tally.count(values, after, +1)
    by_journal: defaultdict[str, list[tuple[str, int]]] = defaultdict(list)
    for line in book.lines:
        by_journal[line["journal_id"]].append((line["account"], line["points"]))
    for row in book.journals:
        tally.journal(row["kind"], row["station_id"], row["at"], by_journal[row["journal_id"]])
    for member in new_members:  # a registration merged at once is no new member
        if member.status != "merged":
            tally.member(member.registered_at, member.registered_station)
    for loser, _ in moves:  # one merged now is no longer counted as a member
        gone = book.member(loser)
        if gone is not None and not gone.new:
            tally.member(gone.registered_at, gone.registered_station, -1)
    return tally


# ---------------------------------------------------------------- writing


def _upsert_add(
    conn: Connection, table: Table, keys: Sequence[str], rows: Sequence[dict[str, Any]]
) -> None:
    """Add each row's values to the row with its key (inserting it when absent)."""
    if not rows:
        return
    postgres = conn.dialect.name == "postgresql"
    columns = list(rows[0])
    # Key order: two pushes adding to the same rows (a day's chain-wide count, a member
    # who bought at two stations) lock them in one order and queue instead of deadlocking.
    rows = sorted(rows, key=lambda row: tuple(str(row[k]) for k in keys))
    if postgres:  # every row in one statement of one array per column (bulk.py says why)
        arrays = select(
            *(
                func.unnest(bindparam(f"a_{c}", [r[c] for r in rows], ARRAY(table.c[c].type)))
                for c in columns
            )
        )
        stmt: Any = pg_insert(table).from_select(columns, arrays)
    else:
        stmt = sqlite_insert(table)
    adding = [c for c in columns if c not in keys]
    sets: dict[str, Any] = {}
    for column in adding:
        mine, theirs = table.c[column], stmt.excluded[column]
        if column == "first_sale_ms":
            low = func.least if postgres else func.min
            sets[column] = low(func.coalesce(mine, theirs), func.coalesce(theirs, mine))
        elif column == "last_sale_ms":
            high = func.greatest if postgres else func.max
            sets[column] = high(func.coalesce(mine, theirs), func.coalesce(theirs, mine))
        else:
            sets[column] = mine + theirs
    upsert = stmt.on_conflict_do_update(index_elements=list(keys), set_=sets)
    if postgres:
        conn.execute(upsert)
        return
    for start in range(0, len(rows), _CHUNK):
        conn.execute(upsert, list(rows[start : start + _CHUNK]))


def _new_visits(
    conn: Connection, days: Table, visits: set[tuple[str, str, str]]
) -> tuple[list[tuple[str, str, str]], set[tuple[str, str]]]:
    """The visits member_days lacks, and the (day, member) pairs new chain-wide."""
    known: set[tuple[str, str, str]] = set()
    if visits:
        ids = sorted({m for _, _, m in visits})
        first, last = min(d for d, _, _ in visits), max(d for d, _, _ in visits)
        for start in range(0, len(ids), _CHUNK):
            stmt = select(days.c.day, days.c.station_id, days.c.member_id).where(
                one_of(conn, days.c.member_id, ids[start : start + _CHUNK]),
                days.c.day >= first,
                days.c.day <= last,
            )
            known.update((r.day, r.station_id, r.member_id) for r in conn.execute(stmt))
    new = sorted(visits - known)
    seen = {(d, m) for d, _, m in known}
    return new, {(d, m) for d, _, m in new} - seen


def _insert_absent(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert the rows whose key the table lacks (a rebuild's visits, page by page)."""
    stmt = pg_insert(table) if conn.dialect.name == "postgresql" else sqlite_insert(table)
    ignore = stmt.on_conflict_do_nothing()
    for start in range(0, len(rows), _CHUNK):
        conn.execute(ignore, list(rows[start : start + _CHUNK]))


def write(
    conn: Connection,
    tally: Tally,
    moves: Sequence[tuple[str, str]] = (),
    *,
    fresh: bool = False,
    into: Sequence[Table] = AGGREGATE_TABLES,
) -> None:
    """Add a tally to the tables (`into`: AGGREGATE_TABLES or their likes, in that order);
    then fold merged members' activity into their survivors. `fresh`: one page of a rebuild,
    whose visits go in where absent and whose active counts `count_visits` makes at the end."""
    sales_day, sales_hour, points_day, points_month, members_days, active_day, days, activity = (
        into[:8]
    )
    _upsert_add(
        conn,
        sales_day,
        ("day", "station_id", "grade"),
        [dict(zip(sales_day.c.keys(), (*k, *v), strict=True)) for k, v in tally.sales.items()],
    )
    _upsert_add(
        conn,
        sales_hour,
        ("day", "hour", "station_id"),
        [dict(zip(sales_hour.c.keys(), (*k, *v), strict=True)) for k, v in tally.hours.items()],
    )
    for table, counter, period in (
        (points_day, tally.points_day, "day"),
        (points_month, tally.points_month, "month"),
    ):
        _upsert_add(
            conn,
            table,
            (period, "station_id", "movement"),
            [
                {period: p, "station_id": s, "movement": m, "points": v}
                for (p, s, m), v in counter.items()
            ],
        )
    visits = [{"day": d, "station_id": s, "member_id": m} for d, s, m in sorted(tally.visits)]
    if fresh:
        _insert_absent(conn, days, visits)
        new: list[tuple[str, str, str]] = []
        chain_new: set[tuple[str, str]] = set()
    else:
        new, chain_new = _new_visits(conn, days, tally.visits)
        for start in range(0, len(new), _CHUNK):
            conn.execute(
                insert(days),
                [
                    {"day": d, "station_id": s, "member_id": m}
                    for d, s, m in new[start : start + _CHUNK]
                ],
            )
    per_station: defaultdict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for key, count in tally.registered.items():
        per_station[key][0] += count
    for day, station, _ in new:
        per_station[(day, station)][1] += 1
    _upsert_add(
        conn,
        members_days,
        ("day", "station_id"),
        [
            {"day": d, "station_id": s, "registered": r, "active": a}
            for (d, s), (r, a) in per_station.items()
        ],
    )
    _upsert_add(
        conn,
        active_day,
        ("day",),
        [{"day": d, "active": n} for d, n in Counter(d for d, _ in chain_new).items()],
    )
    _upsert_add(
        conn,
        activity,
        ("member_id",),
        [
            {"member_id": m, "first_sale_ms": f, "last_sale_ms": la, "sales": n, "amount_fen": a}
            for m, (f, la, n, a) in tally.activity.items()
        ],
    )
    for loser, survivor in moves:
        _fold(conn, loser, survivor)


def count_visits(conn: Connection, into: Sequence[Table] = AGGREGATE_TABLES) -> None:
    """A rebuild's active members per (day, station) and per day, counted by the database
    from the visits it holds (so no page of the rebuild keeps them all in memory)."""
    members_days, active_day, days = into[4], into[5], into[6]
    postgres = conn.dialect.name == "postgresql"
    stmt = pg_insert(members_days) if postgres else sqlite_insert(members_days)
    per_station = (
        select(days.c.day, days.c.station_id, literal(0, BigInteger), func.count())
        .where(true())  # SQLite: ON CONFLICT after SELECT needs a WHERE
        .group_by(days.c.day, days.c.station_id)
    )
    conn.execute(
        stmt.from_select(
            ["day", "station_id", "registered", "active"], per_station
        ).on_conflict_do_update(
            index_elements=["day", "station_id"], set_={"active": stmt.excluded.active}
        )
    )
    per_day = select(days.c.day, func.count(func.distinct(days.c.member_id))).group_by(days.c.day)
    conn.execute(insert(active_day).from_select(["day", "active"], per_day))


def tier_moved(zone: ZoneInfo, at: datetime, previous: str | None, tier: str) -> tuple[str, ...]:
    """A member.tier_changed event's key in agg_tier_month: its month in the chain's zone and
    the tiers as the event names them ('' for none); () when it names no change."""
    before = previous or ""
    if before == tier:
        return ()
    return (at.astimezone(zone).strftime("%Y-%m"), before, tier)


def tier_moves(
    conn: Connection, moves: Counter[tuple[str, ...]], into: Table = agg_tier_month
) -> None:
    """Add tier changes per (month, from, to): as each event is applied, and by a rebuild."""
    _upsert_add(
        conn,
        into,
        ("month", "from_tier", "to_tier"),
        [
            {"month": m, "from_tier": f, "to_tier": t, "changes": n}
            for (m, f, t), n in moves.items()
        ],
    )


def _fold(conn: Connection, loser: str, survivor: str) -> None:
    """A merged member's activity belongs to the survivor from now on."""
    row = conn.execute(select(member_activity).where(member_activity.c.member_id == loser)).first()
    if row is None:
        return
    values = dict(row._mapping) | {"member_id": survivor}
    _upsert_add(conn, member_activity, ("member_id",), [values])
    conn.execute(delete(member_activity).where(member_activity.c.member_id == loser))
