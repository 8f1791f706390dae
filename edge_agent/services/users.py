"""Cashier-page users: named logins with a PIN, hashed with argon2id.

The hash setting is OWASP's minimum for argon2id (m = 19 MiB, t = 2, p = 1), chosen over
argon2-cffi's default (RFC 9106's second recommended option, m = 64 MiB, t = 3, p = 4) for
the PC a station runs on: a small two-core box with little memory beside the browser. Each
hash in flight holds its `m` in memory, and the web page lets at most `[web]
login_concurrency` hashes run at once (2 by default), so logins cost at most ~40 MiB
however many arrive together, instead of 64 MiB per concurrent login with no bound. One
hash takes a few tens of milliseconds on such a PC; a 4-digit PIN is protected by the
login limiter, the hash protects the PINs of a stolen database (which is private to the
agent's user, see `store.files`).

Hashes made with another setting (older stores used argon2-cffi's default) still verify,
since an argon2 hash carries its own parameters, and are rewritten with this setting at the
next successful login. An unknown or disabled name costs one verification against a dummy
hash of the same setting, so the time taken does not tell which names exist.
"""

from __future__ import annotations

import re
from contextlib import suppress
from functools import cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from ..errors import ServiceError
from ..store.audit import record_audit
from ..store.users import UserRow, insert_user, set_pin_hash, user_by_name
from .station import Station

__all__ = ["HASH_MEMORY_KIB", "ROLES", "add_user", "check_pin", "pin_hasher"]

ROLES = ("cashier", "manager")
_NAME = re.compile(r"^[\w.\-]{1,32}$")
HASH_MEMORY_KIB = 19_456  # 19 MiB: OWASP's minimum for argon2id
_hasher = PasswordHasher(
    time_cost=2, memory_cost=HASH_MEMORY_KIB, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
)


def pin_hasher() -> PasswordHasher:
    """The hasher every new PIN hash is made with (its parameters are in the docstring)."""
    return _hasher


@cache
def _dummy_hash() -> str:
    return _hasher.hash("not a PIN: the cost of an unknown name")


def add_user(station: Station, *, name: str, role: str, pin: str, actor: str) -> int:
    if not _NAME.fullmatch(name):
        raise ServiceError("user.name", "user name: 1-32 letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise ServiceError("user.role", f"role must be one of {', '.join(ROLES)}")
    if not 4 <= len(pin) <= 64 or pin.strip() != pin:
        raise ServiceError("user.pin", "PIN must be 4-64 characters without surrounding spaces")
    if pin.isdigit() and len(set(pin)) == 1:
        raise ServiceError("user.pin", "PIN must not be one repeated digit")
    pin_hash = _hasher.hash(pin)
    now = station.now().isoformat()
    with station.store.write() as tx:
        if user_by_name(tx, name) is not None:
            raise ServiceError("user.exists", f"user {name} already exists")
        user_id = insert_user(tx, name, role, pin_hash, now)
        record_audit(
            tx,
            at=now,
            actor=actor,
            action="user.added",
            subject=f"user:{name}",
            details={"role": role},
        )
    return user_id


def check_pin(station: Station, name: str, pin: str) -> UserRow | None:
    """The user if the PIN matches and the login is enabled; None otherwise.

    Blocking (one argon2 verification): call it from a worker thread, within the web
    page's hashing slots.
    """
    with station.store.read() as tx:
        user = user_by_name(tx, name)
    if user is None or user.disabled:
        with suppress(VerificationError):  # the same time whether or not the name exists
            _hasher.verify(_dummy_hash(), pin)
        return None
    try:
        _hasher.verify(user.pin_hash, pin)
    except (VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(user.pin_hash):
        _rehash(station, user, pin)
    return user


def _rehash(station: Station, user: UserRow, pin: str) -> None:
    """Rewrite a hash made with an older setting, now that the PIN is known to be right."""
    fresh = _hasher.hash(pin)
    with station.store.write() as tx:
        current = user_by_name(tx, user.name)
        if current is not None and current.pin_hash == user.pin_hash:  # nobody changed it
            set_pin_hash(tx, user.user_id, fresh)
