"""The open station: settings, store, member keyring and a clock, passed to every service."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from cloud_sync.core.privacy import (
    DecryptionError,
    MemberKeys,
    blind_index,
    encrypt_field,
)
from cloud_sync.core.ruleset import RuleSet
from cloud_sync.core.ruleset.parser import parse_ruleset_json

from ..errors import ServiceError
from ..settings import StationSettings
from ..store import Store, Tx
from ..store.keys import Keyring, load_keyring, load_or_create_keyring
from ..store.members import (
    PlateRow,
    SealedMember,
    members_sealed_with_other_keys,
    plates_sealed_with_other_keys,
    reseal_member,
    reseal_plate,
)
from ..store.meta import get_meta, set_meta
from ..store.rulesets import all_rulesets, rulesets_generation
from ..store.sync import get_sync_state, record_enrolled

__all__ = ["Clock", "Station", "finish_rekey", "open_station", "reseal_members"]

Clock = Callable[[], datetime]
log = logging.getLogger(__name__)


@dataclass
class Station:
    settings: StationSettings
    store: Store
    keyring: Keyring
    clock: Clock
    _rules: tuple[tuple[int, int], tuple[RuleSet, ...]] | None = field(default=None, repr=False)

    @property
    def station_id(self) -> str:
        return self.settings.station.id

    @property
    def keys(self) -> MemberKeys:
        """The keys new member data is sealed and indexed with."""
        return self.keyring.keys

    def decrypt(self, field_name: str, token: str) -> str:
        """Open a sealed field with whichever key of the keyring sealed it."""
        return self.keyring.decrypt(field_name, token)

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


def _reseal(keyring: Keyring, field_name: str, token: str | None) -> tuple[str, str] | None:
    """(plaintext, sealed under the current keys), or None for an absent field."""
    if token is None:
        return None
    plaintext = keyring.decrypt(field_name, token)
    return plaintext, encrypt_field(keyring.keys, field_name, plaintext)


def reseal_members(tx: Tx, keyring: Keyring) -> int:
    """Re-seal and re-index every member and plate sealed with another key than the current.

    Idempotent (a row already under the current key is not touched). A ciphertext whose key
    this station does not hold is left as it is and logged: the cloud, which received the
    station's keys at enrolment, re-seals it for the chain.
    """
    current = keyring.keys
    changed = 0
    for member in members_sealed_with_other_keys(tx, current.key_id):
        try:
            phone = _reseal(keyring, "phone", member.phone_sealed)
            name = _reseal(keyring, "name", member.name_sealed)
        except DecryptionError as exc:
            log.warning("member %s cannot be re-sealed: %s", member.member_id, exc)
            continue
        index = member.phone_index
        if phone is not None and index is not None:
            index = blind_index(current, "phone", phone[0])
        reseal_member(
            tx,
            SealedMember(
                member.member_id,
                index,
                None if phone is None else phone[1],
                None if name is None else name[1],
            ),
        )
        changed += 1
    for plate in plates_sealed_with_other_keys(tx, current.key_id):
        try:
            value = keyring.decrypt("plate", plate.plate_sealed)
        except DecryptionError as exc:
            log.warning("a plate of member %s cannot be re-sealed: %s", plate.member_id, exc)
            continue
        sealed = encrypt_field(current, "plate", value)
        reseal_plate(
            tx,
            plate.plate_index,
            PlateRow(
                blind_index(current, "plate", value), plate.member_id, sealed, plate.attached_at
            ),
        )
        changed += 1
    return changed


def finish_rekey(station: Station) -> int:
    """Finish an enrolment interrupted after the chain keys were installed on disk.

    The key files change before the store is re-sealed; if the process stopped between the
    two, the store still records the keys it was moving to (`rekey_to`), and this re-seals
    the members and records the enrolment. Nothing to do otherwise.
    """
    with station.store.read() as tx:
        target = get_sync_state(tx).rekey_to
    if target is None or target != station.keys.key_id:
        return 0
    with station.store.write() as tx:
        changed = reseal_members(tx, station.keyring)
        record_enrolled(tx, target, station.now().isoformat())
    log.info("finished installing the chain keys: %d rows re-sealed", changed)
    return changed


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
        keyring = (
            load_or_create_keyring(data_dir, f"{settings.station.id}-1")
            if create
            else load_keyring(data_dir)
        )
        station = Station(
            settings=settings, store=store, keyring=keyring, clock=clock or _system_clock
        )
        finish_rekey(station)
    except BaseException:
        store.close()
        raise
    return station
