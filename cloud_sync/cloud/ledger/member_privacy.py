"""PIPL requests: everything the chain holds on a member (export), and erasure.

Erasure anonymises, it does not delete: the member id, its lots, journals and every ledger
sum stay as they are (the points liability and the roll-forward must not move), while the
phone, name and plates go: sealed values and blind indexes dropped, the masked phone
replaced by a fixed marker, and the same fields scrubbed from the stored event bodies. The
member's change goes into the changes feed, where stations read it as "erased" and drop
the identity too. Both requests are audited in their own transaction; the export's audit
row says an export happened, never what it held.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, delete, select, update

from cloud_sync.core.privacy import MemberKeys, decrypt_field

from .audit import record_audit
from .changes import append_changes
from .database import Database
from .errors import LedgerError
from .member_activity_privacy import activity_export, erase_activity
from .member_admin import (
    ERASED_MARK,
    audit_about,
    event_bodies,
    family_of,
    member_page,
    member_sales,
)
from .schema import events, lots, member_phones, members, plates, sales

__all__ = ["erase_member", "export_member"]

# Personal fields of the events that carry them, by kind: sealed values and blind indexes.
_SCRUB: dict[str, dict[str, Any]] = {
    "member.registered": {
        "phone_index": None,
        "phone_sealed": None,
        "phone_masked": ERASED_MARK,
        "name_sealed": None,
    },
    "plate.attached": {"plate_index": None, "plate_sealed": None},
}


def _open(keys: MemberKeys, field: str, sealed: str | None) -> str | None:
    return None if sealed is None else decrypt_field(keys, field, sealed)


def _survivor_row(conn: Connection, member_id: str) -> Any:
    row = conn.execute(select(members).where(members.c.member_id == member_id)).first()
    if row is None:
        raise LedgerError("member.unknown", f"no member {member_id}")
    return row


def export_member(
    conn: Connection, keys: MemberKeys, member_id: str, *, actor: str, now: datetime
) -> dict[str, Any]:
    """The member's data as one JSON-ready document (phone, name and plates unsealed)."""
    page = member_page(conn, keys, member_id, now)
    if page is None:
        raise LedgerError("member.unknown", f"no member {member_id}")
    survivor = page["member_id"]
    row = _survivor_row(conn, survivor)
    family = family_of(conn, survivor)
    every_sale: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        chunk = member_sales(conn, survivor, before=cursor, limit=200)
        every_sale += chunk["sales"]
        cursor = chunk["next"]
        if cursor is None:
            break
    all_lots = [
        {str(key): value for key, value in r._mapping.items()}
        for r in conn.execute(
            select(lots).where(lots.c.member_id == survivor).order_by(lots.c.earned_ms)
        )
    ]
    document = {
        "exported_at": now.isoformat(),
        "member_id": survivor,
        "merged_ids": family[1:],
        "profile": {
            "phone": _open(keys, "phone", row.phone_sealed),
            "phone_masked": row.phone_masked,
            "name": _open(keys, "name", row.name_sealed),
            "registered_at": row.registered_at,
            "registered_station": row.registered_station,
            "tier": row.tier,
            "status": row.status,
            "erased": row.phone_index is None,
        },
        "consent": page["consent"],
        "plates": page["plates"],
        "balance": {"points": page["points"], "overdraft": page["overdraft"]},
        "lots": all_lots,
        "sales": every_sale,
        "redemptions": page["redemptions"],
        "adjustments": page["adjustments"],
        "tier_history": page["tier_history"],
        "member_app": activity_export(conn, keys, family),
        "audit": audit_about(conn, survivor),
    }
    record_audit(
        conn,
        actor=actor,
        action="member.pipl_export",
        target=survivor,
        at=now,
        after={"sales": len(every_sale), "lots": len(all_lots)},
    )
    return document


def _scrub_events(conn: Connection, family: list[str]) -> int:
    found = event_bodies(conn, tuple(_SCRUB), family)
    rows = []
    for row, body, payload in found:
        kind = body.get("kind")
        payload.update({k: v for k, v in _SCRUB.get(str(kind), {}).items() if k in payload})
        body["payload"] = payload
        rows.append({"k_id": row.id, "v_body": orjson.dumps(body).decode("utf-8")})
    if rows:
        conn.execute(
            update(events).where(events.c.id == bindparam("k_id")).values(body=bindparam("v_body")),
            rows,
        )
    return len(rows)


def erase_member(
    db: Database, conn: Connection, member_id: str, *, actor: str, now: datetime
) -> dict[str, Any]:
    """Anonymise the member (and the ids merged into it); the ledger's sums do not move."""
    row = _survivor_row(conn, member_id)
    if row.status == "merged":
        raise LedgerError(
            "member.merged", f"member {member_id} was merged into {row.merged_into}: erase that"
        )
    if db.dialect == "postgresql":
        locked = select(members.c.phone_index, members.c.phone_sealed)
        row = conn.execute(locked.where(members.c.member_id == member_id).with_for_update()).one()
    family = family_of(conn, member_id)
    if row.phone_index is None and row.phone_sealed is None:
        raise LedgerError("member.erased", f"member {member_id} was erased already")
    plate_count = len(
        list(conn.execute(select(plates.c.plate_index).where(plates.c.member_id.in_(family))))
    )
    conn.execute(delete(plates).where(plates.c.member_id.in_(family)))
    if row.phone_index is not None:  # only the active member holds its phone: by the key
        conn.execute(
            delete(member_phones).where(
                member_phones.c.phone_index == row.phone_index,
                member_phones.c.member_id == member_id,
            )
        )
    conn.execute(
        update(members)
        .where(members.c.member_id.in_(family))
        .values(phone_index=None, phone_sealed=None, name_sealed=None, phone_masked=ERASED_MARK)
    )
    scrubbed = _scrub_events(conn, family)
    activity = erase_activity(conn, family, now)
    sale_count = len(
        list(conn.execute(select(sales.c.sale_id).where(sales.c.member_id.in_(family))))
    )
    record_audit(
        conn,
        actor=actor,
        action="member.pipl_erase",
        target=member_id,
        at=now,
        after={
            "plates_removed": plate_count,
            "events_scrubbed": scrubbed,
            "ids": len(family),
            **activity,
        },
    )
    append_changes(db, conn, [("member", m) for m in family], now)
    return {
        "member_id": member_id,
        "erased_ids": family,
        "plates_removed": plate_count,
        "events_scrubbed": scrubbed,
        "sales_kept": sale_count,
        **activity,
    }
