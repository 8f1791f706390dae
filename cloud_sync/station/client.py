"""The station's HTTP client for the cloud ledger.

Every failure becomes one of a few typed exceptions, because the sync engine's only job is
to decide between "try again later", "rewind", "stop and alert" and "send less": it must
never have to read status codes or bodies itself. The bearer token is read afresh for each
request (token files are rotated) and never appears in an exception or a log line.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from cloud_sync.core.wire import (
    ChangesResponse,
    EnrolRequest,
    EnrolResponse,
    Problem,
    PushRequest,
    PushResponse,
)

__all__ = [
    "CHANGES_PATH",
    "ENROL_PATH",
    "EVENTS_PATH",
    "CloudClient",
    "SyncAuth",
    "SyncConflict",
    "SyncError",
    "SyncGap",
    "SyncRejected",
    "SyncRetry",
]

ENROL_PATH = "/api/v1/sync/enrol"
EVENTS_PATH = "/api/v1/sync/events"
CHANGES_PATH = "/api/v1/sync/changes"

_RETRY_STATUSES = frozenset({408, 429})
_AUTH_STATUSES = frozenset({401, 403})
_DETAIL_MAX = 300
_RETRY_AFTER_MAX = 3600.0

_M = TypeVar("_M", bound=BaseModel)


class SyncError(Exception):
    """Base of every classified failure of a call to the cloud."""


class SyncRetry(SyncError):
    """Transient: the network, an overloaded or broken server, an unreadable answer.

    `retry_after` is the server's Retry-After in seconds, when it sent one.
    """

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class SyncGap(SyncError):
    """The cloud misses events before this batch: resend `epoch` from `expected_seq`."""

    def __init__(self, epoch: int, expected_seq: int) -> None:
        super().__init__(f"sequence gap: the cloud expects seq {expected_seq} of epoch {epoch}")
        self.epoch = epoch
        self.expected_seq = expected_seq


class SyncConflict(SyncError):
    """One event id carries two different facts: an operator must look."""

    def __init__(self, event_id: str | None, detail: str) -> None:
        super().__init__(f"event conflict ({event_id or 'unknown event'}): {detail}")
        self.event_id = event_id
        self.detail = detail


class SyncAuth(SyncError):
    """The cloud refused the station's credentials (401/403) or there are none to send."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"not authorised: {detail}")
        self.detail = detail


class SyncRejected(SyncError):
    """The request itself is wrong (400, 413, 422, other 4xx); resending it unchanged fails
    again. `status` is 0 when no HTTP exchange happened (a malformed cloud URL)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"rejected (HTTP {status}): {detail}" if status else detail)
        self.status = status
        self.detail = detail


class CloudClient:
    """Calls the cloud's sync endpoints; one `httpx.Client` (and its connection pool)."""

    def __init__(
        self,
        base_url: str,
        token_source: Callable[[], str],
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._token_source = token_source
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            transport=transport,
            timeout=timeout,
            headers={"Accept": "application/json", "User-Agent": "loyalpump-station"},
            follow_redirects=False,
        )

    def __enter__(self) -> CloudClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def enrol(self, request: EnrolRequest) -> EnrolResponse:
        return self._call("POST", ENROL_PATH, EnrolResponse, body=request.model_dump_json())

    def push(self, request: PushRequest) -> PushResponse:
        return self._call(
            "POST", EVENTS_PATH, PushResponse, body=request.model_dump_json(), epoch=request.epoch
        )

    def changes(self, since: int, limit: int) -> ChangesResponse:
        return self._call(
            "GET", CHANGES_PATH, ChangesResponse, params={"since": since, "limit": limit}
        )

    def _token(self) -> str:
        try:
            token = self._token_source()
        except (OSError, ValueError) as exc:
            raise SyncAuth(f"cannot read the station token ({type(exc).__name__})") from None
        token = token.strip()
        if not token:
            raise SyncAuth("no station token configured")
        if not token.isprintable() or any(ch.isspace() for ch in token):
            raise SyncAuth("the station token is malformed")
        return token

    def _call(
        self,
        method: str,
        path: str,
        model: type[_M],
        *,
        body: str | None = None,
        params: dict[str, int] | None = None,
        epoch: int | None = None,
    ) -> _M:
        token = self._token()
        headers = {"Authorization": f"Bearer {token}", "Cache-Control": "no-cache"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = self._http.request(
                method,
                path,
                content=body.encode("utf-8") if body is not None else None,
                params=params,
                headers=headers,
            )
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise SyncRejected(0, f"the cloud URL is not usable: {exc}") from None
        except httpx.HTTPError as exc:
            raise SyncRetry(f"{type(exc).__name__}: {_scrub(str(exc), token)}") from None
        return _classify(response, model, token, epoch)


def _classify(response: httpx.Response, model: type[_M], token: str, epoch: int | None) -> _M:
    status = response.status_code
    if 200 <= status < 300:
        try:
            return model.model_validate_json(response.content)
        except ValidationError:
            raise SyncRetry(
                f"HTTP {status} with a body that is not a valid {model.__name__}"
            ) from None
    if status >= 500 or status in _RETRY_STATUSES:
        raise SyncRetry(
            f"HTTP {status}: {_detail(response, token)}", retry_after=_retry_after(response)
        )
    if status in _AUTH_STATUSES:
        raise SyncAuth(f"HTTP {status}: {_detail(response, token)}")
    if status == 409:
        raise _conflict(response, token, epoch)
    raise SyncRejected(status, _detail(response, token))


def _conflict(response: httpx.Response, token: str, epoch: int | None) -> SyncError:
    """A 409 only means something with its Problem body; without one it is not understood."""
    problem = _problem(response)
    if problem is None:
        return SyncRetry("HTTP 409 without a readable problem body")
    if problem.error == "sequence_gap":
        gap_epoch = problem.epoch if problem.epoch is not None else epoch
        if problem.expected_seq is None or gap_epoch is None:
            return SyncRetry("HTTP 409 sequence_gap without expected_seq and epoch")
        return SyncGap(gap_epoch, problem.expected_seq)
    if problem.error == "event_conflict":
        return SyncConflict(problem.event_id, _scrub(problem.detail, token))
    return SyncRejected(409, _scrub(f"{problem.error}: {problem.detail}", token))


def _problem(response: httpx.Response) -> Problem | None:
    try:
        return Problem.model_validate_json(response.content)
    except ValidationError:
        return None


def _detail(response: httpx.Response, token: str) -> str:
    """The Problem's words when there is one, else the start of whatever came back."""
    problem = _problem(response)
    if problem is not None:
        text = f"{problem.error}: {problem.detail}"
    else:
        text = response.reason_phrase or "no readable body"
    return _scrub(text, token)[:_DETAIL_MAX]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), _RETRY_AFTER_MAX)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(when.timestamp() - time.time(), _RETRY_AFTER_MAX))


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text
