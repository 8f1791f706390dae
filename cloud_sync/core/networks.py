"""Checking a configured list of reverse proxies, the same for the station and the cloud:
each entry is an IP address or network, or the settings are refused with the entry named.

(A forwarded address is believed only from these; a typo here would silently believe
nobody, or be read as something else, so it fails at start-up instead.)
"""

from __future__ import annotations

from ipaddress import ip_network

__all__ = ["ip_networks"]


def ip_networks(entries: list[str]) -> list[str]:
    """`entries` unchanged when each is an IP address or network; else ValueError."""
    for entry in entries:
        try:
            ip_network(entry, strict=False)
        except ValueError as exc:
            raise ValueError(f"{entry!r} is not an IP address or network") from exc
    return entries
