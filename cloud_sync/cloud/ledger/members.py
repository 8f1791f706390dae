"""Members in the chain ledger: registration, deterministic merges, plates.

The chain knows a member by the blind index of its phone under the chain's keys. Members
registered offline at two stations with one phone are merged: the smallest member_id
survives whatever order their events arrive in, so every replica of history ends the same.
"""

from __future__ import annotations

from cloud_sync.core.events import MemberRegistered, PlateAttached

from .book import Member
from .context import Context
from .payload import Rejected
from .postings import transfer

__all__ = ["attach_plate", "register_member"]


def register_member(ctx: Context, e: MemberRegistered) -> None:
    member_id = e.member_id
    if ctx.book.member(member_id) is not None:
        raise Rejected("member.exists", f"member {member_id} is already registered")
    registered = e.registered_at
    phone_index, phone_sealed, masked = ctx.keys.phone(e.phone_index, e.phone_sealed)
    name_sealed = ctx.keys.name(e.name_sealed)
    consent_at = e.consent_at
    member = Member(
        member_id=member_id,
        phone_index=phone_index,
        phone_sealed=phone_sealed,
        phone_masked=masked,
        name_sealed=name_sealed,
        key_id=ctx.keys.chain.key_id,
        registered_at=registered.isoformat(),
        registered_station=ctx.station_id,
        consent_at=None if consent_at is None else consent_at.isoformat(),
        consent_channel=e.consent_channel,
        tier=None,
        status="active",
        merged_into=None,
        overdraft=0,
        denied=False,
        event_id=ctx.event_id,
    )
    other = ctx.book.active_by_phone(phone_index)
    if other is not None and other.member_id < member_id:
        member.status = "merged"
        member.merged_into = other.member_id
        ctx.book.add_member(member)
        ctx.book.touch(member)
        ctx.book.touch(other)
        return
    ctx.book.add_member(member)
    ctx.book.touch(member)
    if other is not None:
        transfer(ctx.book, other, member, ctx.booking(registered))


def attach_plate(ctx: Context, e: PlateAttached) -> None:
    """A plate belongs to one member at a time: attaching it moves it from anyone else."""
    member = ctx.member(e.member_id)
    at = e.at
    index, sealed = ctx.keys.plate(e.plate_index, e.plate_sealed)
    current = ctx.book.plate(index)
    owner = None if current is None else current.member_id
    if owner == member.member_id:
        return
    ctx.book.set_plate(index, member.member_id, sealed, at.isoformat())
    ctx.book.touch(member)
    previous = None if owner is None else ctx.book.member(owner)
    if previous is not None:
        ctx.book.touch(previous)
