"""Numbered schema migrations for the station store.

Each entry moves the schema from version N-1 to N and runs inside the migrating
transaction. Never edit a released migration: append a new one. `PRAGMA user_version`
records where a store stands, so a newer store is refused by an older program.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

_V1 = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE members (
    member_id TEXT PRIMARY KEY,
    phone_index TEXT NOT NULL UNIQUE,
    phone_sealed TEXT NOT NULL,
    phone_masked TEXT NOT NULL,
    name_sealed TEXT,
    registered_at TEXT NOT NULL,
    registered_at_ms INTEGER NOT NULL,
    registered_station TEXT NOT NULL,
    consent_at TEXT NOT NULL,
    consent_channel TEXT NOT NULL,
    tier TEXT NOT NULL DEFAULT '',
    tier_since TEXT,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'erased'))
) STRICT;

CREATE TABLE plates (
    plate_index TEXT PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES members (member_id),
    plate_sealed TEXT NOT NULL,
    attached_at TEXT NOT NULL
) STRICT;
CREATE INDEX plates_by_member ON plates (member_id);

CREATE TABLE sales (
    sale_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    source_key TEXT NOT NULL UNIQUE,
    pump INTEGER NOT NULL CHECK (pump > 0),
    nozzle INTEGER,
    grade TEXT NOT NULL,
    litres_ml INTEGER NOT NULL CHECK (litres_ml >= 0),
    amount_fen INTEGER NOT NULL CHECK (amount_fen >= 0),
    unit_price_milli INTEGER CHECK (unit_price_milli >= 0),
    started_at TEXT,
    ended_at TEXT NOT NULL,
    ended_at_ms INTEGER NOT NULL,
    member_id TEXT REFERENCES members (member_id),
    points INTEGER NOT NULL DEFAULT 0 CHECK (points >= 0),
    tier TEXT,
    ruleset_version INTEGER,
    receipt TEXT,
    status TEXT NOT NULL DEFAULT 'recorded' CHECK (status IN ('recorded', 'reversed')),
    recorded_at TEXT NOT NULL,
    recorded_by TEXT
) STRICT;
-- Covering index for tier windows: sums of a member's litres, amount and visits by time.
CREATE INDEX sales_by_member_time ON sales (member_id, ended_at_ms, status, litres_ml, amount_fen)
WHERE member_id IS NOT NULL;
CREATE INDEX sales_by_time ON sales (ended_at_ms);

-- The points ledger is append-only: corrections are new entries.
CREATE TABLE ledger (
    entry_id INTEGER PRIMARY KEY AUTOINCREMENT,
    member_id TEXT NOT NULL REFERENCES members (member_id),
    kind TEXT NOT NULL CHECK (kind IN ('earn', 'redeem', 'expire', 'reverse', 'adjust')),
    points INTEGER NOT NULL CHECK (points <> 0),
    sale_id TEXT REFERENCES sales (sale_id),
    op_id TEXT UNIQUE,
    expires_at TEXT,
    expires_at_ms INTEGER,
    value_fen INTEGER,
    booked_at TEXT NOT NULL,
    actor TEXT,
    reason TEXT,
    CHECK ((points > 0) OR (expires_at IS NULL))
) STRICT;
CREATE INDEX ledger_by_member ON ledger (member_id);
CREATE INDEX ledger_by_sale ON ledger (sale_id) WHERE sale_id IS NOT NULL;
CREATE TRIGGER ledger_is_append_only_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'the points ledger is append-only'); END;
CREATE TRIGGER ledger_is_append_only_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'the points ledger is append-only'); END;

-- Which earning lot (a credit entry) each debit entry consumed.
CREATE TABLE lot_debits (
    debit_entry_id INTEGER NOT NULL REFERENCES ledger (entry_id),
    lot_entry_id INTEGER NOT NULL REFERENCES ledger (entry_id),
    points INTEGER NOT NULL CHECK (points > 0),
    PRIMARY KEY (debit_entry_id, lot_entry_id)
) STRICT;
CREATE TRIGGER lot_debits_append_only_update BEFORE UPDATE ON lot_debits
BEGIN SELECT RAISE(ABORT, 'lot debits are append-only'); END;
CREATE TRIGGER lot_debits_append_only_delete BEFORE DELETE ON lot_debits
BEGIN SELECT RAISE(ABORT, 'lot debits are append-only'); END;

-- Cached projections, derived from the ledger; `edge verify` recomputes them.
CREATE TABLE lots (
    lot_entry_id INTEGER PRIMARY KEY REFERENCES ledger (entry_id),
    member_id TEXT NOT NULL REFERENCES members (member_id),
    remaining INTEGER NOT NULL CHECK (remaining >= 0),
    expires_at_ms INTEGER
) STRICT;
CREATE INDEX lots_live_by_member ON lots (member_id, expires_at_ms) WHERE remaining > 0;

CREATE TABLE balances (
    member_id TEXT PRIMARY KEY REFERENCES members (member_id),
    points INTEGER NOT NULL
) STRICT;

-- Events for the cloud: a time-ordered UUID and a dense per-station sequence number,
-- written in the same transaction as the change they describe.
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    epoch INTEGER NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    acked_at TEXT
) STRICT;
CREATE INDEX outbox_pending ON outbox (seq) WHERE acked_at IS NULL;

CREATE TABLE rulesets (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    effective_from TEXT NOT NULL,
    document TEXT NOT NULL,
    signature TEXT,
    source TEXT NOT NULL CHECK (source IN ('local', 'cloud')),
    installed_at TEXT NOT NULL
) STRICT;

CREATE TABLE users (
    user_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('cashier', 'manager')),
    pin_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE audit (
    audit_id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    details TEXT NOT NULL
) STRICT;
CREATE TRIGGER audit_is_append_only_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_is_append_only_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

MIGRATIONS: tuple[str, ...] = (_V1,)
SCHEMA_VERSION = len(MIGRATIONS)
