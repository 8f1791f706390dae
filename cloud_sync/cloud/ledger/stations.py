"""Stations: enrolment, bearer tokens (kept only as SHA-256), uploaded keys, high water.

A token is shown once when it is made; the cloud keeps its hash, so a copied database
cannot call the cloud as a station. Looking a token up by its hash needs no constant-time
comparison: the hash is the key, and the token's entropy makes guessing hopeless.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from cloud_sync.core.privacy import MemberKeys

from .errors import LedgerError
from .keys import seal_station_key, unseal_station_key
from .schema import high_water, station_keys, station_reviews, stations

__all__ = [
    "add_station",
    "enrol_station",
    "is_suspended",
    "list_stations",
    "load_station_keys",
    "lock_station",
    "require_station",
    "rotate_token",
    "station_for_token",
]

_STATION_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def is_suspended(conn: Connection, station_id: str) -> bool:
    """HQ's review has turned this station's offline redemption off."""
    found = conn.execute(
        select(station_reviews.c.suspended).where(station_reviews.c.station_id == station_id)
    ).scalar_one_or_none()
    return bool(found)


def lock_station(conn: Connection, station_id: str) -> None:
    """Take the station's row until commit: one station's pushes (of any epoch) and pulls
    run one after another, so its allowance, its adjustments in 24 hours and its rule
    breaks are counted against everything it did before.

    An UPDATE, not SELECT … FOR UPDATE: a pull reads at REPEATABLE READ, and a row another
    transaction changed since its snapshot makes PostgreSQL refuse the update (40001), so
    the pull runs again on a fresh snapshot instead of granting a second allowance.
    """
    done = conn.execute(
        update(stations)
        .where(stations.c.station_id == station_id)
        .values(name=stations.c.name)  # not the key: foreign keys' checks need not wait
    )
    if done.rowcount == 0:
        raise LedgerError("station.unknown", f"no station {station_id!r} is enrolled")


def require_station(conn: Connection, station_id: str) -> None:
    found = conn.execute(
        select(stations.c.station_id).where(stations.c.station_id == station_id)
    ).first()
    if found is None:
        raise LedgerError("station.unknown", f"no station {station_id!r} is enrolled")


def add_station(conn: Connection, station_id: str, name: str | None, now: datetime) -> str:
    if not _STATION_ID.fullmatch(station_id):
        raise LedgerError("station.invalid", "a station id is 1 to 32 letters, digits, '-' or '_'")
    exists = conn.execute(
        select(stations.c.station_id).where(stations.c.station_id == station_id)
    ).first()
    if exists is not None:
        raise LedgerError("station.exists", f"station {station_id!r} already exists")
    token = secrets.token_urlsafe(32)
    conn.execute(
        insert(stations).values(
            station_id=station_id,
            name=name,
            token_hash=_hash(token),
            added_at=now.isoformat(),
        )
    )
    return token


def rotate_token(conn: Connection, station_id: str) -> str:
    token = secrets.token_urlsafe(32)
    done = conn.execute(
        update(stations)
        .where(stations.c.station_id == station_id)
        .values(token_hash=_hash(token), revoked_at=None)  # a new token reinstates a revoked one
    )
    if done.rowcount != 1:
        raise LedgerError("station.unknown", f"no station {station_id!r} is enrolled")
    return token


def station_for_token(conn: Connection, token: str) -> str | None:
    if not token:
        return None
    row = conn.execute(
        select(stations.c.station_id).where(stations.c.token_hash == _hash(token))
    ).first()
    return None if row is None else str(row.station_id)


def enrol_station(
    conn: Connection,
    chain: MemberKeys,
    station_id: str,
    keys: Sequence[MemberKeys],
    now: datetime,
) -> None:
    """Keep the station's own member keys (sealed with the chain's); safe to call again."""
    require_station(conn, station_id)
    held = load_station_keys(conn, chain, station_id)
    for key in keys:
        if key.key_id == chain.key_id:
            raise LedgerError("keys.conflict", f"key id {key.key_id!r} is the chain's own")
        known = held.get(key.key_id)
        if known is not None:
            if (known.encryption_key, known.index_key) != (key.encryption_key, key.index_key):
                raise LedgerError(
                    "keys.conflict",
                    f"station {station_id} already uploaded other keys under {key.key_id!r}",
                )
            continue
        conn.execute(
            insert(station_keys).values(
                station_id=station_id,
                key_id=key.key_id,
                sealed=seal_station_key(chain, key),
                uploaded_at=now.isoformat(),
            )
        )
        held[key.key_id] = key
    conn.execute(
        update(stations)
        .where(stations.c.station_id == station_id, stations.c.keys_uploaded_at.is_(None))
        .values(keys_uploaded_at=now.isoformat())
    )


def load_station_keys(
    conn: Connection, chain: MemberKeys, station_id: str
) -> dict[str, MemberKeys]:
    rows = conn.execute(
        select(station_keys.c.key_id, station_keys.c.sealed).where(
            station_keys.c.station_id == station_id
        )
    )
    return {row.key_id: unseal_station_key(chain, row.sealed) for row in rows}


def list_stations(conn: Connection) -> list[dict[str, Any]]:
    marks: dict[str, list[dict[str, int]]] = {}
    for row in conn.execute(
        select(high_water.c.station_id, high_water.c.epoch, high_water.c.high_water).order_by(
            high_water.c.station_id, high_water.c.epoch
        )
    ):
        marks.setdefault(row.station_id, []).append(
            {"epoch": int(row.epoch), "high_water": int(row.high_water)}
        )
    counts: dict[str, int] = {}
    for row in conn.execute(select(station_keys.c.station_id)):
        counts[row.station_id] = counts.get(row.station_id, 0) + 1
    result: list[dict[str, Any]] = []
    for row in conn.execute(select(stations).order_by(stations.c.station_id)):
        epochs = marks.get(row.station_id, [])
        latest = epochs[-1] if epochs else None
        result.append(
            {
                "id": row.station_id,
                "station_id": row.station_id,
                "name": row.name,
                "enrolled_at": row.added_at,  # `cloud station add`
                "keys_uploaded_at": row.keys_uploaded_at,  # the station's first contact
                "last_push_at": row.last_push_at,
                "revoked_at": row.revoked_at,
                "epoch": None if latest is None else latest["epoch"],
                "high_water": None if latest is None else latest["high_water"],
                "epochs": epochs,
                "station_keys": counts.get(row.station_id, 0),
                "backlog": None,  # only the station knows what it has not sent yet
            }
        )
    return result
