"""The cloud ledger's tables (SQLAlchemy Core), one definition for SQLite and PostgreSQL.

Times are stored twice where the ledger compares them: the ISO text as given (with its
offset, for people and for the wire) and UTC epoch milliseconds (for ordering and expiry),
so no backend's date-time quirks ever decide whether a lot is live.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    event,
    text,
)

__all__ = [
    "V1_TABLES",
    "V2_TABLES",
    "V3_TABLES",
    "V5_TABLES",
    "V6_TABLES",
    "adjustments",
    "agg_active_day",
    "agg_members_day",
    "agg_points_day",
    "agg_points_month",
    "agg_sales_day",
    "agg_sales_hour",
    "agg_tier_month",
    "allowances",
    "backtests",
    "changes",
    "counters",
    "event_ids",
    "events",
    "events_archived",
    "high_water",
    "hq_audit",
    "hq_sessions",
    "hq_users",
    "journals",
    "lines",
    "lots",
    "member_activity",
    "member_days",
    "member_phones",
    "members",
    "metadata",
    "plates",
    "redemptions",
    "rfm_snapshots",
    "rule_drafts",
    "rulesets",
    "sales",
    "schema_version",
    "settings",
    "station_flags",
    "station_keys",
    "station_pulls",
    "station_reviews",
    "stations",
    "tier_moves_archived",
]

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants BIGINT for a log.
_SERIAL = BigInteger().with_variant(Integer(), "sqlite")
# Text never has a length: a station-supplied value too long for a column must never turn
# into a database error (and a batch the station retries forever). payload.py bounds them.
_ID = Text
_TIME = Text


def _serial(name: str) -> Column[int]:
    """A log's number inside a composite key (schema 5): PostgreSQL numbers it (identity);
    SQLite cannot number a column of a composite key, so `database.serials` does."""
    return Column(name, _SERIAL, Identity(), nullable=False)


schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))

settings = Table(
    "settings",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

counters = Table(
    "counters",
    metadata,
    Column("name", Text, primary_key=True),
    Column("value", BigInteger, nullable=False),
)

stations = Table(
    "stations",
    metadata,
    Column("station_id", Text, primary_key=True),
    Column("name", Text),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("added_at", _TIME, nullable=False),
    Column("keys_uploaded_at", _TIME),  # first enrolment call (POST /sync/enrol)
    Column("last_push_at", _TIME),
    # Schema 3: when HQ revoked the station's token (its hash is then unusable); history stays.
    Column("revoked_at", _TIME),
    # Schema 4 (schema_app.py): where members find it in their app.
    Column("address", Text),
    Column("lat_e6", BigInteger),
    Column("lng_e6", BigInteger),
)

station_keys = Table(
    "station_keys",
    metadata,
    Column("station_id", Text, ForeignKey("stations.station_id"), nullable=False),
    Column("key_id", _ID, nullable=False),
    Column("sealed", Text, nullable=False),  # the station's keys sealed with the chain's key
    Column("uploaded_at", _TIME, nullable=False),
    PrimaryKeyConstraint("station_id", "key_id"),
)

high_water = Table(
    "high_water",
    metadata,
    Column("station_id", Text, ForeignKey("stations.station_id"), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("high_water", BigInteger, nullable=False),
    PrimaryKeyConstraint("station_id", "epoch"),
)

# Schema 5 (docs/scale.md): every key of a table that grows with the chain names the column
# Citus distributes it by. Events are the station's: (id, station_id) is the key and the
# event id is unique per station; `id` still orders events chain-wide (its own index).
# Schema 6: on PostgreSQL events are partitioned by the month they arrived (partitions.py),
# so the key carries `received_at` and a station's event ids and sequence numbers are
# indexed, not unique: a unique constraint there would hold within one month only. What
# keeps them unique is `event_ids` (claimed first by every push) and the station's
# high-water mark, under the station's lock. SQLite keeps one table and both constraints.
events = Table(
    "events",
    metadata,
    _serial("id"),
    Column("event_id", _ID, nullable=False),
    Column("station_id", Text, nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("kind", Text, nullable=False),
    Column("payload_hash", Text, nullable=False),
    Column("status", Text, nullable=False),  # applied | rejected
    Column("reason", Text),
    Column("received_at", _TIME, nullable=False),
    Column("body", Text, nullable=False),  # the event exactly as pushed (JSON)
    PrimaryKeyConstraint("id", "station_id", "received_at", name="pk_events"),
    UniqueConstraint("station_id", "epoch", "seq", name="ux_events_station_seq").ddl_if(
        dialect="sqlite"
    ),
    UniqueConstraint("station_id", "event_id", name="ux_events_station_event").ddl_if(
        dialect="sqlite"
    ),
    postgresql_partition_by="RANGE (received_at)",
)
Index("ix_events_status", events.c.status, events.c.id)
# A push looks its events up by id (a station reusing another station's id is a conflict).
Index("ix_events_event", events.c.event_id)
Index("ix_events_station_seq", events.c.station_id, events.c.epoch, events.c.seq).ddl_if(
    dialect="postgresql"
)
Index("ix_events_station_event", events.c.station_id, events.c.event_id).ddl_if(
    dialect="postgresql"
)


# Rows whose month has no partition yet land here, so an insert never fails for want of one.
def _default_partition(_table: Table, conn: Connection, **_: object) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("CREATE TABLE events_default PARTITION OF events DEFAULT")


event.listen(events, "after_create", _default_partition)

members = Table(
    "members",
    metadata,
    Column("member_id", _ID, primary_key=True),
    Column("phone_index", Text),
    Column("phone_sealed", Text),
    Column("phone_masked", Text, nullable=False),
    Column("name_sealed", Text),
    Column("key_id", _ID, nullable=False),
    Column("registered_at", _TIME, nullable=False),
    Column("registered_station", Text),
    Column("consent_at", _TIME),
    Column("consent_channel", Text),
    Column("tier", Text),
    Column("status", Text, nullable=False),  # active | merged
    Column("merged_into", _ID),
    Column("overdraft", BigInteger, nullable=False),
    Column("denied", Boolean, nullable=False),
    Column("event_id", _ID),
    Column("marketing_at", _TIME),  # schema 4: marketing consent given (NULL: none)
)
# Schema 5: one active member per phone is `member_phones`' key (a table of its own, as
# Citus cannot keep a unique index without the member id); this one finds merged members.
Index("ix_members_phone", members.c.phone_index)
Index("ix_members_merged_into", members.c.merged_into)


# Plates are found by plate (one owner per plate is the key), so they are distributed by
# it: no foreign key to members since schema 5 (the owner is checked by ledger_problems).
plates = Table(
    "plates",
    metadata,
    Column("plate_index", Text, primary_key=True),
    Column("member_id", _ID, nullable=False),
    Column("plate_sealed", Text, nullable=False),
    Column("attached_at", _TIME, nullable=False),
)
Index("ix_plates_member", plates.c.member_id)

# Every event about a sale names it by its id (another station's undo too), so sales are
# distributed by sale_id; the member is attached later (or never): no foreign key since
# schema 5, ledger_problems checks every sale's member exists.
sales = Table(
    "sales",
    metadata,
    Column("sale_id", _ID, primary_key=True),
    Column("station_id", Text, nullable=False),
    Column("event_id", _ID, nullable=False),
    Column("member_id", _ID),
    Column("grade", Text, nullable=False),
    Column("litres", Text, nullable=False),
    Column("amount", Text, nullable=False),
    Column("ended_at", _TIME, nullable=False),
    Column("points", BigInteger, nullable=False),  # what the station claimed (honoured)
    Column("tier", Text),
    Column("ruleset_version", BigInteger),
    Column("recomputed", BigInteger),  # the cloud's own pricing; NULL: unverified
    Column("status", Text, nullable=False),  # recorded | reversed
    # The dispenser's facts, for HQ's reports (schema 2; NULL in sales a 0.6 cloud stored).
    Column("source", Text),  # dart | ifsf | manual | ...
    Column("source_key", Text),  # the source's stable key of the sale
    Column("fuelling_point", BigInteger),
    Column("nozzle", BigInteger),
)
Index("ix_sales_variance", sales.c.station_id, sales.c.ruleset_version)
# Schema 3, for the HQ stations list (station_admin.py): a station's most recent sale, and
# the few sales whose claimed points differ from the cloud's pricing, without a scan.
Index("ix_sales_station_end", sales.c.station_id, sales.c.ended_at)
# The backtest reads a window of sales in (ended_at, sale_id) order, a batch at a time.
Index("ix_sales_ended", sales.c.ended_at, sales.c.sale_id)
# The member page lists a member's sales at every station, newest first.
Index("ix_sales_member", sales.c.member_id, sales.c.ended_at)
Index(
    "ix_sales_differing",
    sales.c.station_id,
    sqlite_where=text(
        "recomputed IS NOT NULL AND points <> recomputed AND member_id IS NOT NULL "
        "AND status <> 'reversed'"
    ),
    postgresql_where=text(
        "recomputed IS NOT NULL AND points <> recomputed AND member_id IS NOT NULL "
        "AND status <> 'reversed'"
    ),
)

lots = Table(
    "lots",
    metadata,
    Column("lot_id", Text, nullable=False),
    Column("member_id", _ID, ForeignKey("members.member_id"), nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    Column("expired", BigInteger, nullable=False),  # points whose expiry was booked
    # Points of this lot that went to repay the member's overdraft instead (never in
    # `remaining`): a reversal of the sale owes them back as overdraft.
    Column("repaid", BigInteger, nullable=False),
    Column("expires_at", _TIME),
    Column("expires_ms", BigInteger),
    Column("earned_ms", BigInteger, nullable=False),
    Column("source", Text, nullable=False),  # earn | adjust
    Column("sale_id", _ID),
    Column("journal_id", Text, nullable=False),
    PrimaryKeyConstraint("lot_id", "member_id", name="pk_lots"),
)
Index("ix_lots_member", lots.c.member_id)
Index("ix_lots_sale", lots.c.sale_id)
Index(
    "ix_lots_expiring",
    lots.c.expires_ms,
    sqlite_where=text("remaining > 0"),
    postgresql_where=text("remaining > 0"),
)

# Every journal is one member's (the member whose account it moves; a merge's is the
# survivor's), so journals and their lines live with the member: schema 5 made member_id
# part of both keys and gave lines their journal's member.
journals = Table(
    "journals",
    metadata,
    Column("journal_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("event_id", _ID),
    Column("station_id", Text),
    Column("member_id", _ID, nullable=False),
    Column("at", _TIME, nullable=False),  # the fact's own time (the event's)
    Column("booked_at", _TIME, nullable=False),
    PrimaryKeyConstraint("journal_id", "member_id", name="pk_journals"),
)

lines = Table(
    "lines",
    metadata,
    _serial("line_id"),
    Column("journal_id", Text, nullable=False),
    Column("member_id", _ID, nullable=False),
    Column("account", Text, nullable=False),
    Column("points", BigInteger, nullable=False),
    PrimaryKeyConstraint("line_id", "member_id", name="pk_lines"),
    ForeignKeyConstraint(
        ["journal_id", "member_id"],
        ["journals.journal_id", "journals.member_id"],
        name="fk_lines_journal",
    ),
)

# A redemption id is chosen at the station (a cashier may type one): the cloud knows it as
# (station, id), so two stations' "R1" never clash. Migration 2 moved the key from the id
# alone and added `member_sent` (the id the station named, before any merge: the per-member
# cap of an allowance counts by it, as the station did) and `flag` (the review-list code of
# a redemption the station had no authority for; NULL when within its allowance).
redemptions = Table(
    "redemptions",
    metadata,
    Column("station_id", Text, nullable=False),
    Column("redemption_id", _ID, nullable=False),
    Column("member_id", _ID, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("value_fen", BigInteger, nullable=False),
    Column("allowance_id", Text),
    Column("shortfall", BigInteger, nullable=False),  # overdraft this redemption created
    Column("at", _TIME, nullable=False),
    Column("event_id", _ID, nullable=False),
    Column("member_sent", _ID),
    Column("flag", Text),
    # Schema 5: the member is part of the key (Citus); (station, id) stays unique because
    # only that station books its ids, one push at a time (the per-station lock), and the
    # push refuses an id the station used before (redemption.exists).
    PrimaryKeyConstraint("member_id", "station_id", "redemption_id", name="pk_redemptions"),
)
Index("ix_redemptions_station", redemptions.c.station_id, redemptions.c.redemption_id)
Index("ix_redemptions_allowance", redemptions.c.allowance_id)

rulesets = Table(
    "rulesets",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False),
    Column("effective_from", _TIME, nullable=False),
    Column("document", Text, nullable=False),  # the exact text that was signed
    Column("signature", Text, nullable=False),
    Column("signing_key_id", Text, nullable=False),
    Column("published_at", _TIME, nullable=False),
)

# Ids are microseconds of the appending clock (or the last id + 1, whichever is larger), not
# a sequence: a cloud restored from an older backup goes on above every cursor it handed out.
changes = Table(
    "changes",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", Text, nullable=False),  # ruleset | member | deny
    Column("ref", _ID, nullable=False),
    Column("at", _TIME, nullable=False),
)

Index("ix_changes_ref", changes.c.kind, changes.c.ref)

allowances = Table(
    "allowances",
    metadata,
    Column("allowance_id", Text, primary_key=True),
    Column("station_id", Text, ForeignKey("stations.station_id"), nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("per_member_cap", BigInteger, nullable=False),
    Column("max_snapshot_age_s", Integer, nullable=False),
    Column("granted_at", _TIME, nullable=False),
    Column("granted_ms", BigInteger, nullable=False),
    Column("expires_at", _TIME, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
)
Index("ix_allowances_station", allowances.c.station_id, allowances.c.granted_ms)

# What migration 1 creates; a later migration lists its own DDL instead of growing this.
V1_TABLES = tuple(metadata.sorted_tables)

# ---------------------------------------------------------------- migration 2: station trust

# What a station did beyond its authority (docs/sync.md, "Trust"): a redemption outside its
# allowance, an action on another station's sale, points claimed beyond the rules. HQ's
# review list is built from these; HQ resolves them (and so lifts an automatic suspension).
station_flags = Table(
    "station_flags",
    metadata,
    Column("flag_id", _SERIAL, primary_key=True, autoincrement=True),
    Column("station_id", Text, nullable=False),
    Column("event_id", _ID, nullable=False),
    Column("code", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("member_id", _ID),
    Column("points", BigInteger, nullable=False),  # points the flagged event moved (or tried to)
    Column("shortfall", BigInteger, nullable=False),  # overdraft it created beyond any allowance
    Column("suspends", Boolean, nullable=False),  # counts towards an automatic suspension
    Column("flagged_at", _TIME, nullable=False),
    Column("flagged_ms", BigInteger, nullable=False),
    Column("resolved_at", _TIME),
    Column("resolved_by", Text),
)
Index("ix_station_flags_open", station_flags.c.station_id, station_flags.c.flagged_ms)

# Every points.adjusted a station pushed: within the station's bound it is applied at once;
# beyond it, it waits here for HQ (approve books it, decline never does).
adjustments = Table(
    "adjustments",
    metadata,
    Column("event_id", _ID, primary_key=True),
    Column("station_id", Text, nullable=False),
    Column("member_id", _ID, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("expires_at", _TIME),
    Column("at", _TIME, nullable=False),
    Column("reason", Text),
    Column("actor", Text),
    Column("status", Text, nullable=False),  # applied | pending | approved | declined
    Column("received_at", _TIME, nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    Column("decided_at", _TIME),
    Column("decided_by", Text),
    Column("note", Text),
)
Index("ix_adjustments_station", adjustments.c.station_id, adjustments.c.received_ms)
Index("ix_adjustments_status", adjustments.c.status)

# HQ's review of a station: suspended stations may redeem only while the cloud answers
# (their changes feed says offline_redemption = false).
station_reviews = Table(
    "station_reviews",
    metadata,
    Column("station_id", Text, primary_key=True),
    Column("suspended", Boolean, nullable=False),
    Column("reason", Text),
    Column("changed_at", _TIME, nullable=False),
    Column("changed_by", Text, nullable=False),
)

V2_TABLES = (station_flags, adjustments, station_reviews)

# ---------------------------------------------------------------- migration 3: the HQ console

# HQ's people (docs/hq-console.md): a name, a role, an argon2 hash. The admin token stays
# for machines; a person signs in and every change names them.
hq_users = Table(
    "hq_users",
    metadata,
    Column("name", Text, primary_key=True),
    Column("role", Text, nullable=False),  # admin | marketer | auditor
    Column("password_hash", Text, nullable=False),
    Column("created_at", _TIME, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("disabled", Boolean, nullable=False),
)

# Signed-in browsers: the cookie holds a random token, the table its SHA-256 only, so a
# copy of the database signs nobody in. Kept in the database, so any worker answers.
hq_sessions = Table(
    "hq_sessions",
    metadata,
    Column("session_hash", Text, primary_key=True),
    Column("name", Text, ForeignKey("hq_users.name"), nullable=False),
    Column("csrf", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("seen_ms", BigInteger, nullable=False),
)
Index("ix_hq_sessions_name", hq_sessions.c.name)

# Every change HQ makes: who, what, on what, and the state before and after (JSON).
hq_audit = Table(
    "hq_audit",
    metadata,
    Column("audit_id", _SERIAL, primary_key=True, autoincrement=True),
    Column("at", _TIME, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("target", Text),
    Column("before", Text),
    Column("after", Text),
)
Index("ix_hq_audit_at", hq_audit.c.at_ms)

# Rule sets on their way to the stations: drafted by one person, approved by another admin,
# then signed and published (rulesets) by the existing path. `document_hash` is what the
# backtest and the approval name: a draft edited after either asks for them again.
rule_drafts = Table(
    "rule_drafts",
    metadata,
    Column("draft_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("document", Text, nullable=False),
    Column("document_hash", Text, nullable=False),
    Column("status", Text, nullable=False),  # draft | approved | published | withdrawn
    Column("drafted_by", Text, nullable=False),
    Column("drafted_at", _TIME, nullable=False),
    Column("updated_at", _TIME, nullable=False),
    Column("approved_by", Text),
    Column("approved_at", _TIME),
    Column("approved_hash", Text),
    Column("published_version", Integer),
    Column("published_by", Text),
    Column("published_at", _TIME),
)

# A backtest of a draft over a past window, run in the background; `result` is its JSON.
backtests = Table(
    "backtests",
    metadata,
    Column("backtest_id", Text, primary_key=True),
    Column("draft_id", Text, ForeignKey("rule_drafts.draft_id"), nullable=False),
    Column("document_hash", Text, nullable=False),
    Column("window_from", _TIME, nullable=False),
    Column("window_to", _TIME, nullable=False),
    Column("station_id", Text),
    Column("status", Text, nullable=False),  # running | done | failed
    Column("done_sales", BigInteger, nullable=False),
    Column("total_sales", BigInteger, nullable=False),
    Column("started_by", Text, nullable=False),
    Column("started_at", _TIME, nullable=False),
    Column("finished_at", _TIME),
    Column("result", Text),
    Column("error", Text),
)
Index("ix_backtests_draft", backtests.c.draft_id)

# Aggregates kept as events are applied (hq-console.md, "Sizes"): no page reads postings.
# `day` is the fact's date in the chain's time zone; `station_id` is '' for HQ's own rows.
agg_sales_day = Table(
    "agg_sales_day",
    metadata,
    Column("day", Text, nullable=False),
    Column("station_id", Text, nullable=False),
    Column("grade", Text, nullable=False),
    Column("sales", BigInteger, nullable=False),
    Column("member_sales", BigInteger, nullable=False),
    Column("litres_ml", BigInteger, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    PrimaryKeyConstraint("day", "station_id", "grade"),
)

# Points moved per day, station and movement (issued, variance, redeemed, expired,
# adjustments, written_off, merged), signed as they change members' balances.
agg_points_day = Table(
    "agg_points_day",
    metadata,
    Column("day", Text, nullable=False),
    Column("station_id", Text, nullable=False),
    Column("movement", Text, nullable=False),
    Column("points", BigInteger, nullable=False),
    PrimaryKeyConstraint("day", "station_id", "movement"),
)

# Per member: what the member reports (activity, RFM, dormant) need, kept as sales apply.
member_activity = Table(
    "member_activity",
    metadata,
    Column("member_id", _ID, primary_key=True),
    Column("first_sale_ms", BigInteger),
    Column("last_sale_ms", BigInteger),
    Column("sales", BigInteger, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
)
Index("ix_member_activity_last", member_activity.c.last_sale_ms)

# New members per day and station, and distinct buying members per day (chain-wide).
agg_members_day = Table(
    "agg_members_day",
    metadata,
    Column("day", Text, nullable=False),
    Column("station_id", Text, nullable=False),
    Column("registered", BigInteger, nullable=False),
    Column("active", BigInteger, nullable=False),
    PrimaryKeyConstraint("day", "station_id"),
)
member_days = Table(
    "member_days",
    metadata,
    Column("day", Text, nullable=False),
    Column("station_id", Text, nullable=False),
    Column("member_id", _ID, nullable=False),
    PrimaryKeyConstraint("day", "station_id", "member_id"),
)

# What each station has pulled: its last `since` cursor on the changes feed (it holds every
# change up to it). A rule set is pulled once the cursor reaches the change that carried it.
station_pulls = Table(
    "station_pulls",
    metadata,
    Column("station_id", Text, primary_key=True),
    Column("cursor", BigInteger, nullable=False),
    Column("pulled_at", _TIME, nullable=False),
    Column("pulled_ms", BigInteger, nullable=False),
)
# Sales per hour of the chain's day (the peak-hours heat map), distinct buying members per
# day chain-wide (a member at two stations counts once), and the points movements per month
# (the liability roll-forward and the running outstanding read months, not days).
agg_sales_hour = Table(
    "agg_sales_hour",
    metadata,
    Column("day", Text, nullable=False),
    Column("hour", Integer, nullable=False),
    Column("station_id", Text, nullable=False),
    Column("sales", BigInteger, nullable=False),
    Column("litres_ml", BigInteger, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    PrimaryKeyConstraint("day", "hour", "station_id"),
)
agg_active_day = Table(
    "agg_active_day",
    metadata,
    Column("day", Text, primary_key=True),
    Column("active", BigInteger, nullable=False),
)
agg_points_month = Table(
    "agg_points_month",
    metadata,
    Column("month", Text, nullable=False),
    Column("station_id", Text, nullable=False),
    Column("movement", Text, nullable=False),
    Column("points", BigInteger, nullable=False),
    PrimaryKeyConstraint("month", "station_id", "movement"),
)
Index("ix_member_days_member", member_days.c.member_id, member_days.c.day)

# member.tier_changed events applied, per month (chain's zone) and (from, to) tier pair:
# the member report's movements; up or down is read with the rule set's tier order.
agg_tier_month = Table(
    "agg_tier_month",
    metadata,
    Column("month", Text, nullable=False),
    Column("from_tier", Text, nullable=False),
    Column("to_tier", Text, nullable=False),
    Column("changes", BigInteger, nullable=False),
    PrimaryKeyConstraint("month", "from_tier", "to_tier"),
)

# RFM as of the end of a chain day (member_reports.rfm): the segment counts, the R × F grid
# and the monetary scores as JSON, computed once (a job, or the first view of that day) so
# no page view scans the sales; `computed_ms` is the "as of" the page shows.
rfm_snapshots = Table(
    "rfm_snapshots",
    metadata,
    Column("end_day", Text, primary_key=True),
    Column("computed_ms", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
)

V3_TABLES = (
    hq_users,
    hq_sessions,
    hq_audit,
    rule_drafts,
    backtests,
    agg_sales_day,
    agg_points_day,
    member_activity,
    agg_members_day,
    member_days,
    station_pulls,
    agg_sales_hour,
    agg_active_day,
    agg_points_month,
    rfm_snapshots,
    agg_tier_month,
)

# ---------------------------------------------------------------- migration 5: Citus-ready keys

# Schema 5: the active member of each phone (by its blind index). Its primary key makes a
# concurrent second registration fail and be retried as a merge, as the partial unique
# index on members did; book.py keeps it in step with members' status and phone.
member_phones = Table(
    "member_phones",
    metadata,
    Column("phone_index", Text, primary_key=True),
    Column("member_id", _ID, nullable=False),
)

# Schema 5: which station used each event id. Events are keyed by station (Citus keeps no
# chain-wide unique index across shards), so this table, distributed by the id, is what
# makes a second station's push of an id fail (its key) rather than both being stored.
event_ids = Table(
    "event_ids",
    metadata,
    Column("event_id", _ID, primary_key=True),
    Column("station_id", Text, nullable=False),
)

V5_TABLES = (member_phones, event_ids)

# Schema 6: what left the ledger for the archive, per station and epoch (partitions.py): how
# many events and the highest sequence number among them. With the events still stored they
# account for every sequence number up to the high-water mark, and for every `event_ids` row
# without its event (ledger_problems).
events_archived = Table(
    "events_archived",
    metadata,
    Column("station_id", Text, nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("events", BigInteger, nullable=False),
    Column("high_seq", BigInteger, nullable=False),
    Column("archived_at", _TIME, nullable=False),
    PrimaryKeyConstraint("station_id", "epoch"),
)

# The member.tier_changed events that left with their month, counted per quarter hour
# (UTC) and tier pair: HQ's tier movements are derived from the events, and a rebuild (in
# any chain time zone: every zone's offset is whole quarter hours) must still count them.
tier_moves_archived = Table(
    "tier_moves_archived",
    metadata,
    Column("at_utc", Text, nullable=False),  # YYYY-MM-DDTHH:MM, a quarter hour's start
    Column("from_tier", Text, nullable=False),  # '' for none
    Column("to_tier", Text, nullable=False),
    Column("changes", BigInteger, nullable=False),
    PrimaryKeyConstraint("at_utc", "from_tier", "to_tier"),
)

V6_TABLES = (events_archived, tier_moves_archived)
