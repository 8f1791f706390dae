"""The station's side of sync (`cloud_sync.station.port.StationPort`): batches from the outbox,
acknowledgements and rewinds, pulled pages applied in one transaction, enrolment and the
re-keying of local members under the chain's keys.

The engine (`cloud_sync.station.engine.SyncEngine`) decides when to call what; every method here
that changes the station commits before it returns, so a crash between two calls loses
nothing and repeats nothing the cloud would not recognise.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

import httpx

from cloud_sync.core.privacy import MemberKeys
from cloud_sync.core.signing import SignatureError, verify_document
from cloud_sync.core.wire import (
    MAX_BATCH,
    ChangesResponse,
    EnrolRequest,
    EnrolResponse,
    MemberDelta,
    MemberKeysWire,
    PushRequest,
    PushResponse,
    SignedRuleSet,
)
from cloud_sync.station.client import CloudClient
from cloud_sync.station.engine import CycleResult, SyncEngine
from cloud_sync.station.port import Backlog

from ..errors import ServiceError
from ..store import Tx
from ..store.keys import install_chain_keys
from ..store.members import (
    MemberRow,
    PlateRow,
    erase_member_data,
    get_member,
    insert_member,
    member_by_phone_index,
    plate_owner,
    plates_of,
    release_phone_index,
    remove_plate,
    set_plate_owner,
    update_member_from_cloud,
)
from ..store.outbox import (
    OutboxEvent,
    acknowledge,
    batch_after,
    epoch_first_seq,
    member_events_after,
    outbox_backlog,
    pending_batch,
    rewind,
)
from ..store.sync import (
    AllowanceRow,
    MemberSnapshot,
    SnapshotLot,
    clear_denied,
    count_refused_ruleset,
    delete_snapshot,
    get_sync_state,
    put_allowance,
    put_snapshot,
    record_disagreements,
    record_enrolled,
    record_enrolment_started,
    set_alert,
    set_cursor,
    set_denied,
    set_last_contact,
    set_offline_redemption,
)
from .rules import install_ruleset_in
from .station import Station, reseal_members

__all__ = ["StationSyncPort", "build_engine", "sync_once"]

log = logging.getLogger(__name__)

_UNKNOWN_REGISTRATION = "1970-01-01T00:00:00+00:00"
_CLOUD = "cloud"


def _b64_key(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"the cloud's {what} is not base64") from exc


def _aware(text: str, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{what}: {text!r} is not an ISO 8601 date-time") from exc
    if moment.tzinfo is None:
        raise ValueError(f"{what}: {text!r} has no UTC offset")
    return moment


def _registered_at(delta: MemberDelta) -> tuple[str, int]:
    """A member registered elsewhere: the chain's registration time, or none known (no
    new-member trial tier is then granted here)."""
    try:
        moment = _aware(delta.registered_at, "registered_at")
    except ValueError:
        moment = datetime.fromisoformat(_UNKNOWN_REGISTRATION)
    return moment.isoformat(), int(moment.timestamp() * 1000)


class StationSyncPort:
    """`StationPort` over an open station."""

    def __init__(self, station: Station) -> None:
        self._station = station

    @property
    def station_id(self) -> str:
        return self._station.station_id

    def _now(self) -> str:
        return self._station.now().isoformat()

    # --- configuration and enrolment -----------------------------------------------------

    def cloud_url(self) -> str:
        return self._station.settings.cloud.url

    def cloud_token(self) -> str:
        cloud = self._station.settings.cloud
        if cloud.token_file is not None:
            return cloud.token_file.read_text(encoding="utf-8").strip()
        return cloud.token.strip()

    def enrolment_request(self) -> EnrolRequest | None:
        with self._station.store.read() as tx:
            if get_sync_state(tx).enrolled:
                return None
        return EnrolRequest(
            station_id=self.station_id,
            station_keys=[
                MemberKeysWire(
                    key_id=keys.key_id,
                    encryption_key=base64.b64encode(keys.encryption_key).decode("ascii"),
                    index_key=base64.b64encode(keys.index_key).decode("ascii"),
                )
                for keys in self._station.keyring.station_keys()
            ],
        )

    def complete_enrolment(self, response: EnrolResponse) -> None:
        """Record the signing key, install the chain keys (the old ones kept aside), then
        re-seal every local member under them and record the enrolment in one transaction.

        The store notes which keys it is moving to before the files change, so a crash at
        any point is finished at the next open (`finish_rekey`) or by enrolling again.
        """
        if response.station_id != self.station_id:
            raise ValueError(
                f"the cloud enrolled station {response.station_id!r}, this is {self.station_id!r}"
            )
        wire = response.member_keys
        keys = MemberKeys(
            key_id=wire.key_id,
            encryption_key=_b64_key(wire.encryption_key, "member encryption key"),
            index_key=_b64_key(wire.index_key, "member index key"),
        )
        if len(_b64_key(response.signing_public_key, "signing key")) != 32:
            raise ValueError("the cloud's signing key is not a 32-byte Ed25519 public key")
        station = self._station
        with station.store.write() as tx:
            record_enrolment_started(
                tx, keys.key_id, response.signing_key_id, response.signing_public_key
            )
        keyring = install_chain_keys(station.settings.station.data_dir, keys)
        with station.store.write() as tx:
            station.keyring = keyring  # under the store lock: no write sees half of it
            changed = reseal_members(tx, keyring)
            record_enrolled(tx, keys.key_id, self._now())
        log.info(
            "enrolled: member data now sealed with chain key %s (%d rows re-sealed)",
            keys.key_id,
            changed,
        )

    # --- push ----------------------------------------------------------------------------

    def pending_batch(self, limit: int) -> PushRequest | None:
        with self._station.store.read() as tx:
            events = pending_batch(tx, max(1, min(limit, MAX_BATCH)))
            if not events:
                return None
            first_seq = epoch_first_seq(tx, events[0].epoch)
        return self._request(events, first_seq)

    def next_batch(self, epoch: int, after_seq: int, limit: int) -> PushRequest | None:
        with self._station.store.read() as tx:
            events = batch_after(tx, epoch, after_seq, max(1, min(limit, MAX_BATCH)))
            if not events:
                return None
            first_seq = epoch_first_seq(tx, epoch)
        return self._request(events, first_seq)

    def _request(self, events: list[OutboxEvent], first_seq: int) -> PushRequest:
        return PushRequest(
            station_id=self.station_id,
            epoch=events[0].epoch,
            epoch_first_seq=first_seq,
            events=[
                {
                    "event_id": event.event_id,
                    "seq": event.seq,
                    "epoch": event.epoch,
                    "kind": event.kind,
                    "payload": event.payload,
                    "created_at": event.created_at,
                }
                for event in events
            ],
        )

    def acknowledge(self, response: PushResponse) -> None:
        """Mark the batch as delivered, and keep what the cloud did otherwise than we booked
        (rejected, flagged, held) for `edge verify` and `edge status`, in the same commit."""
        found: list[tuple[str, int, str, str]] = []
        for result in response.results:
            reason, status = result.disagreement, result.disagreement_kind
            if reason is None or status is None:
                continue
            log.warning(
                "the cloud %s event %s (seq %d): %s", status, result.event_id, result.seq, reason
            )
            found.append((result.event_id, result.seq, status, reason))
        with self._station.store.write() as tx:
            at = self._now()
            acknowledge(tx, response.epoch, [r.seq for r in response.results], at)
            record_disagreements(tx, response.epoch, found, at)

    def rewind(self, epoch: int, expected_seq: int) -> int:
        with self._station.store.write() as tx:
            return rewind(tx, epoch, expected_seq)

    def backlog(self) -> Backlog:
        with self._station.store.read() as tx:
            pending, oldest = outbox_backlog(tx)
        return Backlog(pending=pending, oldest_created_at=oldest)

    # --- pull ----------------------------------------------------------------------------

    def changes_cursor(self) -> int:
        with self._station.store.read() as tx:
            return get_sync_state(tx).cursor

    def apply_changes(self, page: ChangesResponse) -> None:
        """Rule sets, members, the deny list, the allowance and the cursor: all or nothing.

        A rule set whose signature does not verify is refused (counted, alerted) and the
        rules in force stay; anything else malformed refuses the whole page, which leaves
        the cursor where it was so the page is fetched again.
        """
        at = self._now()
        with self._station.store.write() as tx:
            state = get_sync_state(tx)
            if state.cursor != page.cursor:
                # Another engine moved the cursor since this page was asked for: applying
                # it would move the cursor back and overwrite newer snapshots.
                raise ValueError(
                    f"changes page answers cursor {page.cursor}, the store is at {state.cursor}"
                )
            for signed in page.rulesets:
                self._install_ruleset(tx, signed, state.signing_public_key, at)
            # Merges and erasures first: they give phone indexes up to the survivors.
            for delta in page.members:
                if delta.status != "active":
                    self._apply_gone_member(tx, delta, at)
            for delta in page.members:
                if delta.status == "active":
                    self._apply_active_member(tx, delta, at)
            for entry in page.deny:
                if entry.denied:
                    set_denied(tx, entry.member_id, entry.overdraft, at)
                else:
                    clear_denied(tx, entry.member_id)
            if page.allowance is not None:
                allowance = page.allowance
                _aware(allowance.expires_at, "allowance.expires_at")
                put_allowance(
                    tx,
                    AllowanceRow(
                        allowance_id=allowance.allowance_id,
                        points=allowance.points,
                        per_member_cap=allowance.per_member_cap,
                        expires_at=allowance.expires_at,
                        max_snapshot_age_s=allowance.max_snapshot_age_s,
                        received_at=at,
                    ),
                )
            set_offline_redemption(tx, page.offline_redemption)
            set_cursor(tx, page.next_cursor)

    def _install_ruleset(
        self, tx: Tx, signed: SignedRuleSet, public_key: str | None, at: str
    ) -> None:
        try:
            if public_key is None:
                raise SignatureError("no rule-signing key: the station is not enrolled")
            verify_document(public_key, signed.document, signed.signature)
            install_ruleset_in(
                tx,
                signed.document,
                actor="system:cloud",
                at=at,
                source=_CLOUD,
                signature=signed.signature,
            )
        except (SignatureError, ServiceError) as exc:
            reason = f"rule set {signed.version} refused: {exc}"
            log.error("%s; the rules in force stay", reason)
            count_refused_ruleset(tx, reason)
            set_alert(tx, "rules_refused", reason, at)

    def _snapshot(self, tx: Tx, delta: MemberDelta, at: str) -> None:
        lots = []
        for lot in delta.lots:
            if lot.expires_at is not None:
                _aware(lot.expires_at, f"member {delta.member_id}: lot expiry")
            lots.append(SnapshotLot(lot.points, lot.expires_at))
        put_snapshot(
            tx,
            MemberSnapshot(
                member_id=delta.member_id,
                lots=tuple(lots),
                overdraft=delta.overdraft,
                as_of_epoch=delta.as_of_epoch,
                as_of_seq=delta.as_of_seq,
                received_at=at,
            ),
        )

    def _new_row(self, delta: MemberDelta, *, status: str, merged_into: str | None) -> MemberRow:
        registered_at, registered_ms = _registered_at(delta)
        return MemberRow(
            member_id=delta.member_id,
            phone_index=delta.phone_index if status == "active" else None,
            phone_sealed=delta.phone_sealed,
            phone_masked=delta.phone_masked,
            name_sealed=delta.name_sealed,
            registered_at=registered_at,
            registered_at_ms=registered_ms,
            registered_station=_CLOUD,
            consent_at=registered_at,
            consent_channel=_CLOUD,
            tier=delta.tier or "",
            tier_since=None,
            status=status,
            merged_into=merged_into,
        )

    def _upsert(self, tx: Tx, row: MemberRow, at: str) -> None:
        existing = get_member(tx, row.member_id)
        if existing is None:
            insert_member(tx, row)
            return
        tier = row.tier or existing.tier
        update_member_from_cloud(
            tx,
            replace(
                existing,
                phone_index=row.phone_index,
                phone_sealed=row.phone_sealed,
                phone_masked=row.phone_masked,
                name_sealed=row.name_sealed,
                tier=tier,
                tier_since=existing.tier_since if tier == existing.tier else at,
                status=row.status,
                merged_into=row.merged_into,
            ),
        )

    def _apply_gone_member(self, tx: Tx, delta: MemberDelta, at: str) -> None:
        existing = get_member(tx, delta.member_id)
        if delta.status == "erased":
            if existing is not None:
                erase_member_data(tx, delta.member_id)
                delete_snapshot(tx, delta.member_id)
            return
        if delta.merged_into is None or delta.merged_into == delta.member_id:
            raise ValueError(f"member {delta.member_id} is merged into no other member")
        self._upsert(tx, self._new_row(delta, status="merged", merged_into=delta.merged_into), at)
        delete_snapshot(tx, delta.member_id)

    def _apply_active_member(self, tx: Tx, delta: MemberDelta, at: str) -> None:
        if delta.phone_index is None or delta.phone_sealed is None:
            raise ValueError(f"active member {delta.member_id} comes without a phone")
        holder = member_by_phone_index(tx, delta.phone_index)
        if holder is not None and holder.member_id != delta.member_id:
            # One phone, two members: a registration here the cloud has not merged yet.
            # The chain's rule decides now what the cloud will: the smallest id survives.
            if delta.member_id < holder.member_id:
                release_phone_index(tx, holder.member_id, delta.member_id)
            else:
                row = self._new_row(delta, status="merged", merged_into=holder.member_id)
                self._upsert(tx, row, at)
                self._snapshot(tx, delta, at)
                return
        self._upsert(tx, self._new_row(delta, status="active", merged_into=None), at)
        for plate in delta.plates:
            if plate_owner(tx, plate.plate_index) != delta.member_id:
                set_plate_owner(
                    tx, PlateRow(plate.plate_index, delta.member_id, plate.plate_sealed, at)
                )
        self._drop_removed_plates(tx, delta)
        self._snapshot(tx, delta, at)

    def _drop_removed_plates(self, tx: Tx, delta: MemberDelta) -> None:
        """The chain's list of the member's plates is the whole list (a member removes one
        in the app): plates held here and not in it go, except those attached here after
        what the cloud had seen (`as_of`), which it will hear of at the next push."""
        listed = {plate.plate_index for plate in delta.plates}
        stale = [p for p in plates_of(tx, delta.member_id) if p.plate_index not in listed]
        if not stale:
            return
        unseen = {
            event.payload.get("plate_index")
            for event in member_events_after(
                tx, [delta.member_id], delta.as_of_epoch, delta.as_of_seq
            )
            if event.kind == "plate.attached"
        }
        for plate in stale:
            if plate.plate_index not in unseen:
                remove_plate(tx, plate.plate_index, delta.member_id)

    # --- health --------------------------------------------------------------------------

    def record_contact(self, at: str) -> None:
        with self._station.store.write() as tx:
            set_last_contact(tx, at)

    def record_alert(self, code: str, detail: str) -> None:
        if code:
            log.error("sync alert %s: %s", code, detail)
        with self._station.store.write() as tx:
            set_alert(tx, code, detail, self._now())


def build_engine(
    station: Station,
    *,
    transport: httpx.BaseTransport | None = None,
    timeout: float = 10.0,
) -> SyncEngine:
    """A sync engine for this station; `transport` replaces the network (tests, tools)."""

    def client(url: str, token: Callable[[], str]) -> CloudClient:
        return CloudClient(url, token, transport=transport, timeout=timeout)

    return SyncEngine(StationSyncPort(station), client, clock=station.now)


def sync_once(station: Station, *, transport: httpx.BaseTransport | None = None) -> CycleResult:
    """One push+pull cycle now (`loyalpump edge sync`)."""
    return build_engine(station, transport=transport).run_cycle()
