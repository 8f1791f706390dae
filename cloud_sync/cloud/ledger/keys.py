"""Station keys and the translation of station-sealed member data to the chain's keys.

Before a station first reaches the cloud it seals phones, names and plates with keys of its
own. It uploads those keys at enrolment; the cloud keeps them sealed with the chain's key
and, when an event carries data sealed under one, decrypts it, normalizes it again and
stores only the chain-sealed value and the chain's blind index. The key id prefix of every
ciphertext says which key sealed it.

A blind index is never taken on a station's word: the cloud opens every sealed phone and
plate (chain-sealed too), recomputes the index the sender should have sent and rejects the
event when they differ, so no station can claim another member's phone or plate.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping

from cloud_sync.core.identity import (
    IdentityError,
    mask_phone,
    normalize_phone,
    normalize_plate,
)
from cloud_sync.core.privacy import (
    DecryptionError,
    MemberKeys,
    blind_index,
    decrypt_field,
    encrypt_field,
)

from .payload import Rejected

__all__ = ["KeyRing", "seal_station_key", "unseal_station_key"]

_FIELD = "station_key"


def seal_station_key(chain: MemberKeys, keys: MemberKeys) -> str:
    body = json.dumps(
        {
            "key_id": keys.key_id,
            "encryption_key": base64.b64encode(keys.encryption_key).decode("ascii"),
            "index_key": base64.b64encode(keys.index_key).decode("ascii"),
        }
    )
    return encrypt_field(chain, _FIELD, body)


def unseal_station_key(chain: MemberKeys, sealed: str) -> MemberKeys:
    raw = json.loads(decrypt_field(chain, _FIELD, sealed))
    return MemberKeys(
        key_id=str(raw["key_id"]),
        encryption_key=base64.b64decode(raw["encryption_key"]),
        index_key=base64.b64decode(raw["index_key"]),
    )


def _key_id_of(sealed: str) -> str:
    key_id, sep, _ = sealed.partition(":")
    if not sep or not key_id:
        raise Rejected("keys.invalid", "a sealed value carries no key id")
    return key_id


class KeyRing:
    """The chain's keys plus one station's uploaded keys, loaded only when first needed."""

    def __init__(
        self, chain: MemberKeys, load_station_keys: Callable[[], Mapping[str, MemberKeys]]
    ) -> None:
        self.chain = chain
        self._load = load_station_keys
        self._station: Mapping[str, MemberKeys] | None = None
        # A batch's sign-ups are opened once, when the push looks their phones up ahead.
        self._phones: dict[tuple[str, str], tuple[str, str, str]] = {}

    def _station_key(self, sealed: str) -> MemberKeys | None:
        """None: already the chain's; otherwise the station key that sealed it."""
        key_id = _key_id_of(sealed)
        if key_id == self.chain.key_id:
            return None
        if self._station is None:
            self._station = self._load()
        keys = self._station.get(key_id)
        if keys is None:
            raise Rejected("keys.unknown", f"data sealed with key {key_id!r}, never uploaded")
        return keys

    def _open(self, keys: MemberKeys, field: str, sealed: str) -> str:
        try:
            return decrypt_field(keys, field, sealed)
        except DecryptionError as exc:
            raise Rejected("keys.invalid", f"cannot open the {field}: {exc}") from None

    def _checked(self, keys: MemberKeys, field: str, value: str, index: str) -> None:
        if blind_index(keys, field, value) != index:
            raise Rejected(
                "member.index_mismatch",
                f"the {field} index sent does not match the sealed {field}",
            )

    def phone(self, index: str, sealed: str) -> tuple[str, str, str]:
        """(chain index, chain-sealed phone, masked phone), all derived from the sealed phone."""
        known = self._phones.get((index, sealed))
        if known is None:
            known = self._phones[(index, sealed)] = self._phone(index, sealed)
        return known

    def _phone(self, index: str, sealed: str) -> tuple[str, str, str]:
        station = self._station_key(sealed)
        keys = self.chain if station is None else station
        try:
            e164 = normalize_phone(self._open(keys, "phone", sealed))
        except IdentityError as exc:
            raise Rejected("member.phone", str(exc)) from None
        self._checked(keys, "phone", e164, index)
        if station is None:
            return index, sealed, mask_phone(e164)
        return (
            blind_index(self.chain, "phone", e164),
            encrypt_field(self.chain, "phone", e164),
            mask_phone(e164),
        )

    def name(self, sealed: str | None) -> str | None:
        if sealed is None:
            return None
        keys = self._station_key(sealed)
        if keys is None:
            return sealed
        return encrypt_field(self.chain, "name", self._open(keys, "name", sealed))

    def plate(self, index: str, sealed: str) -> tuple[str, str]:
        """(chain index, chain-sealed plate), the index checked against the sealed plate."""
        station = self._station_key(sealed)
        keys = self.chain if station is None else station
        try:
            plate = normalize_plate(self._open(keys, "plate", sealed))
        except IdentityError as exc:
            raise Rejected("plate.invalid", str(exc)) from None
        self._checked(keys, "plate", plate, index)
        if station is None:
            return index, sealed
        return blind_index(self.chain, "plate", plate), encrypt_field(self.chain, "plate", plate)
