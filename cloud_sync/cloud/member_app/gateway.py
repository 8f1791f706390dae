"""How a sign-in code reaches a member's phone: a `MessageGateway`, chosen by
`[member_app] gateway`.

Callers only ever call `send(phone, text)`; an SMS or WeChat gateway is one more class and
one more name in `build_gateway`, with no change to the routes. The `log` gateway (the
default, for trials and tests) appends each message as one JSON line to
`<data_dir>/member_messages.log` (mode 0600: the codes are in it) and logs it with the phone
masked; a browser test signs in with the code it reads there.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cloud_sync.cloud.server.settings import MemberAppSection
from cloud_sync.core.identity import mask_phone

__all__ = [
    "MESSAGES_FILE",
    "GatewayError",
    "LogGateway",
    "MessageGateway",
    "build_gateway",
]

log = logging.getLogger("cloud_sync.cloud.member_app.gateway")

MESSAGES_FILE = "member_messages.log"


class GatewayError(Exception):
    """The message could not be handed over; the caller answers 503 and the person retries."""


class MessageGateway(Protocol):
    def send(self, phone: str, text: str) -> None:
        """Deliver `text` to the E.164 `phone`, or raise GatewayError."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class LogGateway:
    """Messages to a file (one JSON object a line: `at`, `phone`, `text`) and to the log."""

    path: Path
    clock: Callable[[], datetime] = _utc_now
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def send(self, phone: str, text: str) -> None:
        line = json.dumps(
            {"at": self.clock().isoformat(), "phone": phone, "text": text}, ensure_ascii=False
        )
        data = (line + "\n").encode("utf-8")
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # One write of an O_APPEND file: lines of several workers never interleave.
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.fchmod(fd, 0o600)
                    os.write(fd, data)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise GatewayError(f"cannot write {self.path.name}: {exc.strerror}") from exc
        log.info("member message to %s: %s", mask_phone(phone), text)


def build_gateway(
    settings: MemberAppSection, data_dir: Path, clock: Callable[[], datetime] = _utc_now
) -> MessageGateway:
    """The gateway `settings.gateway` names (only `log` so far)."""
    if settings.gateway == "log":
        return LogGateway(data_dir / MESSAGES_FILE, clock)
    raise ValueError(f"unknown message gateway {settings.gateway!r}")  # pragma: no cover
