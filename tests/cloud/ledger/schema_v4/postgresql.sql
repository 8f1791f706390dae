-- Schema 4's tables that migration 5 re-keys, as loyalpump's schema 4 (commit 61c3e3c) created
-- them on postgresql (SQLAlchemy's DDL), for tests/cloud/ledger/test_migration_5.py.
CREATE TABLE events (
	id BIGSERIAL NOT NULL, 
	event_id TEXT NOT NULL, 
	station_id TEXT NOT NULL, 
	epoch BIGINT NOT NULL, 
	seq BIGINT NOT NULL, 
	kind TEXT NOT NULL, 
	payload_hash TEXT NOT NULL, 
	status TEXT NOT NULL, 
	reason TEXT, 
	received_at TEXT NOT NULL, 
	body TEXT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (station_id, epoch, seq), 
	UNIQUE (event_id)
);

CREATE INDEX ix_events_status ON events (status, id);

CREATE TABLE members (
	member_id TEXT NOT NULL, 
	phone_index TEXT, 
	phone_sealed TEXT, 
	phone_masked TEXT NOT NULL, 
	name_sealed TEXT, 
	key_id TEXT NOT NULL, 
	registered_at TEXT NOT NULL, 
	registered_station TEXT, 
	consent_at TEXT, 
	consent_channel TEXT, 
	tier TEXT, 
	status TEXT NOT NULL, 
	merged_into TEXT, 
	overdraft BIGINT NOT NULL, 
	denied BOOLEAN NOT NULL, 
	event_id TEXT, 
	marketing_at TEXT, 
	PRIMARY KEY (member_id)
);

CREATE INDEX ix_members_merged_into ON members (merged_into);

CREATE UNIQUE INDEX ux_members_active_phone ON members (phone_index) WHERE status = 'active';

CREATE TABLE plates (
	plate_index TEXT NOT NULL, 
	member_id TEXT NOT NULL, 
	plate_sealed TEXT NOT NULL, 
	attached_at TEXT NOT NULL, 
	PRIMARY KEY (plate_index), 
	FOREIGN KEY(member_id) REFERENCES members (member_id)
);

CREATE INDEX ix_plates_member ON plates (member_id);

CREATE TABLE sales (
	sale_id TEXT NOT NULL, 
	station_id TEXT NOT NULL, 
	event_id TEXT NOT NULL, 
	member_id TEXT, 
	grade TEXT NOT NULL, 
	litres TEXT NOT NULL, 
	amount TEXT NOT NULL, 
	ended_at TEXT NOT NULL, 
	points BIGINT NOT NULL, 
	tier TEXT, 
	ruleset_version BIGINT, 
	recomputed BIGINT, 
	status TEXT NOT NULL, 
	source TEXT, 
	source_key TEXT, 
	fuelling_point BIGINT, 
	nozzle BIGINT, 
	PRIMARY KEY (sale_id), 
	FOREIGN KEY(member_id) REFERENCES members (member_id)
);

CREATE INDEX ix_sales_differing ON sales (station_id) WHERE recomputed IS NOT NULL AND points <> recomputed AND member_id IS NOT NULL AND status <> 'reversed';

CREATE INDEX ix_sales_ended ON sales (ended_at, sale_id);

CREATE INDEX ix_sales_member ON sales (member_id, ended_at);

CREATE INDEX ix_sales_station_end ON sales (station_id, ended_at);

CREATE INDEX ix_sales_variance ON sales (station_id, ruleset_version);

CREATE TABLE lots (
	lot_id TEXT NOT NULL, 
	member_id TEXT NOT NULL, 
	points BIGINT NOT NULL, 
	remaining BIGINT NOT NULL, 
	expired BIGINT NOT NULL, 
	repaid BIGINT NOT NULL, 
	expires_at TEXT, 
	expires_ms BIGINT, 
	earned_ms BIGINT NOT NULL, 
	source TEXT NOT NULL, 
	sale_id TEXT, 
	journal_id TEXT NOT NULL, 
	PRIMARY KEY (lot_id), 
	FOREIGN KEY(member_id) REFERENCES members (member_id)
);

CREATE INDEX ix_lots_expiring ON lots (expires_ms) WHERE remaining > 0;

CREATE INDEX ix_lots_member ON lots (member_id);

CREATE INDEX ix_lots_sale ON lots (sale_id);

CREATE TABLE journals (
	journal_id TEXT NOT NULL, 
	kind TEXT NOT NULL, 
	event_id TEXT, 
	station_id TEXT, 
	member_id TEXT, 
	at TEXT NOT NULL, 
	booked_at TEXT NOT NULL, 
	PRIMARY KEY (journal_id)
);

CREATE TABLE lines (
	line_id BIGSERIAL NOT NULL, 
	journal_id TEXT NOT NULL, 
	account TEXT NOT NULL, 
	points BIGINT NOT NULL, 
	PRIMARY KEY (line_id), 
	FOREIGN KEY(journal_id) REFERENCES journals (journal_id)
);

CREATE TABLE redemptions (
	station_id TEXT NOT NULL, 
	redemption_id TEXT NOT NULL, 
	member_id TEXT NOT NULL, 
	points BIGINT NOT NULL, 
	value_fen BIGINT NOT NULL, 
	allowance_id TEXT, 
	shortfall BIGINT NOT NULL, 
	at TEXT NOT NULL, 
	event_id TEXT NOT NULL, 
	member_sent TEXT, 
	flag TEXT, 
	PRIMARY KEY (station_id, redemption_id)
);

CREATE INDEX ix_redemptions_allowance ON redemptions (allowance_id);

CREATE INDEX ix_redemptions_member ON redemptions (member_id, at);

CREATE TABLE invoice_requests (
	request_id TEXT NOT NULL, 
	sale_id TEXT NOT NULL, 
	member_id TEXT NOT NULL, 
	station_id TEXT NOT NULL, 
	buyer_kind TEXT NOT NULL, 
	buyer_name_sealed TEXT NOT NULL, 
	tax_id_sealed TEXT, 
	email_sealed TEXT NOT NULL, 
	amount_fen BIGINT NOT NULL, 
	lines TEXT NOT NULL, 
	status TEXT NOT NULL, 
	requested_at TEXT NOT NULL, 
	requested_ms BIGINT NOT NULL, 
	filed_at TEXT, 
	decided_at TEXT, 
	decided_by TEXT, 
	reason TEXT, 
	invoice_no TEXT, 
	PRIMARY KEY (request_id)
);

CREATE INDEX ix_invoice_requests_member ON invoice_requests (member_id, requested_ms);

CREATE INDEX ix_invoice_requests_sale ON invoice_requests (sale_id);

CREATE INDEX ix_invoice_requests_status ON invoice_requests (status, requested_ms);

CREATE UNIQUE INDEX ux_invoice_requests_live_sale ON invoice_requests (sale_id) WHERE status <> 'rejected';

CREATE TABLE feedback (
	feedback_id BIGSERIAL NOT NULL, 
	member_id TEXT NOT NULL, 
	station_id TEXT, 
	sale_id TEXT, 
	rating INTEGER NOT NULL, 
	comment TEXT NOT NULL, 
	at TEXT NOT NULL, 
	at_ms BIGINT NOT NULL, 
	handled_at TEXT, 
	handled_by TEXT, 
	handling TEXT, 
	PRIMARY KEY (feedback_id), 
	CONSTRAINT ux_feedback_member_sale UNIQUE (member_id, sale_id)
);

CREATE INDEX ix_feedback_member ON feedback (member_id, at_ms);

CREATE INDEX ix_feedback_station ON feedback (station_id, at_ms);

CREATE TABLE member_plate_adds (
	id BIGSERIAL NOT NULL, 
	member_id TEXT NOT NULL, 
	at_ms BIGINT NOT NULL, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_member_plate_adds_at ON member_plate_adds (at_ms);

CREATE INDEX ix_member_plate_adds_member ON member_plate_adds (member_id, at_ms);
