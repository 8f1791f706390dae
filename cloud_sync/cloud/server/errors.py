"""Every error code the cloud can answer, declared once, with its HTTP status.

Every refusal is a `cloud_sync.core.wire.Problem` (`{error, detail}`, plus `expected_seq`/`epoch`
on a sequence gap and `event_id` on a conflict). `error` is one of the codes below; the
status is the one declared here, whoever raises it (an `ApiProblem` in a route or the gate,
a `LedgerError` or an `IdentityError` from the ledger). `detail` is one English line for the
operator; the stations and HQ tools act on `error` alone. `summary` is what the OpenAPI
document says about the code. `tests/cloud/server/test_error_catalogue.py` scans the source
and fails on a literal code that is not declared here, or raised with another status.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from cloud_sync.core.catalogue import UNDECLARED_STATUS, index_codes, status_in
from cloud_sync.core.wire import Problem

__all__ = [
    "CATALOGUE",
    "GATE_CODES",
    "IDENTITY_CODES",
    "UNDECLARED_STATUS",
    "CloudErrorCode",
    "declared",
    "error_responses",
    "status_of",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CloudErrorCode:
    code: str
    status: int
    summary: str


def _codes(status: int, **codes: str) -> list[CloudErrorCode]:
    return [CloudErrorCode(code.replace("__", "."), status, text) for code, text in codes.items()]


_ALL: Final = [
    *_codes(
        401,
        unauthorized="no bearer token, or an unknown or revoked one",
        login__failed="the HQ user name or password is wrong, or the login is disabled",
        member_app__otp_wrong="the sign-in code is wrong (`tries_left` says how many remain)",
        member_app__otp_expired="no live sign-in code for the phone (expired, used or never sent)",
    ),
    *_codes(
        403,
        forbidden="the token may not call this route, or names another station",
        csrf="a change made with an HQ session lacks the session's CSRF token",
        rules__self_approval="the drafter of a rule set never approves it (maker-checker)",
    ),
    *_codes(
        404,
        not_found="no such route or record",
        station__unknown="no station with that id is enrolled",
        adjustment__unknown="no adjustment from that event",
        user__unknown="no HQ user with that name",
        rules__draft_unknown="no rule-set draft with that id",
        backtest__unknown="no backtest with that id",
        member__unknown="no such member",
        invoice__unknown="no invoice request with that id",
    ),
    *_codes(405, method_not_allowed="the route does not take this method"),
    *_codes(
        409,
        sequence_gap="the batch does not start where the cloud expects (see expected_seq)",
        event_conflict="an event id was already stored with other content (see event_id)",
        rules__version_taken="that rule set version is published already",
        adjustment__decided="the adjustment was approved or declined already",
        adjustment__member_gone="the adjustment's member was erased: nothing to book it to",
        station__exists="a station with that id exists already",
        station__revoked="the station's token is revoked already",
        keys__conflict="those member keys clash with keys the cloud holds",
        user__exists="an HQ user with that name exists already",
        user__last_admin="the last active admin cannot be demoted or disabled",
        rules__draft_published="the draft is published already",
        rules__draft_changed="the draft changed since it was read (or while being signed)",
        rules__not_approved="the draft needs an approval of its current text",
        rules__backtest_needed="the draft needs a backtest of its current text",
        backtest__running="a backtest of this draft is running",
        member__request_reused="that request id was used for another adjustment",
        member__erased="the member was erased",
        member__merged="the member was merged into another: act on that one",
        member_app__plate_taken="that plate belongs to another member (whose is not said)",
        member_app__plate_limit="a member keeps at most 5 plates in the app",
        member_app__consent_required="the phone is no member: sign up with consent: true",
        member_app__checkin_off="check-in is not offered by the rules in force",
        member_app__checked_in="the member has checked in today already (the day's record)",
        member_app__invoice_exists="the sale has a request with other details, or another member's",
        member_app__sale_reversed="the sale was reversed: nothing to invoice",
        member_app__feedback_exists="the member gave other feedback on this sale already",
        invoice__decided="the invoice request was issued or rejected already",
        invoice__sale_changed="the request's sale was reversed or is no longer the requester's",
    ),
    *_codes(413, too_large="the request body is over the limit"),
    *_codes(
        422,
        invalid="the request does not match its schema (detail names the field)",
        partitions__none="events are not partitioned here (`cloud db partitions`; no route)",
        partitions__cutoff="a detach cutoff is a month's first day (`cloud db partitions`)",
        partitions__too_recent="those events are kept: a station may still send them (CLI)",
        rules__invalid="the rule set document is not valid",
        rules__unsigned="a rule set is published with its signature",
        rules__actor="a person's name is 1 to 64 characters",
        backtest__window="the backtest's window or station is unusable",
        batch__invalid="the batch's epochs or sequence numbers are unusable",
        station__mismatch="an event of another station",
        station__invalid="a station id is 1 to 32 letters, digits, '-' or '_'",
        station__name="a station name is at most 64 characters, without control characters",
        station__filter="the stations list's health, sort or search is out of range",
        changes__cursor="the changes cursor is never negative",
        changes__limit="the changes page size is out of range",
        member__identifier="give exactly one of a phone number or a plate",
        phone__empty="the phone number is empty",
        phone__letters="a phone number has no letters",
        phone__characters="a phone number has only digits, spaces and dashes",
        phone__length="not a mainland mobile number",
        phone__invalid="not a mainland mobile number",
        phone__country="only mainland China (+86) mobile numbers",
        plate__empty="the plate is empty",
        plate__format="not a valid plate",
        plate__province="a plate starts with a province abbreviation",
        plate__letter="a plate's second character is a letter",
        plate__io="plates never use I or O",
        identifier__empty="enter a phone number or a plate",
        identifier__unrecognised="neither a phone number nor a plate",
        user__name="an HQ user name is 1-32 letters, digits, '.', '_' or '-'",
        user__role="an HQ role is admin, marketer or auditor",
        user__password="an HQ password is 10 to 256 characters, no spaces at either end",  # noqa: S106
        member__query="enter a phone number, a plate or a member id",
        member__adjust_points="an HQ adjustment is 1 to 1,000,000 points, either sign",
        member__adjust_reason="an HQ adjustment needs a reason",
        member__request_id="the adjustment's request id is 8 to 64 letters, digits, - or _",
        member__confirm="type the member's masked phone to confirm the erasure",
        import__file="the member sheet is unusable as a whole (format, size, header)",
        import__rows="the member sheet has bad rows: nothing was imported",
        report__range="a report's range: dates YYYY-MM-DD, from not after to, at most 366 days",
        report__station="a report's station is an enrolled station's id ('' for HQ's own)",
        timezone__unknown="not a time zone name (IANA, e.g. Asia/Shanghai)",
        station__location="coordinates are decimal degrees: lat -90..90, lng -180..180, 6 places",
        station__address="a station address is 1 to 200 characters, no control characters",
        member_app__cursor="the page cursor is not one this list gave out",
        member_app__location="send both lat and lng (decimal degrees) or neither",
        member_app__name="a member's name is at most 40 characters, without control characters",
        member_app__buyer_name="an invoice's buyer name is 1 to 100 characters",
        member_app__tax_id="not a unified social credit code (18 characters, check character)",
        member_app__email="not an email address (at most 254 characters)",
        member_app__rating="a rating is 1 to 5",
        member_app__comment="a comment is at most 500 characters, no control characters",
        member_app__station_mismatch="the sale was made at another station than the one named",
        invoice__filter="the invoice queue's status or cursor is unusable",
        invoice__number="an invoice number is 8 to 40 letters, digits or '-'",
        invoice__reason="a rejection needs a reason of 1 to 200 characters",
    ),
    *_codes(
        429,
        login__throttled="too many sign-in attempts; retry after the given seconds",
        member_app__export_throttled="one data export per member a minute",
        member_app__otp_throttled="too many codes for the phone or the address (Retry-After)",
        member_app__session_throttled="too many wrong codes from the address (Retry-After)",
        member_app__feedback_limit="the member's feedback for today is used up",
        member_app__plate_throttled="at most 10 plate adds per member a day (Retry-After)",
    ),
    *_codes(
        503,
        unavailable="the ledger database is unreachable",
        schema__missing="the database holds no ledger",
        schema__newer="the ledger database is newer than this program",
        database__unsupported="the configured database is not supported",
        login__busy="every password check is busy; retry in a moment",
        busy="every database connection of the service is in use; retry after Retry-After",
        member_app__gateway_unavailable="the sign-in code could not be sent; retry later",
    ),
]

CATALOGUE: Final[dict[str, CloudErrorCode]] = index_codes(_ALL)


def declared(code: str) -> CloudErrorCode | None:
    return CATALOGUE.get(code)


def status_of(code: str) -> int:
    """The HTTP status of `code` (422, logged, for an undeclared one)."""
    return status_in(CATALOGUE, code, log)


_STATUS_TEXT: Final = {
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Request body too large",
    422: "Invalid request",
    429: "Too many requests",
    503: "Ledger database unreachable",
}


IDENTITY_CODES: Final = tuple(
    code for code in CATALOGUE if code.startswith(("phone.", "plate.", "identifier."))
)
GATE_CODES: Final = ("unauthorized", "forbidden", "unavailable")
"""What the gate answers before any /api route runs (no token, wrong token, database down)."""


def error_responses(*codes: str, body: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a route: the gate's refusals, `invalid` (422), `too_large`
    (413) when it takes a body, and `codes`; one `Problem` body per status, naming its codes."""
    chosen = [*GATE_CODES, "invalid", *(["too_large"] if body else []), *codes]
    by_status: dict[int, list[CloudErrorCode]] = {}
    for code in dict.fromkeys(chosen):
        entry = CATALOGUE[code]  # KeyError: an undeclared code in a route's documentation
        by_status.setdefault(entry.status, []).append(entry)
    answer: dict[int | str, dict[str, Any]] = {}
    for status in sorted(by_status):
        lines = "; ".join(f"`{entry.code}`: {entry.summary}" for entry in by_status[status])
        answer[status] = {
            "model": Problem,
            "description": f"{_STATUS_TEXT.get(status, 'Refused')}. {lines}",
        }
    return answer
