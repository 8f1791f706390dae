"""The member's PIPL rights exercised in the app: a copy of everything held, marketing
consent given or withdrawn, and deleting the account.

The export and the erasure are HQ's own (`member_privacy`): the same document, the same
anonymisation (ledger sums kept), audited with the member as the actor (`member:<id>`). The
app adds what only it holds: sessions, check-ins, invoice requests and feedback. Deleting
the account also ends every session of the member, so the token that asked stops working.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from cloud_sync.core.privacy import DecryptionError, MemberKeys, decrypt_field

from .audit import record_audit
from .database import Database
from .member_privacy import erase_member, export_member
from .member_sessions import revoke_member_sessions
from .postings import millis
from .schema import members
from .schema_app import checkins, feedback, invoice_requests, member_sessions

__all__ = ["actor_of", "delete_account", "export_for_member", "set_marketing_consent"]

_APP_ROWS_MAX = 10_000  # rows of one app table in an export (a check-in a day: 27 years)


def actor_of(member_id: str) -> str:
    """How the audit log names a member acting for themselves."""
    return f"member:{member_id}"


def _open(keys: MemberKeys, field: str, sealed: str | None) -> str | None:
    if sealed is None:
        return None
    try:
        return decrypt_field(keys, field, sealed)
    except DecryptionError:
        return None  # sealed under keys this cloud no longer holds


def _rows(conn: Connection, stmt: Any) -> list[dict[str, Any]]:
    rows = conn.execute(stmt.limit(_APP_ROWS_MAX)).mappings()
    return [{str(key): value for key, value in row.items()} for row in rows]


def _app_data(conn: Connection, keys: MemberKeys, family: list[str], now_ms: int) -> dict[str, Any]:
    s = member_sessions.c
    mine = s.member_id.in_(family)
    total = conn.execute(select(func.count()).where(mine)).scalar_one()
    live = conn.execute(
        select(func.count()).where(mine, s.revoked_ms.is_(None), s.refresh_expires_ms > now_ms)
    ).scalar_one()
    requests = []
    for row in _rows(
        conn,
        select(invoice_requests)
        .where(invoice_requests.c.member_id.in_(family))
        .order_by(invoice_requests.c.requested_ms),
    ):
        requests.append(
            {
                key: value
                for key, value in row.items()
                if key not in ("buyer_name_sealed", "tax_id_sealed", "email_sealed")
            }
            | {
                "buyer_name": _open(keys, "buyer_name", row["buyer_name_sealed"]),
                "tax_id": _open(keys, "tax_id", row["tax_id_sealed"]),
                "email": _open(keys, "email", row["email_sealed"]),
            }
        )
    return {
        "sessions": {"total": int(total), "live": int(live)},
        "checkins": _rows(
            conn,
            select(checkins).where(checkins.c.member_id.in_(family)).order_by(checkins.c.day),
        ),
        "invoice_requests": requests,
        "feedback": _rows(
            conn,
            select(feedback).where(feedback.c.member_id.in_(family)).order_by(feedback.c.at_ms),
        ),
    }


def export_for_member(
    conn: Connection, keys: MemberKeys, member_id: str, now: datetime
) -> dict[str, Any]:
    """HQ's PIPL export of the member, the marketing consent and the app's own rows."""
    document = export_member(conn, keys, member_id, actor=actor_of(member_id), now=now)
    family = [document["member_id"], *document["merged_ids"]]
    marketing_at = conn.execute(
        select(members.c.marketing_at).where(members.c.member_id == member_id)
    ).scalar_one_or_none()
    document["consent"] = {**(document.get("consent") or {}), "marketing_at": marketing_at}
    document["app"] = _app_data(conn, keys, family, millis(now))
    document["wallet"] = None  # stored-value wallets have not landed: nothing held
    return document


def set_marketing_consent(
    conn: Connection, member_id: str, *, marketing: bool, now: datetime
) -> dict[str, Any]:
    """Give (keeping the first time it was given) or withdraw marketing consent; a change
    is audited as the member, a repeat changes nothing."""
    was = conn.execute(
        select(members.c.marketing_at).where(members.c.member_id == member_id)
    ).scalar_one()
    at = (was or now.isoformat()) if marketing else None
    if at != was:
        conn.execute(
            update(members).where(members.c.member_id == member_id).values(marketing_at=at)
        )
        record_audit(
            conn,
            actor=actor_of(member_id),
            action="member.marketing_consent",
            target=member_id,
            at=now,
            before={"marketing": was is not None, "at": was},
            after={"marketing": at is not None, "at": at},
        )
    return {"marketing": at is not None, "at": at, "changed": at != was}


def delete_account(db: Database, conn: Connection, member_id: str, now: datetime) -> dict[str, Any]:
    """HQ's erasure, asked by the member; then every session of the member ends."""
    done = erase_member(db, conn, member_id, actor=actor_of(member_id), now=now)
    ended = sum(
        revoke_member_sessions(conn, erased, now_ms=millis(now)) for erased in done["erased_ids"]
    )
    return {**done, "sessions_ended": ended}
