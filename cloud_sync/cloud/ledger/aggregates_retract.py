"""Taking a visit back out of HQ's aggregates when a member is taken off a sale (an attach
undone at a till, `sale.detached`): the wrong member did not buy that day.

Additions cannot express this (a visit is a row, first and last sale times are a minimum and
a maximum), so after a flush has added its tally, each member taken off a sale is looked at
again in the sales the ledger now holds: the (day, station) visit goes when no other sale of
theirs that day at that station remains, with the day's active counts; the member's first
and last sale times are recomputed. The result is what `aggregates_ledger.fill` derives.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Table, delete, func, or_, select, update

from .aggregates import AGGREGATE_TABLES, _upsert_add
from .schema import members, sales

__all__ = ["retract_visits"]


def _local_day(zone: ZoneInfo, iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(zone).date().isoformat()


def _still_visited(
    conn: Connection, zone: ZoneInfo, member_id: str, station: str, day: str
) -> bool:
    """Another sale of the member at the station that day (in the chain's zone) remains."""
    theirs = (sales.c.member_id == member_id, sales.c.station_id == station)
    ended = conn.execute(select(sales.c.ended_at).where(*theirs)).scalars()
    return any(_local_day(zone, iso) == day for iso in ended)


def _refresh_activity(conn: Connection, activity: Table, survivor: str) -> None:
    """First and last sale times of the member (and those merged into it), from its sales."""
    merged = select(members.c.member_id).where(members.c.merged_into == survivor)
    times = [
        int(datetime.fromisoformat(iso).timestamp() * 1000)
        for iso in conn.execute(
            select(sales.c.ended_at).where(
                or_(sales.c.member_id == survivor, sales.c.member_id.in_(merged))
            )
        ).scalars()
    ]
    conn.execute(
        update(activity)
        .where(activity.c.member_id == survivor)
        .values(
            first_sale_ms=min(times, default=None),
            last_sale_ms=max(times, default=None),
        )
    )


def retract_visits(
    conn: Connection,
    zone: ZoneInfo,
    retracted: Sequence[tuple[str, str, str, str]],
    into: Sequence[Table] = AGGREGATE_TABLES,
) -> None:
    """Take back the visits of members taken off sales; see the module's docstring."""
    members_days, active_day, days, activity = into[4], into[5], into[6], into[7]
    for member_id, _, station, ended_at in sorted(set(retracted)):
        day = _local_day(zone, ended_at)
        if _still_visited(conn, zone, member_id, station, day):
            continue
        gone = conn.execute(
            delete(days).where(
                days.c.day == day, days.c.station_id == station, days.c.member_id == member_id
            )
        ).rowcount
        if not gone:
            continue
        row = {"day": day, "station_id": station, "registered": 0, "active": -1}
        _upsert_add(conn, members_days, ("day", "station_id"), [row])
        elsewhere = conn.execute(
            select(func.count()).where(days.c.day == day, days.c.member_id == member_id)
        ).scalar_one()
        if not elsewhere:
            _upsert_add(conn, active_day, ("day",), [{"day": day, "active": -1}])
    for survivor in sorted({survivor for _, survivor, _, _ in retracted}):
        _refresh_activity(conn, activity, survivor)
