"""The member's PIPL rights exercised in the app: a copy of everything held, marketing
consent given or withdrawn, and deleting the account.

The export and the erasure are HQ's own (`member_privacy`): the same document, the same
anonymisation (ledger sums kept), audited with the member as the actor (`member:<id>`). The
app adds what only it holds: its sessions (check-ins, invoice requests and feedback are in
HQ's document too). Deleting
the account also ends every session of the member, so the token that asked stops working.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from cloud_sync.core.privacy import MemberKeys

from .audit import record_audit
from .database import Database
from .errors import LedgerError
from .member_privacy import erase_member, export_member
from .member_self import signed_in_member
from .member_sessions import revoke_member_sessions
from .postings import millis
from .schema import members
from .schema_app import member_sessions

__all__ = ["actor_of", "delete_account", "export_for_member", "set_marketing_consent"]


def actor_of(member_id: str) -> str:
    """How the audit log names a member acting for themselves."""
    return f"member:{member_id}"


def _sessions(conn: Connection, family: list[str], now_ms: int) -> dict[str, int]:
    s = member_sessions.c
    mine = s.member_id.in_(family)
    total = conn.execute(select(func.count()).where(mine)).scalar_one()
    live = conn.execute(
        select(func.count()).where(mine, s.revoked_ms.is_(None), s.refresh_expires_ms > now_ms)
    ).scalar_one()
    return {"total": int(total), "live": int(live)}


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
    # check-ins, invoice requests and feedback are in HQ's document already (`member_app`)
    document["member_app"] = {
        **document.get("member_app", {}),
        "sessions": _sessions(conn, family, millis(now)),
    }
    document["wallet"] = None  # stored-value wallets have not landed: nothing held
    return document


def set_marketing_consent(
    conn: Connection, member_id: str, *, marketing: bool, now: datetime
) -> dict[str, Any]:
    """Give (keeping the first time it was given) or withdraw marketing consent; a change
    is audited as the member, a repeat changes nothing (the row is read under its lock, so
    parallel repeats audit one change)."""
    stmt = select(members.c.marketing_at).where(members.c.member_id == member_id)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    was = conn.execute(stmt).scalar_one()
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
    """HQ's erasure, asked by the member; then every session of the member ends.

    The member's row is locked first (PostgreSQL; SQLite has one writer) and read again, so
    of two parallel deletions one erases and the other finds the account gone."""
    if db.dialect == "postgresql":
        conn.execute(
            select(members.c.member_id).where(members.c.member_id == member_id).with_for_update()
        )
    if signed_in_member(conn, member_id) is None:
        raise LedgerError("member.erased", "the account was deleted already")
    done = erase_member(db, conn, member_id, actor=actor_of(member_id), now=now)
    ended = sum(
        revoke_member_sessions(conn, erased, now_ms=millis(now)) for erased in done["erased_ids"]
    )
    return {**done, "sessions_ended": ended}
