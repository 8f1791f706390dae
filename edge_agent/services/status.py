"""One look at the station: store, drivers, sync backlog, rules, last cloud contact."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cloud_sync.loyalty.ruleset import ruleset_in_force

from ..store.members import count_members
from ..store.meta import get_meta
from ..store.outbox import outbox_backlog
from ..store.sales import count_sales
from .station import Station

__all__ = ["station_status"]


def station_status(station: Station) -> dict[str, Any]:
    now = station.now()
    with station.store.read() as tx:
        pending, oldest = outbox_backlog(tx)
        ruleset = ruleset_in_force(station.rulesets(tx), now)
        members = count_members(tx)
        sales = count_sales(tx)
        last_contact = get_meta(tx, "last_cloud_contact")
        epoch = int(get_meta(tx, "epoch") or 1)
    oldest_age = (
        None if oldest is None else int((now - datetime.fromisoformat(oldest)).total_seconds())
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
            "last_contact": last_contact,
        },
        "rules": None
        if ruleset is None
        else {
            "version": ruleset.version,
            "name": ruleset.name,
            "effective_from": ruleset.effective_from.isoformat(),
        },
    }
