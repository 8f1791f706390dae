"""Schema 4: the member's own app (sessions, one-time codes and their limits, check-ins,
e-invoice requests, feedback) on the ledger's `metadata`.

Apart from `schema.py` so each part of the ledger's schema stays readable; `database.py`'s
migration 4 creates these tables and adds the columns below to `members` and `stations`.
Times are ISO text like the rest of the ledger, with a `*_ms` twin where a query ranges over
them; money is integer fen.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from .schema import _ID, _SERIAL, _TIME, _serial, metadata, redemptions, stations

__all__ = [
    "V4_INDEXES",
    "V4_MEMBER_COLUMNS",
    "V4_STATION_COLUMNS",
    "V4_TABLES",
    "checkins",
    "feedback",
    "invoice_requests",
    "member_otp_sends",
    "member_otps",
    "member_plate_adds",
    "member_sessions",
    "member_sign_in_failures",
]

# A member's signed-in phone: the SHA-256 of each token, never the token. The access token
# is short-lived; the refresh token replaces both (rotation: the old refresh is then dead).
# `prev_refresh_hash` is the refresh token the last rotation killed and `rotated_ms` when:
# that token presented again means two holders (reuse), which ends the session.
member_sessions = Table(
    "member_sessions",
    metadata,
    Column("session_id", _ID, primary_key=True),
    Column("member_id", _ID, nullable=False),
    Column("access_hash", Text, nullable=False, unique=True),
    Column("access_expires_ms", BigInteger, nullable=False),
    Column("refresh_hash", Text, nullable=False, unique=True),
    Column("refresh_expires_ms", BigInteger, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger),
    Column("prev_refresh_hash", Text),
    Column("rotated_ms", BigInteger),
)
Index("ix_member_sessions_member", member_sessions.c.member_id)
Index("ix_member_sessions_prev_refresh", member_sessions.c.prev_refresh_hash)

# The one live code per phone (by the phone's blind index, so no phone is stored in clear),
# stored as a keyed hash; `tries` counts wrong answers against it.
member_otps = Table(
    "member_otps",
    metadata,
    Column("phone_index", Text, primary_key=True),
    Column("code_hash", Text, nullable=False),
    Column("sent_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("tries", Integer, nullable=False),
)

# Every code sent, for the per-phone (hour and day) and per-address (hour) rate limits; rows
# older than a day are purged.
member_otp_sends = Table(
    "member_otp_sends",
    metadata,
    Column("id", _SERIAL, primary_key=True, autoincrement=True),
    Column("phone_index", Text, nullable=False),
    Column("address", Text, nullable=False),
    Column("sent_ms", BigInteger, nullable=False),
)
Index("ix_member_otp_sends_phone", member_otp_sends.c.phone_index, member_otp_sends.c.sent_ms)
Index("ix_member_otp_sends_address", member_otp_sends.c.address, member_otp_sends.c.sent_ms)
# Each send purges the rows that left the day, whoever they were for.
Index("ix_member_otp_sends_at", member_otp_sends.c.sent_ms)

# Wrong codes answered at sign-in, per client address, for the per-address limit (so one
# address cannot burn many phones' codes); rows older than an hour are purged.
member_sign_in_failures = Table(
    "member_sign_in_failures",
    metadata,
    Column("id", _SERIAL, primary_key=True, autoincrement=True),
    Column("address", Text, nullable=False),
    Column("failed_ms", BigInteger, nullable=False),
)
Index(
    "ix_member_sign_in_failures_address",
    member_sign_in_failures.c.address,
    member_sign_in_failures.c.failed_ms,
)
Index("ix_member_sign_in_failures_at", member_sign_in_failures.c.failed_ms)

# One check-in per member per day in the chain's time zone: the primary key makes the
# second one fail however many arrive at once.
checkins = Table(
    "checkins",
    metadata,
    Column("member_id", _ID, nullable=False),
    Column("day", Text, nullable=False),  # YYYY-MM-DD, chain time zone
    Column("streak", Integer, nullable=False),  # consecutive days including this one
    Column("points", BigInteger, nullable=False),  # the day's points, bonus included
    Column("bonus", BigInteger, nullable=False),
    Column("at", _TIME, nullable=False),
    PrimaryKeyConstraint("member_id", "day"),
)

# 数电发票 requests for the tax-platform adapter HQ connects: one live (not rejected) request
# per sale, so a request the ledger rejected when the sale changed hands (or HQ rejected)
# leaves room for the sale's member to ask again.
invoice_requests = Table(
    "invoice_requests",
    metadata,
    Column("request_id", _ID, nullable=False),
    Column("sale_id", _ID, nullable=False),
    Column("member_id", _ID, nullable=False),
    Column("station_id", Text, nullable=False),
    Column("buyer_kind", Text, nullable=False),  # company | personal
    Column("buyer_name_sealed", Text, nullable=False),
    Column("tax_id_sealed", Text),  # the 18-character USCC; NULL for a person
    Column("email_sealed", Text, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("lines", Text, nullable=False),  # JSON: [{grade, litres, amount_fen}]
    Column("status", Text, nullable=False),  # requested | issued | rejected
    Column("requested_at", _TIME, nullable=False),
    Column("requested_ms", BigInteger, nullable=False),
    Column("filed_at", _TIME),  # handed to the tax platform's adapter; NULL: not yet
    Column("decided_at", _TIME),
    Column("decided_by", Text),
    Column("reason", Text),
    Column("invoice_no", Text),
    PrimaryKeyConstraint("request_id", "member_id", name="pk_invoice_requests"),
)
Index("ix_invoice_requests_member", invoice_requests.c.member_id, invoice_requests.c.requested_ms)
Index("ix_invoice_requests_status", invoice_requests.c.status, invoice_requests.c.requested_ms)
Index("ix_invoice_requests_sale", invoice_requests.c.sale_id)
# Schema 5: unique per (sale, member), so Citus can keep it on the member's shard; one live
# request per sale across members holds as the ledger rejects the requests of a sale that
# changes hands (invoice_sales.py) before its new member can ask.
Index(
    "ux_invoice_requests_live_sale",
    invoice_requests.c.sale_id,
    invoice_requests.c.member_id,
    unique=True,
    sqlite_where=text("status <> 'rejected'"),
    postgresql_where=text("status <> 'rejected'"),
)

feedback = Table(
    "feedback",
    metadata,
    _serial("feedback_id"),
    Column("member_id", _ID, nullable=False),
    Column("station_id", Text),
    Column("sale_id", _ID),
    Column("rating", Integer, nullable=False),  # 1..5
    Column("comment", Text, nullable=False),
    Column("at", _TIME, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("handled_at", _TIME),
    Column("handled_by", Text),
    Column("handling", Text),  # how the station or HQ dealt with it
    UniqueConstraint("member_id", "sale_id", name="ux_feedback_member_sale"),
    PrimaryKeyConstraint("feedback_id", "member_id", name="pk_feedback"),  # schema 5
)
Index("ix_feedback_station", feedback.c.station_id, feedback.c.at_ms)
Index("ix_feedback_member", feedback.c.member_id, feedback.c.at_ms)

# Every plate a member tried to add in the app, for the daily limit (old rows are purged):
# refused attempts count too, so a member cannot probe whose a plate is without end.
member_plate_adds = Table(
    "member_plate_adds",
    metadata,
    _serial("id"),
    Column("member_id", _ID, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("id", "member_id", name="pk_member_plate_adds"),  # schema 5
)
Index("ix_member_plate_adds_member", member_plate_adds.c.member_id, member_plate_adds.c.at_ms)
Index("ix_member_plate_adds_at", member_plate_adds.c.at_ms)

V4_TABLES = (
    member_sessions,
    member_otps,
    member_otp_sends,
    member_sign_in_failures,
    checkins,
    invoice_requests,
    feedback,
    member_plate_adds,
)

# Columns schema 4 adds to tables migration 1 made (a new ledger gets them from schema.py).
V4_MEMBER_COLUMNS = (("marketing_at", "TEXT"),)  # marketing consent given; NULL: none
V4_STATION_COLUMNS = (
    ("address", "TEXT"),
    ("lat_e6", "BIGINT"),  # latitude in millionths of a degree (WGS-84 / GCJ-02 as HQ keys it)
    ("lng_e6", "BIGINT"),
)

# Indexes schema 4 adds to older tables: a member's redemptions newest first (the app's
# history), and stations by latitude (the station finder searches a band around the member).
Index("ix_redemptions_member", redemptions.c.member_id, redemptions.c.at)
Index("ix_stations_lat", stations.c.lat_e6)
V4_INDEXES = tuple(
    index
    for table in (redemptions, stations)
    for index in table.indexes
    if index.name in ("ix_redemptions_member", "ix_stations_lat")
)
