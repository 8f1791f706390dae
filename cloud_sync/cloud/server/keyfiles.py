"""The cloud's secrets in its data directory: the chain's member keys and the rule-signing key.

Both are created once and never overwritten: losing the member keys makes every sealed phone
unreadable, and a new signing key makes every station refuse new rule sets until it enrols
again. So each file is written to a temporary file (0600), fsynced, and linked into place
only if no other process got there first; files others can read are refused.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.core.privacy import MemberKeys
from cloud_sync.core.signing import (
    SignatureError,
    generate_signing_key,
    private_key_from_pem,
    private_key_to_pem,
)

__all__ = [
    "CHAIN_KEY_ID",
    "MEMBER_KEYS_FILE",
    "SIGNING_KEY_FILE",
    "KeyFileError",
    "ensure_data_dir",
    "load_chain_keys",
    "load_or_create_chain_keys",
    "load_or_create_signing_key",
    "load_signing_key",
]

CHAIN_KEY_ID = "chain-1"
MEMBER_KEYS_FILE = "member-keys.json"
SIGNING_KEY_FILE = "signing-key.pem"


class KeyFileError(ValueError):
    """A key file is missing, unreadable, damaged or readable by others."""


def ensure_data_dir(data_dir: Path) -> None:
    """Create the data directory (0700) if needed; an existing one is tightened to 0700."""
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if stat.S_IMODE(data_dir.stat().st_mode) & 0o077:
            os.chmod(data_dir, 0o700)
    except OSError as exc:
        raise KeyFileError(f"data directory {data_dir}: {exc.strerror or exc}") from exc


def _read_private(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if stat.S_IMODE(mode) & 0o077:
        raise KeyFileError(f"{path} is readable by others; chmod 600 {path}")
    return data


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_once(path: Path, content: bytes) -> bool:
    """Write `content` to `path` atomically unless it exists; True when this call created it."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, content)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)  # fails if another process created the file first
        except FileExistsError:
            return False
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return True


def _encode_member_keys(keys: MemberKeys) -> bytes:
    document = {
        "key_id": keys.key_id,
        "encryption_key": base64.b64encode(keys.encryption_key).decode("ascii"),
        "index_key": base64.b64encode(keys.index_key).decode("ascii"),
    }
    return json.dumps(document).encode("ascii")


def load_chain_keys(data_dir: Path) -> MemberKeys:
    """The chain's member keys from `member-keys.json` (the station's key-file layout)."""
    path = data_dir / MEMBER_KEYS_FILE
    try:
        raw = json.loads(_read_private(path).decode("ascii"))
        return MemberKeys(
            key_id=str(raw["key_id"]),
            encryption_key=base64.b64decode(raw["encryption_key"], validate=True),
            index_key=base64.b64decode(raw["index_key"], validate=True),
        )
    except FileNotFoundError as exc:
        raise KeyFileError(f"chain member keys missing at {path}") from exc
    except KeyFileError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(f"chain member keys at {path} are damaged: {exc}") from exc


def load_signing_key(data_dir: Path) -> Ed25519PrivateKey:
    """The rule-signing Ed25519 key from `signing-key.pem`."""
    path = data_dir / SIGNING_KEY_FILE
    try:
        return private_key_from_pem(_read_private(path))
    except FileNotFoundError as exc:
        raise KeyFileError(f"rule-signing key missing at {path}") from exc
    except KeyFileError:
        raise
    except (SignatureError, ValueError, TypeError) as exc:
        raise KeyFileError(f"rule-signing key at {path} is damaged: {exc}") from exc


def _ensure_file(data_dir: Path, name: str, make: Callable[[], bytes]) -> None:
    ensure_data_dir(data_dir)
    path = data_dir / name
    if path.exists():
        return
    try:
        _create_once(path, make())
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create: {exc.strerror or exc}") from exc


def load_or_create_chain_keys(data_dir: Path) -> MemberKeys:
    """The chain's member keys, generated (key id `chain-1`) the first time."""
    _ensure_file(
        data_dir, MEMBER_KEYS_FILE, lambda: _encode_member_keys(MemberKeys.generate(CHAIN_KEY_ID))
    )
    return load_chain_keys(data_dir)


def load_or_create_signing_key(data_dir: Path) -> Ed25519PrivateKey:
    """The rule-signing key, generated the first time."""
    _ensure_file(data_dir, SIGNING_KEY_FILE, lambda: private_key_to_pem(generate_signing_key()))
    return load_signing_key(data_dir)
