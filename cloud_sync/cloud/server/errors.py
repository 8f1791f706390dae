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
    *_codes(401, unauthorized="no bearer token, or an unknown or revoked one"),
    *_codes(
        403,
        forbidden="the token may not call this route, or names another station",
    ),
    *_codes(
        404,
        not_found="no such route or record",
        station__unknown="no station with that id is enrolled",
        adjustment__unknown="no adjustment from that event",
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
        keys__conflict="those member keys clash with keys the cloud holds",
    ),
    *_codes(413, too_large="the request body is over the limit"),
    *_codes(
        422,
        invalid="the request does not match its schema (detail names the field)",
        rules__invalid="the rule set document is not valid",
        rules__unsigned="a rule set is published with its signature",
        batch__invalid="the batch's epochs or sequence numbers are unusable",
        station__mismatch="an event of another station",
        station__invalid="a station id is 1 to 32 letters, digits, '-' or '_'",
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
        report__range="a report's range: dates YYYY-MM-DD, from not after to, at most 366 days",
        report__station="a report's station is an enrolled station's id ('' for HQ's own)",
        timezone__unknown="not a time zone name (IANA, e.g. Asia/Shanghai)",
    ),
    *_codes(
        503,
        unavailable="the ledger database is unreachable",
        schema__missing="the database holds no ledger",
        schema__newer="the ledger database is newer than this program",
        database__unsupported="the configured database is not supported",
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
