"""Cashier-page users: named logins with a PIN, hashed with argon2."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

from ..errors import ServiceError
from ..store.audit import record_audit
from ..store.users import UserRow, insert_user, user_by_name
from .station import Station

__all__ = ["ROLES", "add_user", "check_pin"]

ROLES = ("cashier", "manager")
_NAME = re.compile(r"^[\w.\-]{1,32}$")
_hasher = PasswordHasher()


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
    """The user if the PIN matches and the login is enabled; None otherwise."""
    with station.store.read() as tx:
        user = user_by_name(tx, name)
    if user is None or user.disabled:
        _hasher.hash(pin)  # spend the same time whether or not the name exists
        return None
    try:
        _hasher.verify(user.pin_hash, pin)
    except VerificationError:
        return None
    return user
