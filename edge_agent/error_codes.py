"""Every error code the station can answer, declared once: its HTTP status and message key.

A `ServiceError`, a `WebError`, an `IdentityError` or a `RedemptionRefused` carries one of
these codes; the cashier page answers it with the status declared here and the text of
its message key (`err.<code>` in `edge_agent/web/i18n.py`, zh-CN and English). Codes only
the CLI raises are declared too (with the status they would get), so a code is never
invented at the raise site: `tests/web/test_error_catalogue.py` scans the source and fails
on a literal code that is not declared here, or raised with another status.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

from cloud_sync.core.catalogue import UNDECLARED_STATUS, index_codes, status_in

__all__ = [
    "BILL_CODES",
    "CATALOGUE",
    "MANUAL_SALE_CODES",
    "UNDECLARED_STATUS",
    "ErrorCode",
    "declared",
    "status_of",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ErrorCode:
    """One refusal: the stable `code`, its HTTP `status`, and the i18n key of its text."""

    code: str
    status: int
    message_key: str

    @property
    def family(self) -> str:
        return self.code.split(".", 1)[0]


def _codes(status: int, *codes: str) -> list[ErrorCode]:
    return [ErrorCode(code, status, f"err.{code}") for code in codes]


# What a manual sale entry can be refused for (the page's form and the API document them).
MANUAL_SALE_CODES: Final = (
    "sale.pump",
    "sale.grade",
    "sale.litres",
    "sale.amount",
    "sale.unit_price",
    "sale.actor",
    # the sanity limits of services/sale_limits.py (texts with values: edge_agent/reasons.py)
    "sale.pump_range",
    "sale.nozzle_range",
    "sale.grade_unknown",
    "sale.litres_range",
    "sale.price_band",
    "sale.price_recent",
    "sale.amount_mismatch",
    "sale.ended_future",
    "sale.ended_old",
)

# What a redemption against a bill adds to a redemption's refusals.
BILL_CODES: Final = ("bill.amount", "bill.litres", "bill.one_source", "bill.other_member")

_ALL: Final = [
    # -- the front door and the session (edge_agent/web) --
    *_codes(400, "request.bad_host"),
    *_codes(401, "auth.required", "login.failed"),
    *_codes(403, "auth.forbidden", "csrf.invalid", "request.cross_site", "detach.not_yours"),
    *_codes(404, "http.404"),
    *_codes(405, "http.405"),
    *_codes(413, "request.too_large"),
    *_codes(422, "request.invalid"),
    *_codes(429, "login.rate_limited", "login.busy", "search.rate_limited"),
    # -- things that do not exist --
    *_codes(404, "member.not_found", "sale.not_found", "disagreement.not_found"),
    # -- the request clashes with what the store holds --
    *_codes(
        409,
        "member.exists",
        "plate.taken",
        "sale.already_attached",
        "sale.reversed",
        "sale.attach_window",
        "points.insufficient",
        "points.balance",
        "redeem.conflict",
        "redeem.over_bill",
        "bill.other_member",
        "adjust.conflict",
        "sale.key_conflict",
        "rules.none",
        "rules.version_taken",
        "rules.cloud_managed",
        "user.exists",
        # the till (services/till.py, detach.py, receipts.py)
        "detach.not_attached",
        "detach.member_changed",
        "detach.window",
        "detach.undo_window",
        "detach.conflict",
        "printer.none",
        "receipt.no_member",
    ),
    # -- the request itself is not acceptable --
    *_codes(
        422,
        "consent.required",
        "limit",
        "sales.cursor",
        "reason.required",
        "reason.too_long",
        "adjust.points",
        "bill.amount",
        "bill.litres",
        "bill.one_source",
        "member.name_too_long",
        "member.identifier_missing",
        *MANUAL_SALE_CODES,
        "rules.invalid",
        "rules.file",
        "user.name",
        "user.role",
        "user.pin",
        # identity (cloud_sync.core.identity.IdentityError)
        "phone.empty",
        "phone.letters",
        "phone.characters",
        "phone.length",
        "phone.invalid",
        "phone.country",
        "plate.empty",
        "plate.format",
        "plate.province",
        "plate.letter",
        "plate.io",
        "identifier.empty",
        "identifier.unrecognised",
        # redemption (cloud_sync.core.ruleset.RedemptionRefused and the offline policy)
        "redeem.not_positive",
        "redeem.min_points",
        "redeem.not_whole_fen",
        "redeem.no_allowance",
        "redeem.allowance_spent",
        "redeem.member_cap",
        "redeem.snapshot_stale",
        "redeem.denied",
        "redeem.offline_off",
        # the till's search and receipts
        "search.too_many",
        "receipt.kind",
    ),
    *_codes(404, "redemption.not_found"),
    *_codes(503, "printer.unreachable"),
    # -- only the CLI and the daemon raise these (the store and its files, the listener) --
    *_codes(
        422,
        "backup.keep",
        "backup.corrupt",
        "store.corrupt",
        "store.uninitialised",
        "store.station_mismatch",
        "restore.backup_missing",
        "restore.same_file",
        "restore.backup_corrupt",
        "restore.store_healthy",
        "restore.no_backup",
        "restore.agent_running",
        "restore.other_station",
        "web.host",
        "web.port",
        "web.tls",
    ),
]

CATALOGUE: Final[dict[str, ErrorCode]] = index_codes(_ALL)


def declared(code: str) -> ErrorCode | None:
    return CATALOGUE.get(code)


def status_of(code: str) -> int:
    """The HTTP status of `code` (422, logged, for an undeclared one)."""
    return status_in(CATALOGUE, code, log)
