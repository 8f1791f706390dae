"""What the station knows of the chain: sync cursor and enrolment, alerts, member snapshots,
the deny list and the offline redemption allowance."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .database import Tx

__all__ = [
    "AllowanceRow",
    "Disagreement",
    "MemberSnapshot",
    "SnapshotLot",
    "SyncState",
    "clear_denied",
    "count_refused_ruleset",
    "delete_snapshot",
    "denied_overdraft",
    "get_allowance",
    "get_snapshot",
    "get_sync_state",
    "open_disagreements",
    "put_allowance",
    "put_snapshot",
    "record_disagreements",
    "record_enrolled",
    "record_enrolment_started",
    "set_alert",
    "set_cursor",
    "set_denied",
    "set_last_contact",
    "set_offline_redemption",
    "settle_disagreement",
]


@dataclass(frozen=True)
class SyncState:
    cursor: int
    chain_key_id: str | None  # set once enrolled: members are sealed with the chain's keys
    rekey_to: str | None  # chain keys being installed (an enrolment not finished yet)
    signing_key_id: str | None
    signing_public_key: str | None
    enrolled_at: str | None
    last_contact: str | None
    alert_code: str
    alert_detail: str
    alert_at: str | None
    rules_refused: int
    rules_refused_reason: str | None
    offline_redemption: bool

    @property
    def enrolled(self) -> bool:
        return self.chain_key_id is not None


_STATE_COLUMNS = (
    "cursor, chain_key_id, rekey_to, signing_key_id, signing_public_key, enrolled_at, "
    "last_contact, alert_code, alert_detail, alert_at, rules_refused, rules_refused_reason, "
    "offline_redemption"
)


def get_sync_state(tx: Tx) -> SyncState:
    row = tx.execute(f"SELECT {_STATE_COLUMNS} FROM sync_state WHERE id = 1").fetchone()  # noqa: S608
    return SyncState(
        cursor=int(row[0]),
        chain_key_id=row[1],
        rekey_to=row[2],
        signing_key_id=row[3],
        signing_public_key=row[4],
        enrolled_at=row[5],
        last_contact=row[6],
        alert_code=str(row[7]),
        alert_detail=str(row[8]),
        alert_at=row[9],
        rules_refused=int(row[10]),
        rules_refused_reason=row[11],
        offline_redemption=bool(row[12]),
    )


def set_cursor(tx: Tx, cursor: int) -> None:
    tx.execute("UPDATE sync_state SET cursor = ? WHERE id = 1", [cursor])


def record_enrolment_started(
    tx: Tx, chain_key_id: str, signing_key_id: str, signing_public_key: str
) -> None:
    """Before the key files change: which keys are coming, and the rule-signing key."""
    tx.execute(
        "UPDATE sync_state SET rekey_to = ?, signing_key_id = ?, signing_public_key = ? "
        "WHERE id = 1",
        [chain_key_id, signing_key_id, signing_public_key],
    )


def record_enrolled(tx: Tx, chain_key_id: str, at: str) -> None:
    tx.execute(
        "UPDATE sync_state SET chain_key_id = ?, rekey_to = NULL, enrolled_at = ? WHERE id = 1",
        [chain_key_id, at],
    )


def set_last_contact(tx: Tx, at: str) -> None:
    tx.execute("UPDATE sync_state SET last_contact = ? WHERE id = 1", [at])


def set_alert(tx: Tx, code: str, detail: str, at: str | None) -> None:
    tx.execute(
        "UPDATE sync_state SET alert_code = ?, alert_detail = ?, alert_at = ? WHERE id = 1",
        [code, detail, at if code else None],
    )


def count_refused_ruleset(tx: Tx, reason: str) -> None:
    tx.execute(
        "UPDATE sync_state SET rules_refused = rules_refused + 1, rules_refused_reason = ? "
        "WHERE id = 1",
        [reason],
    )


def set_offline_redemption(tx: Tx, allowed: bool) -> None:
    tx.execute("UPDATE sync_state SET offline_redemption = ? WHERE id = 1", [int(allowed)])


@dataclass(frozen=True)
class SnapshotLot:
    points: int
    expires_at: str | None


@dataclass(frozen=True)
class MemberSnapshot:
    """A member's chain balance as the cloud stated it, and up to which own event."""

    member_id: str
    lots: tuple[SnapshotLot, ...]
    overdraft: int
    as_of_epoch: int
    as_of_seq: int
    received_at: str


def put_snapshot(tx: Tx, snapshot: MemberSnapshot) -> None:
    lots = json.dumps(
        [{"points": lot.points, "expires_at": lot.expires_at} for lot in snapshot.lots],
        separators=(",", ":"),
    )
    tx.execute(
        "INSERT INTO member_snapshots (member_id, lots, overdraft, as_of_epoch, as_of_seq, "
        "received_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (member_id) DO UPDATE SET "
        "lots = excluded.lots, overdraft = excluded.overdraft, "
        "as_of_epoch = excluded.as_of_epoch, as_of_seq = excluded.as_of_seq, "
        "received_at = excluded.received_at",
        [
            snapshot.member_id,
            lots,
            snapshot.overdraft,
            snapshot.as_of_epoch,
            snapshot.as_of_seq,
            snapshot.received_at,
        ],
    )


def get_snapshot(tx: Tx, member_id: str) -> MemberSnapshot | None:
    row = tx.execute(
        "SELECT member_id, lots, overdraft, as_of_epoch, as_of_seq, received_at "
        "FROM member_snapshots WHERE member_id = ?",
        [member_id],
    ).fetchone()
    if row is None:
        return None
    member, lots, overdraft, epoch, seq, received_at = row
    return MemberSnapshot(
        member_id=str(member),
        lots=tuple(SnapshotLot(int(lot["points"]), lot["expires_at"]) for lot in json.loads(lots)),
        overdraft=int(overdraft),
        as_of_epoch=int(epoch),
        as_of_seq=int(seq),
        received_at=str(received_at),
    )


def delete_snapshot(tx: Tx, member_id: str) -> None:
    tx.execute("DELETE FROM member_snapshots WHERE member_id = ?", [member_id])


def set_denied(tx: Tx, member_id: str, overdraft: int, at: str) -> None:
    tx.execute(
        "INSERT INTO deny_list (member_id, overdraft, listed_at) VALUES (?, ?, ?) "
        "ON CONFLICT (member_id) DO UPDATE SET overdraft = excluded.overdraft",
        [member_id, overdraft, at],
    )


def clear_denied(tx: Tx, member_id: str) -> None:
    tx.execute("DELETE FROM deny_list WHERE member_id = ?", [member_id])


def denied_overdraft(tx: Tx, member_id: str) -> int | None:
    """The overdraft of a member on the deny list; None when the member is not on it."""
    row = tx.execute("SELECT overdraft FROM deny_list WHERE member_id = ?", [member_id]).fetchone()
    return None if row is None else int(row[0])


@dataclass(frozen=True)
class AllowanceRow:
    allowance_id: str
    points: int
    per_member_cap: int
    expires_at: str
    max_snapshot_age_s: int
    received_at: str


def put_allowance(tx: Tx, allowance: AllowanceRow) -> None:
    tx.execute(
        "INSERT INTO allowance (id, allowance_id, points, per_member_cap, expires_at, "
        "max_snapshot_age_s, received_at) VALUES (1, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET allowance_id = excluded.allowance_id, "
        "points = excluded.points, per_member_cap = excluded.per_member_cap, "
        "expires_at = excluded.expires_at, max_snapshot_age_s = excluded.max_snapshot_age_s, "
        "received_at = excluded.received_at",
        [
            allowance.allowance_id,
            allowance.points,
            allowance.per_member_cap,
            allowance.expires_at,
            allowance.max_snapshot_age_s,
            allowance.received_at,
        ],
    )


def get_allowance(tx: Tx) -> AllowanceRow | None:
    row = tx.execute(
        "SELECT allowance_id, points, per_member_cap, expires_at, max_snapshot_age_s, "
        "received_at FROM allowance WHERE id = 1"
    ).fetchone()
    return None if row is None else AllowanceRow(*row)


@dataclass(frozen=True)
class Disagreement:
    event_id: str
    epoch: int
    seq: int
    kind: str
    status: str  # rejected | flagged | held
    reason: str
    noted_at: str


def record_disagreements(
    tx: Tx, epoch: int, found: list[tuple[str, int, str, str]], at: str
) -> None:
    """Keep (event_id, seq, status, reason) the cloud answered otherwise than we booked;
    a replayed answer for the same event is kept once."""
    for event_id, seq, status, reason in found:
        tx.execute(
            "INSERT INTO cloud_disagreements "
            "(event_id, epoch, seq, kind, status, reason, noted_at) VALUES (?, ?, ?, "
            "COALESCE((SELECT kind FROM outbox WHERE event_id = ?), '?'), ?, ?, ?) "
            "ON CONFLICT (event_id) DO NOTHING",
            [event_id, epoch, seq, event_id, status, reason, at],
        )


def open_disagreements(tx: Tx, limit: int = 1000) -> list[Disagreement]:
    rows = tx.execute(
        "SELECT event_id, epoch, seq, kind, status, reason, noted_at FROM cloud_disagreements "
        "WHERE settled_at IS NULL ORDER BY epoch, seq LIMIT ?",
        [limit],
    ).fetchall()
    return [Disagreement(*row) for row in rows]


def settle_disagreement(tx: Tx, event_id: str, by: str, at: str) -> bool:
    """Mark one as settled (HQ answered); False when there is no open one by that id."""
    done = tx.execute(
        "UPDATE cloud_disagreements SET settled_at = ?, settled_by = ? "
        "WHERE event_id = ? AND settled_at IS NULL",
        [at, by, event_id],
    )
    return bool(done.rowcount)
