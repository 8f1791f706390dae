"""The binary header in front of every IFSF POS-FDC XML message.

The first 4 bytes are always the big-endian length of the XML bytes (header excluded). What
follows depends on the FDC's configuration, so it is a setting:

- ``plain``:    length + ``00 00``
- ``md5``:      length + ``00 01`` + MD5(xml ‖ passphrase)   (16 bytes)
- ``md5-noid``: length + MD5(xml ‖ passphrase)

The MD5 is not security (MD5 is broken); it is what the FDC checks, so we compute it exactly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal, get_args

__all__ = [
    "HEADER_KINDS",
    "MAX_LENGTH_LIMIT",
    "Header",
    "HeaderKind",
    "build_header",
    "check_header_kind",
    "digest",
    "header_size",
    "parse_header",
]

HeaderKind = Literal["plain", "md5", "md5-noid"]
HEADER_KINDS: tuple[HeaderKind, ...] = get_args(HeaderKind)

MAX_LENGTH_LIMIT = 0xFFFFFF
"""Largest length a framer accepts: below 16 MiB, so every genuine header starts with 00."""

_ID = {"plain": b"\x00\x00", "md5": b"\x00\x01"}
_SIZE = {"plain": 6, "md5": 22, "md5-noid": 20}
_DIGEST_AT = {"md5": 6, "md5-noid": 4}


@dataclass(frozen=True)
class Header:
    length: int  # length of the XML bytes that follow the header
    digest: bytes | None  # the 16 MD5 bytes for md5 variants


def check_header_kind(value: str) -> HeaderKind:
    """Validate a configured header name; a typo must fail at start, not on the wire."""
    for kind in HEADER_KINDS:
        if value == kind:
            return kind
    raise ValueError(f"header must be one of {', '.join(HEADER_KINDS)}, not {value!r}")


def header_size(kind: HeaderKind) -> int:
    return _SIZE[kind]


def digest(xml: bytes, passphrase: str) -> bytes:
    """MD5 over the XML bytes followed by the passphrase (as FDCs compute it)."""
    return hashlib.md5(xml + passphrase.encode("utf-8"), usedforsecurity=False).digest()


def build_header(kind: HeaderKind, xml: bytes, passphrase: str = "") -> bytes:
    length = len(xml).to_bytes(4, "big")
    if kind == "plain":
        return length + _ID["plain"]
    if kind == "md5":
        return length + _ID["md5"] + digest(xml, passphrase)
    return length + digest(xml, passphrase)


def parse_header(kind: HeaderKind, data: bytes | bytearray) -> Header | None:
    """Read a header from the first bytes of `data`; None when its id bytes do not fit `kind`.

    `data` must hold at least `header_size(kind)` bytes.
    """
    size = _SIZE[kind]
    if len(data) < size:
        raise ValueError(f"a {kind} header needs {size} bytes, got {len(data)}")
    if kind in _ID and bytes(data[4:6]) != _ID[kind]:
        return None
    length = int.from_bytes(data[0:4], "big")
    at = _DIGEST_AT.get(kind)
    return Header(length, None if at is None else bytes(data[at : at + 16]))
