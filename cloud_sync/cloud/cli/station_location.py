"""`loyalpump cloud station locate`: where a station is, for the member app's station finder.

The same ledger function as the console's `PUT /api/v1/hq/stations/{id}/location`, on the
database directly, audited as `cli`. Degrees are parsed exactly from the text typed (at most
six decimals); anything else is exit 2 with one line.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cloud_sync.core.output import emit

from .commands import (
    ConfigOption,
    DatabaseOption,
    JsonOption,
    _ledger,
    _now,
    _refusals,
    station_app,
)

__all__ = ["station_locate"]


@station_app.command("locate")
def station_locate(
    config: ConfigOption,
    station_id: Annotated[str, typer.Option("--id", help="Station id.")],
    lat: Annotated[str, typer.Option("--lat", help="Latitude in decimal degrees, e.g. 31.2304.")],
    lng: Annotated[str, typer.Option("--lng", help="Longitude in decimal degrees, e.g. 121.4737.")],
    address: Annotated[
        str | None, typer.Option("--address", help="The address members see (kept if absent).")
    ] = None,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set a station's coordinates (and address) for the member app; audited as "cli"."""
    from cloud_sync.cloud.ledger.station_locations import (  # noqa: PLC0415 - lazy
        parse_degrees,
        set_station_location,
    )

    now = _now()
    with _refusals():
        lat_e6 = parse_degrees(lat, axis="lat")
        lng_e6 = parse_degrees(lng, axis="lng")
        with _ledger(config, database_url) as (_, ledger):
            done = ledger.db.transact(
                lambda conn: set_station_location(
                    conn,
                    station_id,
                    lat_e6=lat_e6,
                    lng_e6=lng_e6,
                    address=address,
                    actor="cli",
                    now=now,
                )
            )
    emit(
        done,
        as_json=as_json,
        text=f"station {station_id}: at {lat.strip()}, {lng.strip()}"
        + (f" ({done['address']})" if done.get("address") else ""),
    )
