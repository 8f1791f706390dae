"""What HQ reads: variance per station and rule set, quarantine, totals, and the audit of
the ledger's invariants (`ledger_problems`, empty when healthy)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, case, func, select

from .postings import account
from .schema import (
    adjustments,
    allowances,
    counters,
    event_ids,
    events,
    events_archived,
    high_water,
    journals,
    lines,
    lots,
    member_phones,
    members,
    plates,
    redemptions,
    sales,
    station_flags,
    station_reviews,
)

__all__ = ["ledger_problems", "quarantined", "totals", "variance_report"]

_SHOWN = 20  # problems of one kind listed before "and N more"


def variance_report(conn: Connection) -> list[dict[str, Any]]:
    """Per station and rule-set version: what stations claimed against what the rules say.

    Reversed sales are left out: their reversal took back the variance with the points.
    """
    verified = sales.c.recomputed.is_not(None)
    stmt = (
        select(
            sales.c.station_id,
            sales.c.ruleset_version,
            func.count().label("sales"),
            func.coalesce(func.sum(sales.c.points), 0).label("claimed"),
            func.coalesce(func.sum(sales.c.recomputed), 0).label("recomputed"),
            func.coalesce(func.sum(case((verified, sales.c.points), else_=0)), 0).label("vclaimed"),
            func.coalesce(func.sum(case((verified, 1), else_=0)), 0).label("verified"),
            func.coalesce(
                func.sum(case((verified & (sales.c.points != sales.c.recomputed), 1), else_=0)), 0
            ).label("differing"),
        )
        .where(sales.c.member_id.is_not(None), sales.c.status != "reversed")
        .group_by(sales.c.station_id, sales.c.ruleset_version)
        .order_by(sales.c.station_id, sales.c.ruleset_version)
    )
    return [
        {
            "station_id": row.station_id,
            "ruleset_version": row.ruleset_version,
            "sales": int(row.sales),
            "points_claimed": int(row.claimed),
            "points_recomputed": int(row.recomputed),
            "variance": int(row.vclaimed) - int(row.recomputed),
            "sales_differing": int(row.differing),
            "unverified": int(row.sales) - int(row.verified),
        }
        for row in conn.execute(stmt)
    ]


def quarantined(conn: Connection, limit: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(events)
        .where(events.c.status == "rejected")
        .order_by(events.c.id.desc())
        .limit(max(1, min(limit, 10_000)))
    )
    return [
        {
            "event_id": row.event_id,
            "station_id": row.station_id,
            "epoch": row.epoch,
            "seq": row.seq,
            "kind": row.kind,
            "reason": row.reason,
            "received_at": row.received_at,
            "event": json.loads(row.body),
        }
        for row in rows
    ]


def _pairs(conn: Connection, stmt: Any) -> dict[str, int]:
    return {str(key): int(value or 0) for key, value in conn.execute(stmt)}


def _scalar(conn: Connection, stmt: Any) -> int:
    return int(conn.execute(stmt).scalar_one_or_none() or 0)


def totals(conn: Connection) -> dict[str, int]:
    by_status = _pairs(conn, select(events.c.status, func.count()).group_by(events.c.status))
    return {
        "members": _scalar(conn, select(func.count()).where(members.c.status == "active")),
        "events_applied": int(by_status.get("applied", 0)),
        "events_rejected": int(by_status.get("rejected", 0)),
        "events_duplicate": _scalar(
            conn, select(counters.c.value).where(counters.c.name == "events_duplicate")
        ),
        "total_overdraft": _scalar(conn, select(func.sum(members.c.overdraft))),
        "allowances_granted_points": _scalar(conn, select(func.sum(allowances.c.points))),
        "redemption_overdraft": _scalar(conn, select(func.sum(redemptions.c.shortfall))),
        "journals": _scalar(conn, select(func.count()).select_from(journals)),
        "station_flags": _scalar(conn, select(func.count()).select_from(station_flags)),
        "station_flags_open": _scalar(
            conn, select(func.count()).where(station_flags.c.resolved_at.is_(None))
        ),
        "flagged_overdraft": _scalar(
            conn, select(func.sum(redemptions.c.shortfall)).where(redemptions.c.flag.is_not(None))
        ),
        "stations_suspended": _scalar(
            conn, select(func.count()).where(station_reviews.c.suspended.is_(True))
        ),
        "adjustments_pending": _scalar(
            conn, select(func.count()).where(adjustments.c.status == "pending")
        ),
    }


def _listed(problems: list[str], found: list[str]) -> None:
    problems.extend(found[:_SHOWN])
    if len(found) > _SHOWN:
        problems.append(f"... and {len(found) - _SHOWN} more like the above")


def _balance_problems(conn: Connection) -> list[str]:
    found: list[str] = []
    total = _scalar(conn, select(func.sum(lines.c.points)))
    if total:
        found.append(f"all journal lines sum to {total}, not 0")
    unbalanced = conn.execute(
        select(lines.c.journal_id, func.sum(lines.c.points))
        .group_by(lines.c.journal_id)
        .having(func.sum(lines.c.points) != 0)
    ).all()
    found += [f"journal {jid} sums to {int(s)}, not 0" for jid, s in unbalanced]
    booked = _pairs(
        conn,
        select(lines.c.account, func.sum(lines.c.points))
        .where(lines.c.account.like("member:%"))
        .group_by(lines.c.account),
    )
    held = _pairs(
        conn, select(lots.c.member_id, func.sum(lots.c.remaining)).group_by(lots.c.member_id)
    )
    owed = _pairs(
        conn,
        select(members.c.member_id, members.c.overdraft).where(members.c.overdraft != 0),
    )
    for member_id in sorted(set(held) | set(owed) | {a[len("member:") :] for a in booked}):
        lines_sum = int(booked.get(account(member_id), 0))
        expected = int(held.get(member_id, 0)) - int(owed.get(member_id, 0))
        if lines_sum != expected:
            found.append(
                f"member {member_id}: account lines sum to {lines_sum}, "
                f"lots minus overdraft is {expected}"
            )
    return found


def _row_problems(conn: Connection) -> list[str]:
    found: list[str] = []
    bad_lots = conn.execute(
        select(lots.c.lot_id).where(
            (lots.c.remaining < 0)
            | (lots.c.expired < 0)
            | (lots.c.repaid < 0)
            | (lots.c.remaining + lots.c.expired + lots.c.repaid > lots.c.points)
        )
    ).scalars()
    found += [
        f"lot {lot_id} holds more than it earned, or less than nothing" for lot_id in bad_lots
    ]
    for row in conn.execute(select(members)):
        if row.overdraft < 0:
            found.append(f"member {row.member_id} has a negative overdraft")
        if row.status == "active" and bool(row.denied) != (row.overdraft > 0):
            found.append(f"member {row.member_id}: deny flag disagrees with its overdraft")
        if row.status == "merged" and (row.overdraft or row.denied or not row.merged_into):
            found.append(f"merged member {row.member_id} still owes, is denied or has no survivor")
        if row.status not in ("active", "merged"):
            found.append(f"member {row.member_id} has status {row.status!r}")
    stranded = conn.execute(
        select(lots.c.lot_id)
        .join(members, members.c.member_id == lots.c.member_id)
        .where(members.c.status != "active", lots.c.remaining > 0)
    ).scalars()
    found += [f"lot {lot_id} still holds points for a merged member" for lot_id in stranded]
    orphans = conn.execute(
        select(plates.c.plate_index)
        .join(members, members.c.member_id == plates.c.member_id)
        .where(members.c.status != "active")
    ).scalars()
    found += [f"plate {index[:12]}… belongs to a merged member" for index in orphans]
    return found


def _event_problems(conn: Connection) -> list[str]:
    found: list[str] = []
    odd = conn.execute(
        select(events.c.event_id).where(events.c.status.not_in(("applied", "rejected")))
    ).scalars()
    found += [f"event {event_id} has no result" for event_id in odd]
    counts = {
        (row.station_id, row.epoch): (int(row.n), int(row.seqs), int(row.ids), row.low, row.high)
        for row in conn.execute(
            select(
                events.c.station_id,
                events.c.epoch,
                func.count().label("n"),
                func.count(events.c.seq.distinct()).label("seqs"),
                func.count(events.c.event_id.distinct()).label("ids"),
                func.min(events.c.seq).label("low"),
                func.max(events.c.seq).label("high"),
            ).group_by(events.c.station_id, events.c.epoch)
        )
    }
    # Events detached for the archive (partitions.py) are counted per station and epoch:
    # with what is stored, they make up the whole sequence up to the high-water mark.
    archived = {
        (row.station_id, row.epoch): (int(row.events), int(row.high_seq))
        for row in conn.execute(select(events_archived))
    }
    for row in conn.execute(select(high_water)):
        key = (row.station_id, row.epoch)
        gone, last_gone = archived.get(key, (0, row.first_seq - 1))
        n, seqs, ids, low, high = counts.pop(key, (0, 0, 0, None, None))
        expected = row.high_water - row.first_seq + 1
        top = last_gone if high is None else max(int(high), last_gone)
        if (
            n + gone != expected
            or seqs != n
            or ids != n
            or top != row.high_water
            or (low is not None and int(low) < row.first_seq)
        ):
            found.append(
                f"station {row.station_id} epoch {row.epoch}: {n} events stored "
                f"({seqs} sequence numbers, {ids} ids) and {gone} archived for "
                f"sequence {row.first_seq}..{row.high_water}"
            )
    found += [f"station {s} epoch {e}: events without a high-water mark" for s, e in counts]
    return found


def _allowance_problems(conn: Connection) -> list[str]:
    """Overdraft stays within the allowances granted, and every redemption beyond a
    station's allowance is on HQ's review list with the overdraft it created."""
    found: list[str] = []
    granted = _scalar(conn, select(func.sum(allowances.c.points)))
    within = _scalar(
        conn, select(func.sum(redemptions.c.shortfall)).where(redemptions.c.flag.is_(None))
    )
    created = _scalar(conn, select(func.sum(redemptions.c.shortfall)))
    outstanding = _scalar(conn, select(func.sum(members.c.overdraft)))
    if within > granted:
        found.append(
            f"redemptions overdrew {within} points, more than the {granted} allowances granted"
        )
    if outstanding > created:
        found.append(f"members owe {outstanding} points, more than redemptions ever overdrew")
    listed = (
        select(station_flags.c.event_id)
        .where(station_flags.c.event_id == redemptions.c.event_id)
        .where(station_flags.c.shortfall == redemptions.c.shortfall)
    )
    unlisted = conn.execute(
        select(redemptions.c.station_id, redemptions.c.redemption_id).where(
            redemptions.c.flag.is_not(None), ~listed.exists()
        )
    ).all()
    found += [
        f"redemption {rid} of station {sid} is beyond its allowance but not on the review list"
        for sid, rid in unlisted
    ]
    return found


def _key_problems(conn: Connection) -> list[str]:
    """What schema 5 left to the ledger rather than to keys Citus cannot keep (docs/scale.md):
    sales' and plates' members exist, member_phones is the active members' phones, and a
    station's redemption ids stay its own."""
    found: list[str] = []
    for table, what in ((sales, "sale"), (plates, "plate")):
        key = table.primary_key.columns.values()[0]
        lost = conn.execute(
            select(key).where(
                table.c.member_id.is_not(None),
                ~select(members.c.member_id)
                .where(members.c.member_id == table.c.member_id)
                .exists(),
            )
        ).scalars()
        found += [f"{what} {str(k)[:12]}… names a member the ledger does not hold" for k in lost]
    phones = set(conn.execute(select(member_phones.c.phone_index, member_phones.c.member_id)))
    active_members = (members.c.status == "active", members.c.phone_index.is_not(None))
    active = set(
        conn.execute(select(members.c.phone_index, members.c.member_id).where(*active_members))
    )
    if phones != active:
        found.append(
            f"member_phones holds {len(phones)} phones, the active members {len(active)}; "
            f"{len(phones ^ active)} differ"
        )
    shared = conn.execute(
        select(members.c.phone_index)
        .where(*active_members)
        .group_by(members.c.phone_index)
        .having(func.count() > 1)
    ).scalars()
    found += [f"phone {str(p)[:12]}… has more than one active member" for p in shared]
    found += _event_id_problems(conn)
    reused = conn.execute(
        select(redemptions.c.station_id, redemptions.c.redemption_id)
        .group_by(redemptions.c.station_id, redemptions.c.redemption_id)
        .having(func.count() > 1)
    ).all()
    found += [f"redemption {rid} of station {sid} is booked twice" for sid, rid in reused]
    return found


def _event_id_problems(conn: Connection) -> list[str]:
    """Every event has its `event_ids` row (its id, its station) and every row its event."""
    same = (
        event_ids.c.event_id == events.c.event_id,
        event_ids.c.station_id == events.c.station_id,
    )
    unclaimed = _scalar(
        conn,
        select(func.count())
        .select_from(events)
        .where(~select(event_ids.c.event_id).where(*same).exists()),
    )
    orphans = _scalar(
        conn,
        select(func.count())
        .select_from(event_ids)
        .where(~select(events.c.id).where(*same).exists()),
    )
    archived = _scalar(conn, select(func.coalesce(func.sum(events_archived.c.events), 0)))
    found = []
    if unclaimed:
        found.append(f"{unclaimed} events have no event_ids row of their station")
    if orphans != archived:  # an archived event keeps its id: a replay is still a conflict
        found.append(f"{orphans} event_ids rows have no event ({archived} archived)")
    return found


def ledger_problems(conn: Connection) -> list[str]:
    problems: list[str] = []
    checks = (_balance_problems, _row_problems, _event_problems, _allowance_problems)
    for check in (*checks, _key_problems):
        _listed(problems, check(conn))
    return problems
