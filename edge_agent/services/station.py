"""The open station: settings, store, member keys and a clock, passed to every service."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from cloud_sync.loyalty.privacy import MemberKeys
from cloud_sync.loyalty.ruleset import RuleSet
from cloud_sync.loyalty.ruleset_parser import parse_ruleset_json

from ..errors import ServiceError
from ..settings import StationSettings
from ..store import Store, Tx
from ..store.keys import load_member_keys, load_or_create_member_keys
from ..store.meta import get_meta, set_meta
from ..store.rulesets import all_rulesets, rulesets_generation

__all__ = ["Clock", "Station", "open_station"]

Clock = Callable[[], datetime]


@dataclass
class Station:
    settings: StationSettings
    store: Store
    keys: MemberKeys
    clock: Clock
    _rules: tuple[tuple[int, int], tuple[RuleSet, ...]] | None = field(default=None, repr=False)

    @property
    def station_id(self) -> str:
        return self.settings.station.id

    @property
    def zone(self) -> ZoneInfo:
        return self.settings.zone

    def now(self) -> datetime:
        """The current time, aware, in the station's time zone."""
        return self.clock().astimezone(self.zone)

    def rulesets(self, tx: Tx) -> tuple[RuleSet, ...]:
        """Every installed rule set, parsed once per installation rather than per sale."""
        generation = rulesets_generation(tx)
        if self._rules is None or self._rules[0] != generation:
            parsed = tuple(parse_ruleset_json(row.document) for row in all_rulesets(tx))
            self._rules = (generation, parsed)
        return self._rules[1]

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Station:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _system_clock() -> datetime:
    return datetime.now(UTC)


def open_station(
    settings: StationSettings, *, clock: Clock | None = None, create: bool = False
) -> Station:
    """Open the station store (creating or migrating it with `create`) and its keys."""
    data_dir = settings.station.data_dir
    store = Store.open(settings.store_path, create=create)
    try:
        with store.write() as tx:
            recorded = get_meta(tx, "station_id")
            if recorded is None:
                if not create:
                    raise ServiceError("store.uninitialised", "store is not initialised")
                set_meta(tx, "station_id", settings.station.id)
                set_meta(tx, "epoch", "1")
            elif recorded != settings.station.id:
                raise ServiceError(
                    "store.station_mismatch",
                    f"store at {settings.store_path} belongs to station {recorded}, "
                    f"config says {settings.station.id}",
                )
        keys = (
            load_or_create_member_keys(data_dir, f"{settings.station.id}-1")
            if create
            else load_member_keys(data_dir)
        )
    except BaseException:
        store.close()
        raise
    return Station(settings=settings, store=store, keys=keys, clock=clock or _system_clock)
