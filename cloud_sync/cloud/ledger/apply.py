"""Push: a station's batch applied exactly once, in one transaction, in `seq` order.

The batch is classified before anything is written: a known event id with the same payload
hash is a duplicate (answered with its stored result), with another hash a conflict; an
unknown id at a sequence number the cloud already holds is a conflict too; a jump past the
high-water mark is a gap. Only then are the new events applied, one after another, against
a working set loaded in bulk, and written back with one statement per table.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import ValidationError
from sqlalchemy import Connection, select, update

from cloud_sync.core.events import EVENT_MODELS, Event, payload_fault
from cloud_sync.core.privacy import MemberKeys
from cloud_sync.core.wire import (
    FLAGGED_PREFIX,
    HELD_PREFIX,
    EventResult,
    PushRequest,
    PushResponse,
    WireEvent,
)

from .book import Book
from .bulk import one_of
from .changes import append_changes, bump_counter
from .context import Context
from .database import Database, bulk_insert
from .errors import EventConflict, LedgerError, SequenceGap
from .handlers import HANDLERS
from .invoice_sales import end_requests_of_changed_sales
from .keys import KeyRing
from .payload import MAX_INTEGER, Rejected
from .review import record_flags
from .rulesets import RuleBook, RuleLookup
from .schema import event_ids, events, high_water, stations
from .stations import is_suspended, load_station_keys, lock_station
from .trust import TrustPolicy

__all__ = ["push"]

_MAX_EVENT_ID = 64


@dataclass
class _Item:
    raw: dict[str, Any]
    event_id: str
    seq: int
    digest: str
    body: str
    event: WireEvent | None
    fault: str | None


Status = Literal["applied", "duplicate", "rejected"]


_ARCHIVED = "archived"  # an id the station used whose event left with its month


@dataclass
class _Known:
    digest: str
    status: str
    reason: str | None
    station_id: str


def _canonical(raw: dict[str, Any]) -> bytes:
    """The event as compact JSON with sorted keys: its digest decides replay or conflict.

    orjson is several times faster than the standard library here, which matters when a
    station catches up with a week of events; anything it cannot encode (a JSON event never
    holds such values) becomes text, and an integer too large for it takes the standard
    library's path (the same event always takes the same path, so its digest is stable).
    """
    try:
        return orjson.dumps(raw, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
    except TypeError:  # an integer beyond 64 bits: the standard library encodes it as text
        text = json.dumps(raw, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8")


def _read(raw: dict[str, Any], epoch: int) -> _Item:
    event_id, seq = raw.get("event_id"), raw.get("seq")
    if (
        not isinstance(event_id, str)
        or not event_id
        or len(event_id) > _MAX_EVENT_ID
        or isinstance(seq, bool)
        or not isinstance(seq, int)
        or not 1 <= seq < MAX_INTEGER
    ):
        raise LedgerError("batch.invalid", "an event has no readable event_id and seq")
    body_bytes = _canonical(raw)
    body = body_bytes.decode("utf-8")
    digest = hashlib.sha256(body_bytes).hexdigest()
    try:
        event = WireEvent.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "event"
        fault = f"envelope.invalid: {where}: {first['msg']}"
        return _Item(raw, event_id, seq, digest, body, None, fault)
    if event.epoch != epoch:
        raise LedgerError(
            "batch.invalid", f"event {event_id} is of epoch {event.epoch}, the batch of {epoch}"
        )
    return _Item(raw, event_id, seq, digest, body, event, None)


def _lock_high_water(db: Database, conn: Connection, station_id: str, request: PushRequest) -> int:
    """The (station, epoch) mark, locked: two pushes of one station run one after the other."""
    where = (high_water.c.station_id == station_id, high_water.c.epoch == request.epoch)
    stmt = select(high_water.c.high_water).where(*where).with_for_update()
    mark = conn.execute(stmt).scalar_one_or_none()
    if mark is None:
        first = request.epoch_first_seq
        db.insert_ignore(
            conn,
            high_water,
            [
                {
                    "station_id": station_id,
                    "epoch": request.epoch,
                    "first_seq": first,
                    "high_water": first - 1,
                }
            ],
        )
        mark = conn.execute(stmt).scalar_one()
    return int(mark)


def _known(conn: Connection, station_id: str, ids: Sequence[str]) -> dict[str, _Known]:
    """The batch's ids the cloud holds: this station's with their stored result, another
    station's with only that station (a conflict). `event_ids` says who used an id; the
    station's own events are read only when it replays some (one statement otherwise)."""
    found = conn.execute(
        select(event_ids.c.event_id, event_ids.c.station_id).where(
            one_of(conn, event_ids.c.event_id, ids)
        )
    )
    owners: dict[str, str] = {r.event_id: r.station_id for r in found}
    known = {i: _Known("", "", None, owner) for i, owner in owners.items() if owner != station_id}
    mine = [i for i, owner in owners.items() if owner == station_id]
    if mine:
        rows = conn.execute(
            select(
                events.c.event_id, events.c.payload_hash, events.c.status, events.c.reason
            ).where(events.c.station_id == station_id, one_of(conn, events.c.event_id, mine))
        )
        for r in rows:
            known[r.event_id] = _Known(r.payload_hash, r.status, r.reason, station_id)
        for event_id in mine:  # claimed, but its month left for the archive (partitions.py)
            known.setdefault(event_id, _Known("", _ARCHIVED, None, station_id))
    return known


def _claim_ids(conn: Connection, station_id: str, fresh: Sequence[_Item]) -> None:
    """Record the station of every new id before anything else is written. The key of
    `event_ids` is the chain-wide check: a second station's concurrent push of an id waits
    for the first, fails on the key (23505) and is retried by `Database.transact`, whose
    new lookup sees the id taken. Ids go in order, so two such pushes never deadlock."""
    rows = [{"event_id": i, "station_id": station_id} for i in sorted(x.event_id for x in fresh)]
    bulk_insert(conn, event_ids, rows)


def _classify(
    items: Sequence[_Item], known: dict[str, _Known], mark: int, epoch: int, station_id: str
) -> list[tuple[_Item, _Known | None]]:
    """Decide every event's fate before writing anything; raise for conflicts and gaps.

    An event id another station already used is a conflict too: a station replays only
    its own events, and never learns another station's results through them."""
    plan: list[tuple[_Item, _Known | None]] = []
    top = mark
    for item in items:
        earlier = known.get(item.event_id)
        if earlier is not None:
            if earlier.status == _ARCHIVED:
                raise EventConflict(
                    item.event_id,
                    f"event {item.event_id} was received long ago and has been archived; "
                    "its result cannot be sent again",
                )
            if earlier.digest != item.digest or earlier.station_id != station_id:
                raise EventConflict(
                    item.event_id,
                    f"event {item.event_id} was received before with another payload",
                )
            plan.append((item, earlier))
            continue
        if item.seq <= top:
            raise EventConflict(
                item.event_id,
                f"sequence {item.seq} of epoch {epoch} already holds another event "
                f"than {item.event_id}",
            )
        if item.seq > top + 1:
            raise SequenceGap(mark + 1, epoch)
        top = item.seq
        known[item.event_id] = _Known(item.digest, "pending", None, station_id)
        plan.append((item, None))
    return plan


def _preload(book: Book, keys: KeyRing, station_id: str, items: Sequence[_Item]) -> None:
    """Load every member, phone, sale and redemption the batch names, in a few statements."""
    member_ids: set[str] = set()
    sale_ids: set[str] = set()
    redemption_ids: set[str] = set()
    phones: set[str] = set()
    debtors: set[str] = set()
    reversed_sales: set[str] = set()
    for item in items:
        if item.event is None:
            continue
        payload = item.event.payload
        kind = item.event.kind
        for key in ("member_id", "from_member"):
            value = payload.get(key)
            if isinstance(value, str):
                member_ids.add(value)
        sale_id = payload.get("sale_id")
        if isinstance(sale_id, str):
            sale_ids.add(sale_id)
            if kind in ("sale.reversed", "sale.detached"):
                reversed_sales.add(sale_id)
        redemption_id = payload.get("redemption_id")
        if isinstance(redemption_id, str):
            redemption_ids.add(redemption_id)
        phone_index, phone_sealed = payload.get("phone_index"), payload.get("phone_sealed")
        if (
            kind == "member.registered"
            and isinstance(phone_index, str)
            and isinstance(phone_sealed, str)
        ):
            with contextlib.suppress(Rejected):  # the handler rejects it, with its reason
                phones.add(keys.phone(phone_index, phone_sealed)[0])
        points = payload.get("points")
        member_id = payload.get("member_id")
        if isinstance(member_id, str) and (
            kind == "points.redeemed"
            or (kind == "points.adjusted" and isinstance(points, int) and points < 0)
        ):
            debtors.add(member_id)
    book.load_members(member_ids)
    book.preload_phones(phones)
    book.preload_sales(sale_ids)
    book.preload_redemptions(station_id, redemption_ids)
    for sale_id in reversed_sales:
        sale = book.sale(sale_id)
        if sale is not None and sale.member_id is not None:
            debtors.add(sale.member_id)
    survivors = [m.member_id for m in (book.active(d) for d in sorted(debtors)) if m is not None]
    book.preload_lots(survivors)


def _validated(event: WireEvent) -> Event | str:
    """The payload as its kind's model, or why it cannot be one (the rejection's reason)."""
    model = EVENT_MODELS.get(event.kind)
    if model is None or event.kind not in HANDLERS:
        return f"kind.unknown: no event kind {event.kind!r}"
    try:
        return model.model_validate(event.payload)
    except ValidationError as exc:
        code, detail = payload_fault(event.kind, exc)
        return f"{code}: {detail}"


def _apply(ctx: Context, item: _Item) -> tuple[Status, str | None]:
    event = item.event
    if event is None:
        return "rejected", item.fault
    validated = _validated(event)
    if isinstance(validated, str):
        return "rejected", validated
    handler = HANDLERS[event.kind]
    ctx.event_id = item.event_id
    ctx.held = None
    flagged = len(ctx.flags)
    try:
        handler(ctx, validated)
    except Rejected as exc:
        return "rejected", exc.reason
    if ctx.held is not None:
        return "applied", HELD_PREFIX + ctx.held
    found = [flag for _, flag in ctx.flags[flagged:]]
    if found:
        return "applied", FLAGGED_PREFIX + "; ".join(f"{f.code}: {f.detail}" for f in found)
    return "applied", None


def push(
    db: Database,
    chain: MemberKeys,
    rules: RuleBook,
    station_id: str,
    request: PushRequest,
    now: datetime,
    trust: TrustPolicy,
) -> PushResponse:
    if request.station_id != station_id:
        raise LedgerError(
            "station.mismatch",
            f"station {station_id} cannot push events of station {request.station_id}",
        )
    if request.epoch >= MAX_INTEGER or request.epoch_first_seq >= MAX_INTEGER:
        raise LedgerError("batch.invalid", "epoch and sequence numbers stay below 2**53")
    items = sorted((_read(raw, request.epoch) for raw in request.events), key=lambda i: i.seq)

    def work(conn: Connection) -> PushResponse:
        lock_station(conn, station_id)
        mark = _lock_high_water(db, conn, station_id, request)
        known = _known(conn, station_id, [item.event_id for item in items])
        plan = _classify(items, known, mark, request.epoch, station_id)
        fresh = [item for item, earlier in plan if earlier is None]
        outcome: dict[str, tuple[Status, str | None]] = {}
        if fresh:
            _claim_ids(conn, station_id, fresh)
            book = Book(conn, now, lock=db.dialect == "postgresql")
            keys = KeyRing(chain, lambda: load_station_keys(conn, chain, station_id))
            ctx = Context(book, keys, RuleLookup(rules, conn), station_id, trust)
            ctx.suspended = is_suspended(conn, station_id)
            _preload(book, keys, station_id, fresh)
            for item in fresh:
                outcome[item.event_id] = _apply(ctx, item)
            # The station's own rows first; the report aggregates (rows every station adds
            # to, locked until commit) as late as possible, so concurrent pushes queue briefly.
            _store_events(conn, station_id, request.epoch, fresh, outcome, now)
            book.flush()
            ctx.flags += end_requests_of_changed_sales(conn, ctx.changed_sales, now)
            record_flags(conn, station_id, ctx.flags, trust, now)
            conn.execute(
                update(high_water)
                .where(high_water.c.station_id == station_id, high_water.c.epoch == request.epoch)
                .values(high_water=fresh[-1].seq)
            )
            rows_changed = [("member", m) for m in book.touched]
            rows_changed += [("deny", m) for m in book.deny_touched]
            append_changes(db, conn, rows_changed, now)
        duplicates = len(plan) - len(fresh)
        if duplicates:
            bump_counter(db, conn, "events_duplicate", duplicates)
        conn.execute(
            update(stations)
            .where(stations.c.station_id == station_id)
            .values(last_push_at=now.isoformat())
        )
        # Built from values this function checked: no second validation of 1,000 results.
        results = [
            EventResult.model_construct(
                event_id=item.event_id, seq=item.seq, status=status, reason=reason
            )
            for item, earlier in plan
            for status, reason in [
                outcome[item.event_id] if earlier is None else ("duplicate", earlier.reason)
            ]
        ]
        return PushResponse(
            station_id=station_id,
            epoch=request.epoch,
            high_water=fresh[-1].seq if fresh else mark,
            results=results,
        )

    return db.transact(work)


def _store_events(
    conn: Connection,
    station_id: str,
    epoch: int,
    items: Sequence[_Item],
    outcome: dict[str, tuple[Status, str | None]],
    now: datetime,
) -> None:
    received = now.isoformat()
    rows = []
    for item in items:
        status, reason = outcome[item.event_id]
        kind = item.raw.get("kind")
        rows.append(
            {
                "event_id": item.event_id,
                "station_id": station_id,
                "epoch": epoch,
                "seq": item.seq,
                "kind": kind[:64] if isinstance(kind, str) else "",
                "payload_hash": item.digest,
                "status": status,
                "reason": reason,
                "received_at": received,
                "body": item.body,
            }
        )
    bulk_insert(conn, events, rows)
