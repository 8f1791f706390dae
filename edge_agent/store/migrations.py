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

_V2 = """
-- Sync with the cloud ledger: cursor, enrolment (`rekey_to`: chain keys being installed),
-- alerts, refused rule sets, HQ's offline redemption switch.
CREATE TABLE sync_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    cursor INTEGER NOT NULL DEFAULT 0 CHECK (cursor >= 0),
    chain_key_id TEXT,
    rekey_to TEXT,
    signing_key_id TEXT,
    signing_public_key TEXT,
    enrolled_at TEXT,
    last_contact TEXT,
    alert_code TEXT NOT NULL DEFAULT '',
    alert_detail TEXT NOT NULL DEFAULT '',
    alert_at TEXT,
    rules_refused INTEGER NOT NULL DEFAULT 0 CHECK (rules_refused >= 0),
    rules_refused_reason TEXT,
    offline_redemption INTEGER NOT NULL DEFAULT 1 CHECK (offline_redemption IN (0, 1))
) STRICT;
INSERT INTO sync_state (id, last_contact)
VALUES (1, (SELECT value FROM meta WHERE key = 'last_cloud_contact'));

-- Members gain 'merged' (with the survivor's id) and nullable identifiers: a member merged
-- into another gives its phone index up to the survivor, an erased one has none.
-- SQLite cannot alter a CHECK, so the table is rebuilt; foreign keys pointing at it are
-- checked at commit (deferred), once every row is back under the same id.
PRAGMA defer_foreign_keys = ON;
CREATE TABLE members_before_v2 AS SELECT * FROM members;
DROP TABLE members;
CREATE TABLE members (
    member_id TEXT PRIMARY KEY,
    phone_index TEXT UNIQUE,
    phone_sealed TEXT,
    phone_masked TEXT NOT NULL,
    name_sealed TEXT,
    registered_at TEXT NOT NULL,
    registered_at_ms INTEGER NOT NULL,
    registered_station TEXT NOT NULL,
    consent_at TEXT NOT NULL,
    consent_channel TEXT NOT NULL,
    tier TEXT NOT NULL DEFAULT '',
    tier_since TEXT,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'merged', 'erased')),
    merged_into TEXT,
    CHECK ((status = 'merged') = (merged_into IS NOT NULL)),
    CHECK (merged_into IS NULL OR merged_into <> member_id),
    CHECK (status <> 'active' OR (phone_index IS NOT NULL AND phone_sealed IS NOT NULL))
) STRICT;
INSERT INTO members (
    member_id, phone_index, phone_sealed, phone_masked, name_sealed, registered_at,
    registered_at_ms, registered_station, consent_at, consent_channel, tier, tier_since, status
)
SELECT member_id, phone_index, phone_sealed, phone_masked, name_sealed, registered_at,
       registered_at_ms, registered_station, consent_at, consent_channel, tier, tier_since, status
FROM members_before_v2;
DROP TABLE members_before_v2;
CREATE INDEX members_merged_into ON members (merged_into) WHERE merged_into IS NOT NULL;

-- A member's chain-wide balance as the cloud last told it; `as_of_seq` is this station's
-- high-water mark in `as_of_epoch` then, so only later own events are added on top.
CREATE TABLE member_snapshots (
    member_id TEXT PRIMARY KEY REFERENCES members (member_id),
    lots TEXT NOT NULL,
    overdraft INTEGER NOT NULL CHECK (overdraft >= 0),
    as_of_epoch INTEGER NOT NULL CHECK (as_of_epoch >= 1),
    as_of_seq INTEGER NOT NULL CHECK (as_of_seq >= 0),
    received_at TEXT NOT NULL
) STRICT;

CREATE TABLE deny_list (
    member_id TEXT PRIMARY KEY,
    overdraft INTEGER NOT NULL DEFAULT 0 CHECK (overdraft >= 0),
    listed_at TEXT NOT NULL
) STRICT;

-- The one offline redemption allowance in force (replaced when the cloud grants another).
CREATE TABLE allowance (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    allowance_id TEXT NOT NULL,
    points INTEGER NOT NULL CHECK (points >= 0),
    per_member_cap INTEGER NOT NULL CHECK (per_member_cap >= 0),
    expires_at TEXT NOT NULL,
    max_snapshot_age_s INTEGER NOT NULL CHECK (max_snapshot_age_s >= 0),
    received_at TEXT NOT NULL
) STRICT;

-- The part of a debit drawn on the member's points held elsewhere in the chain (known
-- from the snapshot), beyond the lots this station books itself.
CREATE TABLE chain_draws (
    debit_entry_id INTEGER PRIMARY KEY REFERENCES ledger (entry_id),
    member_id TEXT NOT NULL REFERENCES members (member_id),
    points INTEGER NOT NULL CHECK (points > 0)
) STRICT;
CREATE INDEX chain_draws_by_member ON chain_draws (member_id);
CREATE TRIGGER chain_draws_append_only_update BEFORE UPDATE ON chain_draws
BEGIN SELECT RAISE(ABORT, 'chain draws are append-only'); END;
CREATE TRIGGER chain_draws_append_only_delete BEFORE DELETE ON chain_draws
BEGIN SELECT RAISE(ABORT, 'chain draws are append-only'); END;

-- Own events of a member (the chain view adds those the cloud has not seen yet) and the
-- redemptions drawn on an allowance. Outbox rows are never deleted: a cloud restored from
-- an older backup may ask for them again.
CREATE INDEX outbox_by_member ON outbox (json_extract(payload, '$.member_id'), seq);
CREATE INDEX outbox_redeemed_by_allowance ON outbox (json_extract(payload, '$.allowance_id'))
WHERE kind = 'points.redeemed';
CREATE INDEX outbox_pending_by_epoch ON outbox (epoch, seq) WHERE acked_at IS NULL;
CREATE TRIGGER outbox_keeps_events BEFORE DELETE ON outbox
BEGIN SELECT RAISE(ABORT, 'outbox events are kept for good'); END;
"""

# What the cloud did otherwise than this station booked (docs/sync.md, "Trust"): an event
# it rejected, flagged as beyond the station's authority, or held for HQ's approval. `edge
# verify` and `edge status` show them instead of passing; a manager settles one once HQ
# has answered.
_V3 = """
CREATE TABLE cloud_disagreements (
    event_id TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('rejected', 'flagged', 'held')),
    reason TEXT NOT NULL,
    noted_at TEXT NOT NULL,
    settled_at TEXT,
    settled_by TEXT
) STRICT;
CREATE INDEX cloud_disagreements_open ON cloud_disagreements (noted_at) WHERE settled_at IS NULL;
"""

# Undoing an attach at the till (services/detach.py): one row per attach undone, keyed by
# the sale and which attach of it that was (1, 2, ...), so a double click or a retried
# request undoes it once. `earn_entry_id` is the earning entry the undo took back (NULL when
# the attach earned nothing), `debit_entry_id` the entry that took it back. And the
# cashier's search by the last four digits of the phone, among active members only.
_V4 = """
CREATE TABLE detachments (
    sale_id TEXT NOT NULL REFERENCES sales (sale_id),
    attach_no INTEGER NOT NULL CHECK (attach_no >= 1),
    member_id TEXT NOT NULL REFERENCES members (member_id),
    points INTEGER NOT NULL CHECK (points >= 0),
    taken_back INTEGER NOT NULL CHECK (taken_back >= 0 AND taken_back <= points),
    earn_entry_id INTEGER UNIQUE REFERENCES ledger (entry_id),
    debit_entry_id INTEGER UNIQUE REFERENCES ledger (entry_id),
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (sale_id, attach_no)
) STRICT;
CREATE TRIGGER detachments_append_only_update BEFORE UPDATE ON detachments
BEGIN SELECT RAISE(ABORT, 'detachments are append-only'); END;
CREATE TRIGGER detachments_append_only_delete BEFORE DELETE ON detachments
BEGIN SELECT RAISE(ABORT, 'detachments are append-only'); END;
CREATE INDEX members_by_last4 ON members (substr(phone_masked, -4)) WHERE status = 'active';
"""

# Who made a sale's attach, and when (services/detach.py: a cashier may undo only their own,
# soon after): the audit log by subject, so a sales page looks its rows up by index.
_V5 = """
CREATE INDEX audit_by_subject ON audit (subject, action);
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5)
SCHEMA_VERSION = len(MIGRATIONS)
