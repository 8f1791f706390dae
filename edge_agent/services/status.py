"""One look at the station: store, drivers, sync backlog, rules, last cloud contact."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cloud_sync.core.ruleset import ruleset_in_force

from ..store.members import count_members
from ..store.meta import get_meta
from ..store.outbox import outbox_backlog, redeemed_under_allowance
from ..store.sales import count_sales
from ..store.sync import get_allowance, get_sync_state, open_disagreements
from .station import Station

__all__ = ["station_status"]


def station_status(station: Station) -> dict[str, Any]:
    now = station.now()
    with station.store.read() as tx:
        pending, oldest = outbox_backlog(tx)
        ruleset = ruleset_in_force(station.rulesets(tx), now)
        members = count_members(tx)
        sales = count_sales(tx)
        sync = get_sync_state(tx)
        allowance = get_allowance(tx)
        used = 0 if allowance is None else redeemed_under_allowance(tx, allowance.allowance_id)
        epoch = int(get_meta(tx, "epoch") or 1)
        disagreements = open_disagreements(tx, limit=1000)
    oldest_age = (
        None if oldest is None else int((now - datetime.fromisoformat(oldest)).total_seconds())
    )
    allowance_view = (
        None
        if allowance is None
        else {
            "allowance_id": allowance.allowance_id,
            "points": allowance.points,
            "remaining": max(0, allowance.points - used),
            "per_member_cap": allowance.per_member_cap,
            "expires_at": allowance.expires_at,
            "expired": datetime.fromisoformat(allowance.expires_at) <= now,
            "max_snapshot_age_s": allowance.max_snapshot_age_s,
        }
    )
    return {
        "station_id": station.station_id,
        "store": {
            "path": str(station.store.path),
            "schema_version": station.store.schema_version,
            "epoch": epoch,
            "members": members,
            "sales": sales,
        },
        "drivers": [
            {
                "kind": driver.kind,
                "link": getattr(driver, "port", None)
                if driver.kind == "dart"
                else f"{getattr(driver, 'host', '')}:{driver.port}",
                "state": "configured",
            }
            for driver in station.settings.drivers
        ],
        "sync": {
            "backlog": pending,
            "oldest_pending_age_s": oldest_age,
            "cloud_url": station.settings.cloud.url or None,
            "last_contact": sync.last_contact,
            "cursor": sync.cursor,
            "enrolled": sync.enrolled,
            "chain_key_id": sync.chain_key_id,
            "alert": None
            if not sync.alert_code
            else {"code": sync.alert_code, "detail": sync.alert_detail, "at": sync.alert_at},
            "rules_refused": {
                "count": sync.rules_refused,
                "last_reason": sync.rules_refused_reason,
            },
            "allowance": allowance_view,
            "offline_redemption": sync.offline_redemption,
            # Where the cloud's ledger differs from ours (`edge verify` lists them all).
            "cloud_disagreements": {
                "open": len(disagreements),
                "latest": [
                    {
                        "event_id": d.event_id,
                        "kind": d.kind,
                        "status": d.status,
                        "reason": d.reason,
                        "noted_at": d.noted_at,
                    }
                    for d in disagreements[-5:]
                ],
            },
        },
        "rules": None
        if ruleset is None
        else {
            "version": ruleset.version,
            "name": ruleset.name,
            "effective_from": ruleset.effective_from.isoformat(),
        },
    }
