"""Ed25519 signatures over rule-set documents.

The cloud signs the exact UTF-8 bytes of each published document; a station verifies them
against the public key it received at enrolment before installing anything, so a rule set
altered on the way (or by anyone but HQ's cloud) is refused and the old rules stay in force.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "SignatureError",
    "generate_signing_key",
    "key_id_of",
    "private_key_from_pem",
    "private_key_to_pem",
    "public_key_b64",
    "sign_document",
    "verify_document",
]


class SignatureError(ValueError):
    """The signature does not verify, or the key or signature is not well formed."""


def generate_signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_to_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def private_key_from_pem(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError("the signing key is not an Ed25519 key")
    return key


def public_key_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def key_id_of(public_key: str) -> str:
    """A short, stable name for a public key (first 16 hex digits of its SHA-256)."""
    return hashlib.sha256(base64.b64decode(public_key)).hexdigest()[:16]


def sign_document(key: Ed25519PrivateKey, document: str) -> str:
    return base64.b64encode(key.sign(document.encode("utf-8"))).decode("ascii")


def verify_document(public_key: str, document: str, signature: str) -> None:
    """Raise `SignatureError` unless `signature` is the key's signature of `document`."""
    try:
        raw_key = base64.b64decode(public_key, validate=True)
        raw_signature = base64.b64decode(signature, validate=True)
        Ed25519PublicKey.from_public_bytes(raw_key).verify(raw_signature, document.encode("utf-8"))
    except InvalidSignature as exc:
        raise SignatureError("rule set signature does not verify") from exc
    except ValueError as exc:
        raise SignatureError(f"malformed key or signature: {exc}") from exc
