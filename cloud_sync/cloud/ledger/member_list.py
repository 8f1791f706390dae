"""The member list HQ exports: id, masked phone, name, tier, balance, registered, last visit.

Read in pages of member ids so a million members never sit in one result set; the balance
is the spendable one (live lots minus overdraft), as the member page shows it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, or_, select

from cloud_sync.core.privacy import MemberKeys, decrypt_field

from .postings import millis
from .schema import lots, member_activity, members

__all__ = ["CHAIN_ZONE", "member_rows"]

CHAIN_ZONE = ZoneInfo("Asia/Shanghai")  # the chain's dates (hq-console.md)
_PAGE = 2_000


def _day(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(CHAIN_ZONE).isoformat()


def member_rows(conn: Connection, keys: MemberKeys, now: datetime) -> list[dict[str, Any]]:
    return list(iter_member_rows(conn, keys, now))


def iter_member_rows(conn: Connection, keys: MemberKeys, now: datetime) -> Iterator[dict[str, Any]]:
    now_ms = millis(now)
    after = ""
    while True:
        page = conn.execute(
            select(members)
            .where(members.c.status == "active", members.c.member_id > after)
            .order_by(members.c.member_id)
            .limit(_PAGE)
        ).all()
        if not page:
            return
        ids = [row.member_id for row in page]
        held = dict(
            conn.execute(
                select(lots.c.member_id, func.sum(lots.c.remaining))
                .where(
                    lots.c.member_id.in_(ids),
                    lots.c.remaining > 0,
                    or_(lots.c.expires_ms.is_(None), lots.c.expires_ms > now_ms),
                )
                .group_by(lots.c.member_id)
            ).all()
        )
        last = dict(
            conn.execute(
                select(member_activity.c.member_id, member_activity.c.last_sale_ms).where(
                    member_activity.c.member_id.in_(ids)
                )
            ).all()
        )
        for row in page:
            yield {
                "member_id": row.member_id,
                "phone_masked": row.phone_masked,
                "name": None
                if row.name_sealed is None
                else decrypt_field(keys, "name", row.name_sealed),
                "tier": row.tier,
                "points": int(held.get(row.member_id) or 0) - int(row.overdraft),
                "registered_at": row.registered_at,
                "last_visit": _day(last.get(row.member_id)),
            }
        after = ids[-1]
