"""Field encryption and blind indexes for members' personal data.

Phones, names and plates are stored encrypted (AES-256-GCM) so a copied store file leaks
nothing readable; they are found through a keyed hash (HMAC-SHA256, the "blind index") so
look-ups stay a single indexed equality match. Both keys are chain-wide in the end (the
cloud hands them to stations at enrolment) so a phone registered at one station is found at
another; the key id inside every ciphertext lets keys rotate without guessing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["DecryptionError", "MemberKeys", "blind_index", "decrypt_field", "encrypt_field"]

_NONCE_BYTES = 12
_KEY_BYTES = 32


class DecryptionError(ValueError):
    """A ciphertext failed authentication or was sealed with a key we do not hold."""


@dataclass(frozen=True, repr=False)
class MemberKeys:
    """The two secrets protecting member data; `key_id` names them inside ciphertexts."""

    key_id: str
    encryption_key: bytes
    index_key: bytes

    def __post_init__(self) -> None:
        if len(self.encryption_key) != _KEY_BYTES or len(self.index_key) != _KEY_BYTES:
            raise ValueError("member keys must be 32 bytes each")
        if not self.key_id or ":" in self.key_id:
            raise ValueError("key id must be non-empty and contain no ':'")

    def __repr__(self) -> str:  # never print key material, even by accident
        return f"MemberKeys(key_id={self.key_id!r})"

    @classmethod
    def generate(cls, key_id: str) -> MemberKeys:
        return cls(key_id, os.urandom(_KEY_BYTES), os.urandom(_KEY_BYTES))


def blind_index(keys: MemberKeys, kind: str, normalized_value: str) -> str:
    """Keyed hash of a normalized identifier; `kind` keeps phone and plate spaces apart."""
    message = f"{kind}\x00{normalized_value}".encode()
    return hmac.new(keys.index_key, message, hashlib.sha256).hexdigest()


def encrypt_field(keys: MemberKeys, field: str, plaintext: str) -> str:
    """Seal `plaintext`; the field name is authenticated so ciphertexts cannot be swapped."""
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(keys.encryption_key).encrypt(nonce, plaintext.encode(), field.encode())
    return f"{keys.key_id}:{base64.b64encode(nonce + sealed).decode('ascii')}"


def decrypt_field(keys: MemberKeys, field: str, token: str) -> str:
    key_id, _, body = token.partition(":")
    if key_id != keys.key_id:
        raise DecryptionError(f"sealed with key {key_id!r}, we hold {keys.key_id!r}")
    try:
        raw = base64.b64decode(body, validate=True)
        nonce, sealed = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
        return AESGCM(keys.encryption_key).decrypt(nonce, sealed, field.encode()).decode()
    except (InvalidTag, ValueError) as exc:
        raise DecryptionError(f"cannot decrypt {field}: ciphertext is damaged") from exc
