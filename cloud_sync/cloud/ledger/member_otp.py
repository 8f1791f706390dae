"""One-time sign-in codes for the member's app: issued under rate limits, checked with a
bounded number of tries, consumed once.

Nobody but the phone's owner should be able to keep them from signing in: a request for a
code while the phone's live code is younger than the resend cooldown replaces nothing and
sends nothing (the live code stays good), and wrong answers are limited per address
(`reserve_sign_in_try`) as well as per code, so one address cannot burn many phones' codes.

A phone is known here only by its blind index, and a code only by a keyed hash (`OtpHasher`,
whose key the caller derives from a secret only the cloud holds), so a copy of the database
gives neither. Everything runs inside the caller's transaction: on PostgreSQL the code's row
is read FOR UPDATE and a send takes advisory locks on its phone and address, so parallel
requests queue (SQLite has one writer already); a limit counted there cannot be overrun by
a burst. Refusals are returned as values, not raised, so the caller commits the counted
try before it answers.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, delete, func, insert, select, text, update

from .schema_app import member_otp_sends, member_otps, member_sign_in_failures

__all__ = [
    "CODE_DIGITS",
    "DAY_MS",
    "HOUR_MS",
    "CodeCheck",
    "OtpHasher",
    "OtpPolicy",
    "SendOutcome",
    "check_code",
    "consume_code",
    "forgive_sign_in_try",
    "issue_code",
    "new_code",
    "reserve_sign_in_try",
    "retry_after_s",
]

CODE_DIGITS = 6
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
_LOCK_CLASS = 0x6C706F74  # pg_advisory_xact_lock(class, key): "lpot"
_PHONE, _ADDRESS, _SIGN_IN_ADDRESS = 1, 2, 3


@dataclass(frozen=True)
class OtpPolicy:
    ttl_ms: int
    tries: int
    per_phone_per_hour: int
    per_address_per_hour: int
    per_phone_per_day: int
    resend_ms: int  # a live code younger than this is neither replaced nor resent


@dataclass(frozen=True)
class OtpHasher:
    """The keyed hash a code is stored as, bound to its phone and the moment it was sent
    (the same code sent twice hashes differently)."""

    key: bytes

    def digest(self, phone_index: str, sent_ms: int, code: str) -> str:
        message = f"{phone_index}\x00{sent_ms}\x00{code}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


@dataclass(frozen=True)
class SendOutcome:
    """`retry_after_s` > 0: a limit is reached and nothing was sent or stored. `fresh`
    False: the phone's live code is within the resend cooldown, so nothing was stored and
    nothing is to be sent (the caller answers as for a send)."""

    retry_after_s: int
    limit: Literal["phone", "address", ""] = ""
    fresh: bool = True


def retry_after_s(oldest_ms: int, now_ms: int, window_ms: int = HOUR_MS) -> int:
    """Whole seconds until the oldest counted send leaves the window (at least 1)."""
    return max(1, -(-(oldest_ms + window_ms - now_ms) // 1000))


def _lock(conn: Connection, kind: int, value: str) -> None:
    if conn.dialect.name != "postgresql":
        return  # SQLite: the write transaction (BEGIN IMMEDIATE) is the lock
    digest = hashlib.sha256(f"{kind}\x00{value}".encode()).digest()
    key = int.from_bytes(digest[:4], "big", signed=True)
    conn.execute(
        text("SELECT pg_advisory_xact_lock(:cls, :key)"), {"cls": _LOCK_CLASS + kind, "key": key}
    )


def _wait(
    conn: Connection, column: str, value: str, limit: int, now_ms: int, window_ms: int = HOUR_MS
) -> int:
    """Seconds until `value` may be sent a code again; 0 when it has sends left in the
    window."""
    col = member_otp_sends.c[column]
    count, oldest = conn.execute(
        select(func.count(), func.min(member_otp_sends.c.sent_ms)).where(
            col == value, member_otp_sends.c.sent_ms > now_ms - window_ms
        )
    ).one()
    return retry_after_s(int(oldest), now_ms, window_ms) if int(count) >= limit else 0


def _cooling(conn: Connection, phone_index: str, resend_ms: int, now_ms: int) -> bool:
    """Whether the phone's live code was sent less than `resend_ms` ago."""
    sent_ms = conn.execute(
        select(member_otps.c.sent_ms).where(
            member_otps.c.phone_index == phone_index, member_otps.c.expires_ms > now_ms
        )
    ).scalar_one_or_none()
    return sent_ms is not None and now_ms - int(sent_ms) < resend_ms


def issue_code(
    conn: Connection,
    *,
    phone_index: str,
    address: str,
    code: str,
    hasher: OtpHasher,
    policy: OtpPolicy,
    now_ms: int,
) -> SendOutcome:
    """Store `code` as the phone's one live code (replacing any earlier one) and count the
    send, unless the live code is within the resend cooldown (nothing is done: `fresh`
    False) or the phone has had its sends this hour or day, or the address this hour."""
    _lock(conn, _PHONE, phone_index)
    _lock(conn, _ADDRESS, address)
    conn.execute(delete(member_otp_sends).where(member_otp_sends.c.sent_ms <= now_ms - DAY_MS))
    conn.execute(delete(member_otps).where(member_otps.c.expires_ms <= now_ms))
    if _cooling(conn, phone_index, policy.resend_ms, now_ms):
        return SendOutcome(0, fresh=False)
    by_phone = max(
        _wait(conn, "phone_index", phone_index, policy.per_phone_per_hour, now_ms),
        _wait(conn, "phone_index", phone_index, policy.per_phone_per_day, now_ms, DAY_MS),
    )
    by_address = _wait(conn, "address", address, policy.per_address_per_hour, now_ms)
    if by_phone or by_address:
        return SendOutcome(max(by_phone, by_address), "phone" if by_phone else "address")
    conn.execute(
        insert(member_otp_sends).values(phone_index=phone_index, address=address, sent_ms=now_ms)
    )
    conn.execute(delete(member_otps).where(member_otps.c.phone_index == phone_index))
    conn.execute(
        insert(member_otps).values(
            phone_index=phone_index,
            code_hash=hasher.digest(phone_index, now_ms, code),
            sent_ms=now_ms,
            expires_ms=now_ms + policy.ttl_ms,
            tries=0,
        )
    )
    return SendOutcome(0)


@dataclass(frozen=True)
class CodeCheck:
    """`right`: the code matches (`code_hash` names it for `consume_code`); `wrong`: a try
    was counted, `tries_left` remain (0: the code is gone); `expired`: no live code."""

    verdict: Literal["right", "wrong", "expired"]
    tries_left: int = 0
    code_hash: str = ""


def check_code(
    conn: Connection,
    *,
    phone_index: str,
    code: str,
    hasher: OtpHasher,
    max_tries: int,
    now_ms: int,
) -> CodeCheck:
    """Compare `code` with the phone's live code, locking its row until commit; a wrong
    answer is counted, and the last allowed wrong answer deletes the code."""
    row = conn.execute(
        select(member_otps).where(member_otps.c.phone_index == phone_index).with_for_update()
    ).first()
    if row is None or row.expires_ms <= now_ms:
        return CodeCheck("expired")
    expected = hasher.digest(phone_index, int(row.sent_ms), code)
    if hmac.compare_digest(expected, str(row.code_hash)):
        return CodeCheck("right", code_hash=str(row.code_hash))
    tries = int(row.tries) + 1
    where = (member_otps.c.phone_index == phone_index, member_otps.c.code_hash == row.code_hash)
    if tries >= max_tries:
        conn.execute(delete(member_otps).where(*where))
    else:
        conn.execute(update(member_otps).where(*where).values(tries=tries))
    return CodeCheck("wrong", tries_left=max(0, max_tries - tries))


def consume_code(conn: Connection, *, phone_index: str, code_hash: str) -> bool:
    """Delete the code `check_code` found right; False when another request took it first."""
    done = conn.execute(
        delete(member_otps).where(
            member_otps.c.phone_index == phone_index, member_otps.c.code_hash == code_hash
        )
    )
    return int(done.rowcount or 0) == 1


def reserve_sign_in_try(
    conn: Connection, *, address: str, limit: int, now_ms: int
) -> tuple[int, int]:
    """Count a sign-in answer from `address` BEFORE its code is checked (as HQ's login
    limiter does): (the try's id for `forgive_sign_in_try`, 0), or (0, seconds to wait)
    when the address has had `limit` wrong answers this hour and nothing is counted."""
    _lock(conn, _SIGN_IN_ADDRESS, address)
    failures = member_sign_in_failures
    conn.execute(delete(failures).where(failures.c.failed_ms <= now_ms - HOUR_MS))
    count, oldest = conn.execute(
        select(func.count(), func.min(failures.c.failed_ms)).where(
            failures.c.address == address, failures.c.failed_ms > now_ms - HOUR_MS
        )
    ).one()
    if int(count) >= limit:
        return 0, retry_after_s(int(oldest), now_ms)
    row = conn.execute(
        insert(failures).values(address=address, failed_ms=now_ms).returning(failures.c.id)
    ).scalar_one()
    return int(row), 0


def forgive_sign_in_try(conn: Connection, try_id: int) -> None:
    """Give back a counted try whose answer was no wrong code (right, or no live code)."""
    conn.execute(delete(member_sign_in_failures).where(member_sign_in_failures.c.id == try_id))
