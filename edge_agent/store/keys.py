"""The member-data keyring in the data directory (files mode 0600, directory 0700).

`keys/member-keys.json` holds the keys new data is sealed with: the station's own until it
enrols, the chain's after. Keys it replaced are kept as `keys/member-keys-<key_id>.json` so
older ciphertexts (in the outbox, in a backup) still open; a ciphertext names its key id.
Every file is written to a temporary file, fsynced and renamed into place: losing a key
makes the data sealed with it unreadable.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from cloud_sync.core.privacy import DecryptionError, MemberKeys, decrypt_field

from .database import StoreError
from .files import fsync_path

__all__ = [
    "KEYS_FILE",
    "KeyFile",
    "Keyring",
    "archived_key_path",
    "install_chain_keys",
    "load_keyring",
    "load_member_keys",
    "load_or_create_keyring",
    "load_or_create_member_keys",
]

KEYS_FILE = Path("keys") / "member-keys.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class KeyFile:
    keys: MemberKeys
    source: str  # station: generated here; chain: handed out by the cloud at enrolment


@dataclass(frozen=True, repr=False)
class Keyring:
    """The current keys plus every older set, found by the key id inside a ciphertext."""

    current: KeyFile
    older: tuple[KeyFile, ...] = ()

    def __repr__(self) -> str:
        return f"Keyring(current={self.current.keys.key_id!r}, older={len(self.older)})"

    @property
    def keys(self) -> MemberKeys:
        return self.current.keys

    def all(self) -> tuple[KeyFile, ...]:
        return (self.current, *self.older)

    def get(self, key_id: str) -> MemberKeys | None:
        for entry in self.all():
            if entry.keys.key_id == key_id:
                return entry.keys
        return None

    def for_token(self, token: str) -> MemberKeys:
        key_id, _, _ = token.partition(":")
        keys = self.get(key_id)
        if keys is None:
            raise DecryptionError(f"sealed with key {key_id!r}, which this station does not hold")
        return keys

    def decrypt(self, field: str, token: str) -> str:
        return decrypt_field(self.for_token(token), field, token)

    def station_keys(self) -> list[MemberKeys]:
        """Keys this station generated itself (what it sends the cloud at enrolment)."""
        return [entry.keys for entry in self.all() if entry.source == "station"]


def _key_path(data_dir: Path) -> Path:
    return data_dir / KEYS_FILE


def archived_key_path(data_dir: Path, key_id: str) -> Path:
    return data_dir / "keys" / f"member-keys-{_UNSAFE.sub('_', key_id)}.json"


def _read(path: Path) -> KeyFile:
    try:
        mode = path.stat().st_mode
        raw = json.loads(path.read_text(encoding="ascii"))
        keys = MemberKeys(
            key_id=str(raw["key_id"]),
            encryption_key=base64.b64decode(raw["encryption_key"]),
            index_key=base64.b64decode(raw["index_key"]),
        )
        source = str(raw.get("source", "station"))
    except FileNotFoundError as exc:
        raise StoreError(f"member keys missing at {path}; run `loyalpump edge init`") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"member keys at {path} are unreadable: {exc}") from exc
    if stat.S_IMODE(mode) & 0o077:
        raise StoreError(f"member keys at {path} are readable by others; chmod 600 {path}")
    return KeyFile(keys, source)


def _document(entry: KeyFile) -> bytes:
    return json.dumps(
        {
            "key_id": entry.keys.key_id,
            "encryption_key": base64.b64encode(entry.keys.encryption_key).decode("ascii"),
            "index_key": base64.b64encode(entry.keys.index_key).decode("ascii"),
            "source": entry.source,
        }
    ).encode("ascii")


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    fsync_path(path.parent)


def _older(data_dir: Path, current: MemberKeys) -> tuple[KeyFile, ...]:
    found: list[KeyFile] = []
    for path in sorted((data_dir / "keys").glob("member-keys-*.json")):
        entry = _read(path)
        if entry.keys.key_id != current.key_id:
            found.append(entry)
    return tuple(found)


def load_keyring(data_dir: Path) -> Keyring:
    current = _read(_key_path(data_dir))
    return Keyring(current, _older(data_dir, current.keys))


def load_or_create_keyring(data_dir: Path, key_id: str) -> Keyring:
    path = _key_path(data_dir)
    if not path.exists():
        _write_atomically(path, _document(KeyFile(MemberKeys.generate(key_id), "station")))
    return load_keyring(data_dir)


def load_member_keys(data_dir: Path) -> MemberKeys:
    return _read(_key_path(data_dir)).keys


def load_or_create_member_keys(data_dir: Path, key_id: str) -> MemberKeys:
    return load_or_create_keyring(data_dir, key_id).keys


def install_chain_keys(data_dir: Path, keys: MemberKeys) -> Keyring:
    """Make the chain's keys current, keeping the ones they replace (written aside first).

    Idempotent: installing the keys already current only rewrites the same file.
    """
    current = _read(_key_path(data_dir))
    if current.keys.key_id != keys.key_id:
        aside = archived_key_path(data_dir, current.keys.key_id)
        if not aside.exists():
            _write_atomically(aside, _document(current))
    elif (current.keys.encryption_key, current.keys.index_key) != (
        keys.encryption_key,
        keys.index_key,
    ):
        raise StoreError(
            f"the cloud sent other key material under the current key id {keys.key_id!r}"
        )
    _write_atomically(_key_path(data_dir), _document(KeyFile(keys, "chain")))
    return load_keyring(data_dir)
