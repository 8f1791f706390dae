"""The member-data keys file in the data directory (mode 0600, directory 0700).

Created once, atomically, never overwritten: losing it makes every sealed phone and name
unreadable, so it is written to a temporary file, fsynced and renamed into place.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

from cloud_sync.loyalty.privacy import MemberKeys

from .database import StoreError

__all__ = ["KEYS_FILE", "load_member_keys", "load_or_create_member_keys"]

KEYS_FILE = Path("keys") / "member-keys.json"


def _key_path(data_dir: Path) -> Path:
    return data_dir / KEYS_FILE


def load_member_keys(data_dir: Path) -> MemberKeys:
    path = _key_path(data_dir)
    try:
        mode = path.stat().st_mode
        raw = json.loads(path.read_text(encoding="ascii"))
        keys = MemberKeys(
            key_id=str(raw["key_id"]),
            encryption_key=base64.b64decode(raw["encryption_key"]),
            index_key=base64.b64decode(raw["index_key"]),
        )
    except FileNotFoundError as exc:
        raise StoreError(f"member keys missing at {path}; run `loyalpump edge init`") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"member keys at {path} are unreadable: {exc}") from exc
    if stat.S_IMODE(mode) & 0o077:
        raise StoreError(f"member keys at {path} are readable by others; chmod 600 {path}")
    return keys


def load_or_create_member_keys(data_dir: Path, key_id: str) -> MemberKeys:
    path = _key_path(data_dir)
    if path.exists():
        return load_member_keys(data_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    keys = MemberKeys.generate(key_id)
    document = {
        "key_id": keys.key_id,
        "encryption_key": base64.b64encode(keys.encryption_key).decode("ascii"),
        "index_key": base64.b64encode(keys.index_key).decode("ascii"),
    }
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps(document).encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return keys
