"""The chain's ledger: stations' events applied exactly once, double-entry points, lots,
overdrafts, merges, rule sets, the changes feed and redemption allowances.

SQLAlchemy Core over SQLite (one file, the default) or PostgreSQL (psycopg 3); the same
code and the same tests run on both. docs/sync.md is the design this implements.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection

from cloud_sync.core.privacy import MemberKeys
from cloud_sync.core.wire import ChangesResponse, PushRequest, PushResponse

from . import allowances as _allowances
from . import partitions as _partitions
from . import reports as _reports
from . import review as _review
from . import stations as _stations
from .allowances import AllowancePolicy
from .apply import push as _push
from .changes import append_changes, changes_page
from .database import Database, PoolSize
from .errors import EventConflict, LedgerError, SequenceGap
from .expiry import expire_some
from .keys import KeyRing
from .rulesets import RuleBook, RuleLookup, list_rulesets
from .rulesets import publish as _publish
from .trust import StationLimits, TrustPolicy
from .views import find_member as _find_member
from .views import member_view

__all__ = [
    "AllowancePolicy",
    "CloudLedger",
    "EventConflict",
    "LedgerError",
    "PoolSize",
    "SequenceGap",
    "StationLimits",
    "TrustPolicy",
]


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"the ledger needs timezone-aware times, got {moment.isoformat()}")
    return moment


class CloudLedger:
    """One open ledger database; thread-safe (each call is its own transaction)."""

    def __init__(
        self,
        db: Database,
        chain_keys: MemberKeys,
        policy: AllowancePolicy,
        trust: TrustPolicy | None = None,
    ) -> None:
        self._db = db
        self._keys = chain_keys
        self._policy = policy
        self._trust = trust if trust is not None else TrustPolicy()
        self._rules = RuleBook()

    @classmethod
    def open(
        cls,
        url: str,
        *,
        chain_keys: MemberKeys,
        policy: AllowancePolicy = AllowancePolicy(),  # noqa: B008 - frozen, shared safely
        trust: TrustPolicy | None = None,
        create: bool = True,
        pool: PoolSize | None = None,
    ) -> CloudLedger:
        """Open (and create or migrate) the ledger at a SQLAlchemy URL; `pool` sizes a
        PostgreSQL connection pool (per process)."""
        return cls(Database.open(url, create=create, pool=pool), chain_keys, policy, trust)

    def close(self) -> None:
        self._db.close()

    @property
    def dialect(self) -> str:
        return self._db.dialect

    @property
    def db(self) -> Database:
        """The database, for the HQ console's own modules (reports, drafts, users, audit)."""
        return self._db

    @property
    def chain_keys(self) -> MemberKeys:
        return self._keys

    @property
    def rules(self) -> RuleBook:
        """The published rule sets, parsed once: the backtest prices with the same code."""
        return self._rules

    # ------------------------------------------------------------------ stations

    def add_station(self, station_id: str, name: str | None, now: datetime) -> str:
        """Enrol a station; returns its bearer token, which is never shown again."""
        return self._db.transact(
            lambda conn: _stations.add_station(conn, station_id, name, _aware(now))
        )

    def rotate_token(self, station_id: str) -> str:
        return self._db.transact(lambda conn: _stations.rotate_token(conn, station_id))

    def station_for_token(self, token: str) -> str | None:
        return self._db.read(lambda conn: _stations.station_for_token(conn, token))

    def stations(self) -> list[dict[str, Any]]:
        return self._db.read(_stations.list_stations)

    def enrol(self, station_id: str, station_keys: Sequence[MemberKeys], now: datetime) -> None:
        """Keep the keys a station sealed members with before it had the chain's."""
        self._db.transact(
            lambda conn: _stations.enrol_station(
                conn, self._keys, station_id, station_keys, _aware(now)
            )
        )

    # ------------------------------------------------------------------ sync

    def push(self, station_id: str, request: PushRequest, now: datetime) -> PushResponse:
        return _push(
            self._db, self._keys, self._rules, station_id, request, _aware(now), self._trust
        )

    def changes(self, station_id: str, since: int, limit: int, now: datetime) -> ChangesResponse:
        return self._db.transact(
            lambda conn: changes_page(conn, station_id, since, limit, self._policy, _aware(now)),
            snapshot=True,
        )

    # ------------------------------------------------------------------ rules and policy

    def publish_ruleset(
        self, document: str, signature: str, signing_key_id: str, now: datetime
    ) -> int:
        """Store a signed rule set for every station; the same text again is a no-op."""

        def work(conn: Connection) -> int:
            version, created = _publish(conn, document, signature, signing_key_id, _aware(now))
            if created:
                append_changes(self._db, conn, [("ruleset", str(version))], now)
            return version

        return self._db.transact(work)

    def rulesets(self) -> list[dict[str, Any]]:
        return self._db.read(list_rulesets)

    def set_offline_redemption(self, enabled: bool, now: datetime) -> None:
        _aware(now)
        self._db.transact(lambda conn: _allowances.set_offline_redemption(conn, enabled))

    def offline_redemption(self) -> bool:
        return self._db.read(_allowances.get_offline_redemption)

    # ------------------------------------------------------------------ members

    def member(self, member_id: str, now: datetime) -> dict[str, Any] | None:
        """The chain's view of a member (a merged id shows its survivor); None if unknown."""
        return self._db.read(lambda conn: member_view(conn, self._keys, member_id, _aware(now)))

    def find_member(
        self, *, phone: str | None = None, plate: str | None = None, now: datetime
    ) -> dict[str, Any] | None:
        return self._db.read(
            lambda conn: _find_member(conn, self._keys, phone=phone, plate=plate, now=_aware(now))
        )

    def expire_lots(self, now: datetime) -> int:
        """Book expiry journals for lots past their date by more than the policy's offline
        grace (a late offline redemption may still spend them); returns the points expired."""
        _aware(now)
        grace = self._policy.offline_grace
        total = 0
        while True:
            points, more = self._db.transact(lambda conn: expire_some(self._db, conn, now, grace))
            total += points
            if not more:
                return total

    def keep_partitions(self, now: datetime) -> list[str]:
        """Make the events partitions of the months ahead (PostgreSQL); the names made."""
        return self._db.transact(lambda conn: _partitions.keep_partitions(conn, _aware(now)))

    def event_partitions(self) -> list[_partitions.Partition]:
        """The events partitions, oldest first (empty on SQLite: one table)."""
        return self._db.read(_partitions.partitions)

    def detach_event_partitions(
        self, before: date, now: datetime, keep_months: int = _partitions.KEEP_MONTHS
    ) -> list[_partitions.Partition]:
        """Detach the months of events that end by `before` (partitions.detach_before)."""
        return self._db.transact(
            lambda conn: _partitions.detach_before(conn, before, _aware(now), keep_months)
        )

    # ------------------------------------------------------------------ reports

    def variance_report(self) -> list[dict[str, Any]]:
        return self._db.read(_reports.variance_report)

    # ------------------------------------------------------------------ station trust

    def review_list(self) -> list[dict[str, Any]]:
        """Stations with open flags, a suspension or adjustments waiting for HQ."""
        return self._db.read(_review.review_list)

    def station_flags(
        self, station_id: str | None = None, *, open_only: bool = False, limit: int = 100
    ) -> list[dict[str, Any]]:
        return self._db.read(
            lambda conn: _review.list_flags(conn, station_id, open_only=open_only, limit=limit)
        )

    def set_station_suspended(
        self, station_id: str, *, suspended: bool, by: str, reason: str | None, now: datetime
    ) -> dict[str, Any]:
        """Suspend a station's offline redemption, or lift it (resolving its flags)."""
        return self._db.transact(
            lambda conn: _review.set_suspended(
                conn, station_id, suspended=suspended, by=by, reason=reason, now=_aware(now)
            )
        )

    def adjustments(self, status: str | None = "pending", limit: int = 100) -> list[dict[str, Any]]:
        return self._db.read(lambda conn: _review.list_adjustments(conn, status, limit))

    def decide_adjustment(
        self, event_id: str, *, approve: bool, by: str, note: str | None, now: datetime
    ) -> dict[str, Any]:
        """Book a held adjustment as the station asked (approve), or never (decline)."""

        def work(conn: Connection) -> dict[str, Any]:
            keys = KeyRing(self._keys, dict)
            return _review.decide_adjustment(
                self._db,
                conn,
                keys,
                RuleLookup(self._rules, conn),
                event_id,
                approve=approve,
                by=by,
                note=note,
                policy=self._trust,
                now=_aware(now),
            )

        return self._db.transact(work)

    def quarantined(self, limit: int = 100) -> list[dict[str, Any]]:
        return self._db.read(lambda conn: _reports.quarantined(conn, limit))

    def totals(self) -> dict[str, int]:
        return self._db.read(_reports.totals)

    def ledger_problems(self) -> list[str]:
        """Every broken invariant of docs/sync.md, one sentence each; [] when healthy."""
        return self._db.read(
            _reports.ledger_problems,
        )
