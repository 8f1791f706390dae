"""What a station may move on its own authority: pure checks, no I/O.

A station token is an untrusted client of the chain (docs/sync.md, "Trust"). It may record
its own sales and act on sales it recorded; redeem within an allowance granted to it; and
adjust within a bound HQ sets. Here are the bounds and the checks; `handlers.py` applies
them and `review.py` keeps what they found for HQ.

A redemption beyond its allowance is still booked (the customer has the goods): it is
flagged, counted against the station, and its overdraft is on HQ's review list. An
adjustment beyond the bound is never booked silently: it waits for HQ's approval.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

__all__ = [
    "AllowanceFacts",
    "Flag",
    "StationLimits",
    "TrustPolicy",
    "adjustment_excess",
    "redemption_flags",
]


@dataclass(frozen=True)
class StationLimits:
    """Manual adjustments one station may book without HQ: per adjustment (either sign)
    and in any 24 hours (the sum of their sizes, as the cloud received them)."""

    adjust_max_points: int = 10_000
    adjust_daily_points: int = 100_000


@dataclass(frozen=True)
class TrustPolicy:
    """`limits` for every station unless `per_station` names it; `suspend_after` rule
    breaks within `suspend_window_s` turn the station's offline redemption off until HQ
    resolves them; a station's clock may run `clock_skew_s` off the cloud's; a sale the cloud
    cannot price earns at most `unverified_sale_points` without HQ; an attach is undone
    within `detach_window_s` of it."""

    limits: StationLimits = StationLimits()
    per_station: Mapping[str, StationLimits] = field(default_factory=lambda: MappingProxyType({}))
    suspend_after: int = 5
    suspend_window_s: int = 24 * 3600
    clock_skew_s: int = 600
    # Points one sale may earn when the cloud cannot price it (a rule set it never
    # published, no receipt): a generous fill; the rest waits for HQ.
    unverified_sale_points: int = 2_000
    # How long after an attach a station may undo it (`sale.detached`): a backstop wider
    # than any station's own window (`attach_window_min`, at most 7 days from recording, for
    # a sale keyed in up to 7 days after it ended); later undos are refused and flagged.
    detach_window_s: int = 14 * 24 * 3600

    def limits_for(self, station_id: str) -> StationLimits:
        return self.per_station.get(station_id, self.limits)


@dataclass(frozen=True)
class Flag:
    """One thing a station did beyond its authority, for HQ's review list.

    `suspends`: counts towards an automatic suspension (a held adjustment does not: it
    moved nothing, and a manager's large correction is legitimate work for HQ to approve).
    """

    code: str
    detail: str
    points: int = 0
    shortfall: int = 0
    member_id: str | None = None
    suspends: bool = True


@dataclass(frozen=True)
class AllowanceFacts:
    """An allowance as granted, and what was already redeemed under it."""

    allowance_id: str
    station_id: str
    points: int
    per_member_cap: int
    expires_at: datetime
    granted_at: datetime
    used: int  # by every redemption under it so far (this one not included)
    used_by_member: int  # by the same member id as the station named it


def redemption_flags(
    station_id: str,
    allowance_id: str | None,
    allowance: AllowanceFacts | None,
    *,
    points: int,
    at: datetime,
    now: datetime,
    clock_skew: timedelta,
) -> list[tuple[str, str]]:
    """Why this redemption was beyond the station's authority: (code, sentence) pairs;
    empty when an allowance of this station covered it, as the station itself checks.

    The time is the station's word: one dated after the cloud's clock, or before the
    allowance was granted (an old allowance's unused rest, spent by backdating), is
    beyond it too."""
    if at > now + clock_skew:
        return [("redemption.future", f"dated {at.isoformat()}, after the cloud's clock")]
    if allowance_id is None:
        return [("redemption.no_allowance", "the redemption names no allowance")]
    if allowance is None or allowance.station_id != station_id:
        return [
            (
                "redemption.foreign_allowance",
                f"allowance {allowance_id} was not granted to station {station_id}",
            )
        ]
    found: list[tuple[str, str]] = []
    if at < allowance.granted_at - clock_skew:
        found.append(
            (
                "redemption.before_allowance",
                f"dated {at.isoformat()}, before allowance {allowance_id} was granted",
            )
        )
    if at > allowance.expires_at + clock_skew:
        found.append(
            (
                "redemption.allowance_expired",
                f"redeemed at {at.isoformat()}, after allowance {allowance_id} expired "
                f"at {allowance.expires_at.isoformat()}",
            )
        )
    if allowance.used + points > allowance.points:
        found.append(
            (
                "redemption.allowance_exceeded",
                f"{points} points with {allowance.used} of {allowance.points} already used",
            )
        )
    if allowance.used_by_member + points > allowance.per_member_cap:
        found.append(
            (
                "redemption.member_cap_exceeded",
                f"{points} points with {allowance.used_by_member} of this member's "
                f"{allowance.per_member_cap} already used",
            )
        )
    return found


def adjustment_excess(points: int, recent: int, limits: StationLimits) -> str | None:
    """Why an adjustment needs HQ's approval (a sentence), or None when the station may
    book it: `recent` is the size of what it adjusted in the last 24 hours."""
    size = abs(points)
    if size > limits.adjust_max_points:
        return (
            f"{points:+d} points is beyond the station's {limits.adjust_max_points} per adjustment"
        )
    if recent + size > limits.adjust_daily_points:
        return (
            f"{points:+d} points with {recent} adjusted in the last 24 hours is beyond the "
            f"station's {limits.adjust_daily_points} a day"
        )
    return None
