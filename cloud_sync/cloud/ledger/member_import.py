"""Importing an operator's member sheet: all rows in one transaction, or none.

Each row becomes a member registered at HQ (no station, consent channel "import") with
phone, name and plates sealed under the chain's keys exactly as a station seals them, and
its opening balance as an HQ adjustment lot, booked through the ledger's own postings.
The changes feed then tells every station. Phones and plates already held by a member are
bad rows, like any other fault: one bad row and nothing is written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from cloud_sync.core.identity import mask_phone
from cloud_sync.core.privacy import MemberKeys, blind_index, encrypt_field
from cloud_sync.core.ruleset import points_expire_at

from .audit import record_audit
from .book import Book, Member
from .changes import append_changes
from .database import Database, bulk_insert
from .member_sheet import ParsedSheet, SheetRow
from .postings import ADJUSTMENTS, Booking, Credit, credit
from .rulesets import RuleBook, RuleLookup
from .schema import member_phones, plates

__all__ = ["ImportResult", "apply_import", "check_against_ledger", "new_member_id"]

_CHUNK = 500
_BATCH = 5_000


def new_member_id(now_ms: int | None = None) -> str:
    """A UUID version 7, time-ordered like the ids stations give their members."""
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62 | (rand & ((1 << 62) - 1))
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True)
class ImportResult:
    rows: int
    imported: int
    opening_points: int
    problems: list[str]
    dry_run: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "imported": self.imported,
            "opening_points": self.opening_points,
            "problems": self.problems,
            "dry_run": self.dry_run,
        }


def _existing(conn: Connection, column: Any, wanted: Sequence[str], *extra: Any) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(wanted), _CHUNK):
        chunk = list(wanted[start : start + _CHUNK])
        found.update(conn.execute(select(column).where(column.in_(chunk), *extra)).scalars())
    return found


Indexes = dict[int, tuple[str, list[str]]]  # sheet row -> (phone index, plate indexes)


def check_against_ledger(conn: Connection, keys: MemberKeys, sheet: ParsedSheet) -> Indexes:
    """Move rows whose phone or plate a member already holds to the bad rows; answer the
    blind indexes of the rows kept (computed once: they are most of an import's hashing)."""
    phone_idx = {row.row: blind_index(keys, "phone", row.phone) for row in sheet.rows}
    plate_idx = {
        row.row: [blind_index(keys, "plate", plate) for plate in row.plates] for row in sheet.rows
    }
    # Active members only (member_phones holds their phones); a merged id's phone is its
    # survivor's.
    taken_phones = _existing(conn, member_phones.c.phone_index, list(phone_idx.values()))
    taken_plates = _existing(
        conn, plates.c.plate_index, [i for idx in plate_idx.values() for i in idx]
    )
    kept: list[SheetRow] = []
    for row in sheet.rows:
        if phone_idx[row.row] in taken_phones:
            sheet.bad.append((row.row, "the phone belongs to a member already"))
        elif any(i in taken_plates for i in plate_idx[row.row]):
            sheet.bad.append((row.row, "a plate belongs to a member already"))
        else:
            kept.append(row)
    sheet.rows = kept
    return {row.row: (phone_idx[row.row], plate_idx[row.row]) for row in kept}


def _book_batch(
    conn: Connection,
    keys: MemberKeys,
    rules: RuleLookup,
    batch: Sequence[SheetRow],
    indexes: Indexes,
    now: datetime,
) -> list[str]:
    book = Book(conn, now, lock=False)  # new ids: nobody else holds these rows
    at = now.isoformat()
    ruleset = rules.in_force(now)
    expires = None if ruleset is None else points_expire_at(ruleset, now)
    booking = Booking(at=now, event_id=None, station_id=None)
    plate_rows: list[dict[str, Any]] = []
    ids: list[str] = []
    for row in batch:
        phone_index, plate_indexes = indexes[row.row]
        member = Member(
            member_id=new_member_id(),
            phone_index=phone_index,
            phone_sealed=encrypt_field(keys, "phone", row.phone),
            phone_masked=mask_phone(row.phone),
            name_sealed=None if row.name is None else encrypt_field(keys, "name", row.name),
            key_id=keys.key_id,
            registered_at=at,
            registered_station=None,
            consent_at=at,
            consent_channel="import",
            tier=None,
            status="active",
            merged_into=None,
            overdraft=0,
            denied=False,
            event_id=None,
        )
        book.add_member(member)
        book.touch(member)
        ids.append(member.member_id)
        plate_rows += [
            {
                "plate_index": index,
                "member_id": member.member_id,
                "plate_sealed": encrypt_field(keys, "plate", plate),
                "attached_at": at,
            }
            for plate, index in zip(row.plates, plate_indexes, strict=True)
        ]
        if row.opening_points:
            credit(
                book,
                member,
                [Credit(row.opening_points, expires)],
                kind="adjust",
                counter=ADJUSTMENTS,
                booking=booking,
            )
    book.flush()
    bulk_insert(conn, plates, plate_rows)
    return ids


def apply_import(
    db: Database,
    keys: MemberKeys,
    rules: RuleBook,
    sheet: ParsedSheet,
    *,
    actor: str,
    filename: str,
    now: datetime,
    dry_run: bool,
) -> ImportResult:
    """Check the sheet against the ledger; then, when every row is good, write them all."""

    def work(conn: Connection) -> ImportResult:
        total = len(sheet.rows) + len(sheet.bad)
        indexes = check_against_ledger(conn, keys, sheet)
        opening = sum(row.opening_points for row in sheet.rows)
        if sheet.bad or dry_run:
            return ImportResult(total, 0, opening, sheet.problems, dry_run)
        lookup = RuleLookup(rules, conn)
        touched: list[str] = []
        for start in range(0, len(sheet.rows), _BATCH):
            batch = sheet.rows[start : start + _BATCH]
            touched += _book_batch(conn, keys, lookup, batch, indexes, now)
        record_audit(
            conn,
            actor=actor,
            action="member.import",
            target=None,
            at=now,
            after={"file": filename[:120], "members": len(touched), "opening_points": opening},
        )
        append_changes(db, conn, [("member", m) for m in touched], now)
        return ImportResult(total, len(touched), opening, [], False)

    if dry_run:
        return db.read(work)
    return db.transact(work)
