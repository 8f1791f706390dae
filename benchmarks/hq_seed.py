"""A chain's year in PostgreSQL, written by the database itself: the HQ console benchmark's data.

Members, sales, their earn journals, lines and lots, generated with `generate_series` in a
handful of INSERT … SELECT statements (a Python loop would spend minutes building 40 million
rows). The rows follow the ledger's own model (cloud_sync/cloud/ledger/postings.py): every
sale with a member earned one lot and one balanced `earn` journal; a tenth of the members
redeemed once. The figures are deterministic: sale n always has the same station, grade,
litres, member and time.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

__all__ = ["ChainShape", "seed_chain"]


@dataclass(frozen=True)
class ChainShape:
    members: int = 1_000_000
    sales: int = 10_000_000
    stations: int = 30
    days: int = 365
    end_iso: str = "2026-12-01T00:00:00+08:00"  # the year ends here (Shanghai time)
    ruleset_version: int = 3


_ISO = """to_char(({t}) AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD"T"HH24:MI:SS') || '+08:00'"""


def _statements(shape: ChainShape) -> list[str]:
    start = f"(timestamptz '{shape.end_iso}' - interval '{shape.days} days')"
    step_s = shape.days * 86400 / shape.sales
    sale_at = f"{start} + (n * {step_s:.9f}) * interval '1 second'"
    station = f"'S' || lpad(((n % {shape.stations}) + 1)::text, 3, '0')"
    member = f"'m' || lpad(((n::bigint * 7919) % {shape.members})::text, 8, '0')"
    litres = "((n % 55) + 5)"
    points = f"CASE n % 3 WHEN 2 THEN {litres} / 2 ELSE {litres} END"
    grade = "CASE n % 3 WHEN 0 THEN '92' WHEN 1 THEN '95' ELSE '0' END"
    has_member = "n % 10 < 7"
    registered = f"{start} - interval '30 days' + (n * 0.03) * interval '1 second'"
    return [
        f"""INSERT INTO stations (station_id, name, token_hash, added_at, last_push_at)
            SELECT 'S' || lpad(n::text, 3, '0'), '油站 ' || n, 'bench-' || n,
                   {_ISO.format(t=start)}, {_ISO.format(t=f"timestamptz '{shape.end_iso}'")}
            FROM generate_series(1, {shape.stations}) AS n""",
        f"""INSERT INTO members (member_id, phone_index, phone_masked, key_id, registered_at,
                registered_station, tier, status, overdraft, denied)
            SELECT 'm' || lpad(n::text, 8, '0'), 'pi-' || n,
                   '138****' || lpad((n % 10000)::text, 4, '0'), 'bench',
                   {_ISO.format(t=registered)},
                   'S' || lpad(((n % {shape.stations}) + 1)::text, 3, '0'),
                   CASE WHEN n % 7 = 0 THEN 'gold' WHEN n % 3 = 0 THEN 'silver'
                        ELSE 'standard' END,
                   'active', 0, false
            FROM generate_series(0, {shape.members - 1}) AS n""",
        """INSERT INTO member_phones (phone_index, member_id)
            SELECT phone_index, member_id FROM members WHERE status = 'active'""",
        f"""INSERT INTO sales (sale_id, station_id, event_id, member_id, grade, litres, amount,
                ended_at, points, tier, ruleset_version, recomputed, status, source)
            SELECT 's' || n, {station}, 'e' || n,
                   CASE WHEN {has_member} THEN {member} END,
                   {grade}, {litres} || '.00',
                   (({litres}) * 785 / 100)::text || '.' || lpad((({litres}) * 785 % 100)::text,
                       2, '0'),
                   {_ISO.format(t=sale_at)},
                   CASE WHEN {has_member} THEN {points} ELSE 0 END,
                   CASE WHEN {has_member} THEN 'standard' END,
                   {shape.ruleset_version},
                   CASE WHEN {has_member} THEN {points} END,
                   'recorded', 'dart'
            FROM generate_series(0::bigint, {shape.sales - 1}) AS n""",
        f"""INSERT INTO journals (journal_id, kind, event_id, station_id, member_id, at, booked_at)
            SELECT 'j' || n, 'earn', 'e' || n, {station}, {member},
                   {_ISO.format(t=sale_at)}, {_ISO.format(t=sale_at)}
            FROM generate_series(0::bigint, {shape.sales - 1}) AS n WHERE {has_member}""",
        f"""INSERT INTO lines (journal_id, member_id, account, points)
            SELECT 'j' || n, {member}, 'member:' || {member}, {points}
            FROM generate_series(0::bigint, {shape.sales - 1}) AS n WHERE {has_member}
            UNION ALL
            SELECT 'j' || n, {member}, 'points_issued', -({points})
            FROM generate_series(0::bigint, {shape.sales - 1}) AS n WHERE {has_member}""",
        f"""INSERT INTO lots (lot_id, member_id, points, remaining, expired, repaid, expires_at,
                expires_ms, earned_ms, source, sale_id, journal_id)
            SELECT 'l' || n, {member}, {points}, {points}, 0, 0,
                   {_ISO.format(t=f"{sale_at} + interval '12 months'")},
                   (extract(epoch FROM {sale_at} + interval '12 months') * 1000)::bigint,
                   (extract(epoch FROM {sale_at}) * 1000)::bigint,
                   'earn', 's' || n, 'j' || n
            FROM generate_series(0::bigint, {shape.sales - 1}) AS n WHERE {has_member}""",
    ]


_SEEDED_TABLES = ("members", "sales", "journals", "lines", "lots")


def seed_chain(conn: Connection, shape: ChainShape) -> None:
    """Write the chain into an empty ledger (schema created, rule set published).

    The seeded tables' secondary indexes are dropped first and built again after (with
    their very definitions): kept, they turn 40 million inserts into random B-tree writes
    far beyond the buffer cache (a 10M seed crawled past 15 minutes on a busy machine)."""
    conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
    tables = ", ".join(f"'{t}'" for t in _SEEDED_TABLES)
    indexes = conn.execute(
        text(
            f"""SELECT indexname, indexdef FROM pg_indexes
                WHERE schemaname = current_schema() AND tablename IN ({tables})
                  AND indexname NOT IN (SELECT conname FROM pg_constraint)"""
        )
    ).all()
    for name, _ in indexes:
        conn.exec_driver_sql(f'DROP INDEX "{name}"')
    for statement in _statements(shape):
        conn.execute(text(statement))
    conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '512MB'")
    for _, definition in indexes:
        conn.exec_driver_sql(definition)
    conn.exec_driver_sql("ANALYZE")
