"""The drivers' error hierarchy. Framers return these as values; links and drivers raise them.

A framing error never stops a driver: it is counted, logged and the framer resynchronises
on the next frame boundary.
"""

from __future__ import annotations

__all__ = [
    "CrcError",
    "DriverError",
    "FramingError",
    "LinkClosed",
    "LinkError",
    "MalformedMessage",
    "OversizedFrame",
    "ProtocolError",
    "TruncatedFrame",
]


class DriverError(Exception):
    """Base of everything the drivers report."""


class FramingError(DriverError):
    """Bytes that do not form a valid frame; the framer has skipped past them."""


class CrcError(FramingError):
    pass


class TruncatedFrame(FramingError):
    pass


class OversizedFrame(FramingError):
    pass


class MalformedMessage(DriverError):
    """A well-framed message whose content cannot be understood (bad BCD, bad XML)."""


class ProtocolError(DriverError):
    """The peer broke the conversation rules (unexpected reply, refused log-on)."""


class LinkError(DriverError):
    """The byte link failed; the driver reopens it with backoff."""


class LinkClosed(LinkError):
    pass
