"""Offline redemption: each station's allowance, and HQ's switch.

A station may redeem offline only against an allowance the cloud granted; the cloud grants
a fresh one at a pull when the current one is missing, expired, past half its life or half
used. Every grant is kept, so the chain's total overdraft can be checked against the sum of
all allowances ever granted.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, insert, select, update

from cloud_sync.core.wire import Allowance

from .postings import millis
from .schema import allowances, redemptions, settings

__all__ = [
    "AllowancePolicy",
    "current_allowance",
    "get_offline_redemption",
    "set_offline_redemption",
]

_OFFLINE_KEY = "offline_redemption"


@dataclass(frozen=True)
class AllowancePolicy:
    points: int = 50_000
    per_member_cap: int = 5_000
    lifetime_s: int = 72 * 3600
    max_snapshot_age_s: int = 72 * 3600

    @property
    def offline_grace(self) -> timedelta:
        """The longest a station may legitimately redeem offline after its last pull: an
        allowance's life plus a snapshot's allowed age. A redemption dated before a lot's
        expiry can arrive this long after it, so the cloud books expiry only then."""
        return timedelta(seconds=self.lifetime_s + self.max_snapshot_age_s)


def current_allowance(
    conn: Connection, station_id: str, policy: AllowancePolicy, now: datetime
) -> Allowance:
    """The station's allowance, renewed here when the current one is spent or stale."""
    now_ms = millis(now)
    row = conn.execute(
        select(allowances)
        .where(allowances.c.station_id == station_id)
        .order_by(allowances.c.granted_ms.desc())
        .limit(1)
    ).first()
    renew = row is None
    if row is not None:
        used = conn.execute(
            select(func.coalesce(func.sum(redemptions.c.points), 0)).where(
                redemptions.c.allowance_id == row.allowance_id,
                redemptions.c.station_id == station_id,
            )
        ).scalar_one()
        lifetime = row.expires_ms - row.granted_ms
        renew = (
            now_ms >= row.expires_ms
            or (now_ms - row.granted_ms) * 2 > lifetime
            or (row.points > 0 and int(used) * 2 >= row.points)
        )
    if renew:
        expires = now + timedelta(seconds=policy.lifetime_s)
        values = {
            "allowance_id": str(uuid.uuid4()),
            "station_id": station_id,
            "points": policy.points,
            "per_member_cap": policy.per_member_cap,
            "max_snapshot_age_s": policy.max_snapshot_age_s,
            "granted_at": now.isoformat(),
            "granted_ms": now_ms,
            "expires_at": expires.isoformat(),
            "expires_ms": millis(expires),
        }
        conn.execute(insert(allowances).values(values))
        return Allowance(
            allowance_id=str(values["allowance_id"]),
            points=policy.points,
            per_member_cap=policy.per_member_cap,
            expires_at=expires.isoformat(),
            max_snapshot_age_s=policy.max_snapshot_age_s,
        )
    assert row is not None
    return Allowance(
        allowance_id=row.allowance_id,
        points=row.points,
        per_member_cap=row.per_member_cap,
        expires_at=row.expires_at,
        max_snapshot_age_s=row.max_snapshot_age_s,
    )


def get_offline_redemption(conn: Connection) -> bool:
    value = conn.execute(
        select(settings.c.value).where(settings.c.key == _OFFLINE_KEY)
    ).scalar_one_or_none()
    return value != "off"


def set_offline_redemption(conn: Connection, enabled: bool) -> None:
    value = "on" if enabled else "off"
    done = conn.execute(update(settings).where(settings.c.key == _OFFLINE_KEY).values(value=value))
    if done.rowcount == 0:
        conn.execute(insert(settings).values(key=_OFFLINE_KEY, value=value))
