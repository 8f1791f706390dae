"""Where stations are: HQ sets a station's address and coordinates; members find the
stations nearest to them.

Coordinates are kept in millionths of a degree (`lat_e6`, `lng_e6`, about 0.1 m), parsed
exactly from the decimal text HQ types. The finder reads a band of latitude around the
member (`ix_stations_lat`), widening it until the band holds enough stations closer than
the band's edge: every station outside a band of ±d degrees is at least d degrees of arc
away, so the nearest ones found inside it are the nearest of all.
"""

from __future__ import annotations

import heapq
import math
import unicodedata
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, select, update

from .audit import record_audit
from .errors import LedgerError
from .schema import stations

__all__ = [
    "ADDRESS_MAX",
    "MAX_NEARBY",
    "distance_m",
    "nearby_stations",
    "parse_degrees",
    "set_station_location",
]

ADDRESS_MAX = 200
MAX_NEARBY = 50
_EARTH_RADIUS_M = 6_371_008.8  # the mean radius (IUGG)
_MICRO = Decimal("0.000001")
_BANDS_DEG = (0.25, 1.0, 4.0, 16.0, 64.0, 180.0)


def parse_degrees(text: str, *, axis: str, places: int = 6, code: str = "station.location") -> int:
    """Decimal degrees (`31.2304`, `-0.5`) as millionths; `axis` is "lat" or "lng".

    At most `places` decimals (HQ's input: 6, exact; a phone's fix may carry more and is
    rounded to the millionth), within ±90 (lat) or ±180 (lng)."""
    limit = 90 if axis == "lat" else 180
    problem = LedgerError(
        code, f"{axis} is decimal degrees between -{limit} and {limit}, at most {places} decimals"
    )
    cleaned = text.strip()
    if not cleaned or len(cleaned) > 24:
        raise problem
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise problem from None
    exponent = value.as_tuple().exponent
    if not value.is_finite() or not isinstance(exponent, int) or -exponent > places:
        raise problem
    if abs(value) > limit:
        raise problem
    return int(value.quantize(_MICRO) * 1_000_000)


def _clean_address(address: str) -> str:
    cleaned = " ".join(address.split())
    if (
        not cleaned
        or len(cleaned) > ADDRESS_MAX
        or any(unicodedata.category(ch).startswith("C") for ch in cleaned)
    ):
        raise LedgerError(
            "station.address",
            f"an address is 1 to {ADDRESS_MAX} characters, without control characters",
        )
    return cleaned


def set_station_location(
    conn: Connection,
    station_id: str,
    *,
    lat_e6: int,
    lng_e6: int,
    address: str | None,
    actor: str,
    now: datetime,
) -> dict[str, Any]:
    """Set the station's coordinates (and address, when given; kept otherwise); audited."""
    cleaned = None if address is None else _clean_address(address)
    row = conn.execute(
        select(stations.c.address, stations.c.lat_e6, stations.c.lng_e6).where(
            stations.c.station_id == station_id
        )
    ).first()
    if row is None:
        raise LedgerError("station.unknown", f"no station {station_id}")
    values: dict[str, Any] = {"lat_e6": lat_e6, "lng_e6": lng_e6}
    if cleaned is not None:
        values["address"] = cleaned
    conn.execute(update(stations).where(stations.c.station_id == station_id).values(**values))
    before = {"address": row.address, "lat_e6": row.lat_e6, "lng_e6": row.lng_e6}
    after = {**before, **values}
    record_audit(
        conn,
        actor=actor,
        action="station.locate",
        target=station_id,
        at=now,
        before=before,
        after=after,
    )
    return {"station_id": station_id, **after}


def distance_m(lat1_e6: int, lng1_e6: int, lat2_e6: int, lng2_e6: int) -> int:
    """Great-circle distance in whole metres (haversine on the mean Earth radius)."""
    phi1, phi2 = math.radians(lat1_e6 / 1e6), math.radians(lat2_e6 / 1e6)
    dphi = phi2 - phi1
    dlmb = math.radians((lng2_e6 - lng1_e6) / 1e6)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return round(2 * _EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h))))


def _shown(row: Any, distance: int | None) -> dict[str, Any]:
    located = row.lat_e6 is not None and row.lng_e6 is not None
    return {
        "station_id": row.station_id,
        "name": row.name,
        "address": row.address,
        "lat": None if not located else str(Decimal(int(row.lat_e6)) * _MICRO),
        "lng": None if not located else str(Decimal(int(row.lng_e6)) * _MICRO),
        "distance_m": distance,
    }


def _columns() -> Any:
    s = stations.c
    return select(s.station_id, s.name, s.address, s.lat_e6, s.lng_e6).where(s.revoked_at.is_(None))


def _unlocated(conn: Connection, limit: int) -> list[dict[str, Any]]:
    stmt = _columns().where(stations.c.lat_e6.is_(None) | stations.c.lng_e6.is_(None))
    return [
        _shown(row, None) for row in conn.execute(stmt.order_by(stations.c.station_id).limit(limit))
    ]


def nearby_stations(
    conn: Connection, lat_e6: int | None, lng_e6: int | None, limit: int
) -> list[dict[str, Any]]:
    """Stations not revoked, nearest first from the point; without a point (or beyond the
    located ones) by id; stations without coordinates after every located one."""
    limit = max(1, min(limit, MAX_NEARBY))
    if lat_e6 is None or lng_e6 is None:
        located = _columns().where(stations.c.lat_e6.is_not(None), stations.c.lng_e6.is_not(None))
        rows = conn.execute(located.order_by(stations.c.station_id).limit(limit)).all()
        shown = [_shown(row, None) for row in rows]
        return shown + _unlocated(conn, limit - len(shown)) if len(shown) < limit else shown
    found: list[tuple[int, str, Any]] = []
    for band in _BANDS_DEG:
        width = round(band * 1_000_000)
        stmt = _columns().where(
            stations.c.lat_e6.between(lat_e6 - width, lat_e6 + width),
            stations.c.lng_e6.is_not(None),
        )
        candidates = [
            (distance_m(lat_e6, lng_e6, int(row.lat_e6), int(row.lng_e6)), row.station_id, row)
            for row in conn.execute(stmt)
        ]
        edge = math.radians(band) * _EARTH_RADIUS_M
        found = heapq.nsmallest(limit, candidates, key=lambda item: (item[0], item[1]))
        if band >= 180.0 or (len(found) == limit and found[-1][0] <= edge):
            break
    shown = [_shown(row, distance) for distance, _, row in found]
    if len(shown) < limit:
        shown += _unlocated(conn, limit - len(shown))
    return shown
