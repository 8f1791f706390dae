"""The station's sync engine: push the outbox, then pull the changes feed.

It only moves batches and classifies answers; what an event means, and what is stored, is
the station's business behind `StationPort`. One request is in flight at a time, a failed
cycle is retried forever with exponential backoff and full jitter, and no event is ever
dropped: an event leaves the queue only when the cloud's answer names it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cloud_sync.core.backoff import full_jitter
from cloud_sync.core.wire import PushRequest, PushResponse

from .client import (
    CloudClient,
    SyncAuth,
    SyncConflict,
    SyncError,
    SyncGap,
    SyncRejected,
    SyncRetry,
)
from .port import Backlog, StationPort

__all__ = [
    "BACKOFF_BASE_S",
    "BACKOFF_CAP_S",
    "FAILURES_BEFORE_ALERT",
    "MAX_REWINDS_PER_CYCLE",
    "ClientFactory",
    "CycleResult",
    "SyncEngine",
]

BACKOFF_BASE_S = 1.0
BACKOFF_FACTOR = 2.0
# The cap bounds how long a station whose link has come back waits before it syncs again;
# 60 s with full jitter is still at most one try per 30 s on average per station while the
# cloud is down (the soak found a 300 s cap left flaky-link stations minutes behind).
BACKOFF_CAP_S = 60.0
RETRY_AFTER_CAP_S = 300.0  # the cloud asking for more time is heeded, up to five minutes
MAX_REWINDS_PER_CYCLE = 3
FAILURES_BEFORE_ALERT = 12  # about three and a half minutes of backoff, on average

ClientFactory = Callable[[str, Callable[[], str]], CloudClient]


@dataclass(frozen=True)
class CycleResult:
    """What one push+pull cycle did. `pushed` counts every event the cloud acknowledged
    (applied, duplicate or rejected); `rewound` the events re-queued after sequence gaps."""

    pushed: int
    duplicates: int
    rejected: int
    rewound: int
    pages: int
    backlog_after: Backlog
    ok: bool
    error: str | None
    alert: str | None
    retry_after: float | None = None


@dataclass
class _Tally:
    pushed: int = 0
    duplicates: int = 0
    rejected: int = 0
    rewound: int = 0
    pages: int = 0
    alert: str | None = None
    retry_after: float | None = None


class _Alert(SyncError):
    """A condition the engine cannot fix by retrying; the operator sees `code`."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class _Stopped(Exception):
    """The stop event was set between two requests."""


def _default_client(base_url: str, token_source: Callable[[], str]) -> CloudClient:
    return CloudClient(base_url, token_source)


class SyncEngine:
    def __init__(
        self,
        port: StationPort,
        client_factory: ClientFactory | None = None,
        *,
        batch_size: int = 1000,
        page_limit: int = 500,
        clock: Callable[[], datetime],
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        if batch_size < 1 or page_limit < 1:
            raise ValueError("batch_size and page_limit must be at least 1")
        self._port = port
        self._client_factory = client_factory or _default_client
        self._batch_size = batch_size
        self._page_limit = page_limit
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._log = logger or logging.getLogger(__name__)
        self._alert_active = False

    def next_delay(self, failures: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * factor^(failures-1))) (`.backoff`)."""
        return full_jitter(
            failures,
            base_s=BACKOFF_BASE_S,
            cap_s=BACKOFF_CAP_S,
            factor=BACKOFF_FACTOR,
            rng=self._rng.random,
        )

    def run_forever(self, stop: threading.Event, interval_s: float) -> None:
        """Cycle until `stop` is set; every wait is `stop.wait`, so setting it ends one."""
        failures = 0
        while not stop.is_set():
            result = self.run_cycle(stop=stop)
            if stop.is_set():
                return
            if result.ok:
                failures = 0
                if result.backlog_after.pending > 0 and result.pushed > 0:
                    self._sleep(0)  # let other threads in before the next back-to-back cycle
                    continue
                delay = interval_s
            else:
                failures += 1
                if failures == FAILURES_BEFORE_ALERT and result.alert is None:
                    # Retrying is right, but an operator should know the cloud has been
                    # out of reach (or failing) for a while; success clears it.
                    self._alert(_Tally(), "sync_failing", str(result.error))
                delay = self.next_delay(failures)
                if result.retry_after is not None:
                    delay = max(delay, min(result.retry_after, RETRY_AFTER_CAP_S))
            stop.wait(delay)

    def run_cycle(self, stop: threading.Event | None = None) -> CycleResult:
        """Enrol if needed, push every pending batch, pull every waiting page."""
        tally = _Tally()
        try:
            url = self._port.cloud_url()
            if not url:
                return self._result(tally, "cloud not configured")
            client = self._client_factory(url, self._port.cloud_token)
            try:
                self._enrol(client)
                self._push(client, tally, stop)
                self._pull(client, tally, stop)
            finally:
                client.close()
            self._port.record_contact(self._clock().isoformat())
            if self._alert_active:
                self._port.record_alert("", "")
                self._alert_active = False
        except _Stopped:
            return self._result(tally, "stopped")
        except SyncError as exc:
            return self._failed(tally, exc)
        except Exception as exc:
            self._log.exception("sync cycle failed unexpectedly")
            return self._result(tally, f"unexpected {type(exc).__name__}: {exc}")
        return self._result(tally, None)

    def _enrol(self, client: CloudClient) -> None:
        request = self._port.enrolment_request()
        if request is None:
            return
        response = client.enrol(request)
        self._port.complete_enrolment(response)
        self._log.info("enrolled with the cloud as %s", response.station_id)

    def _push(self, client: CloudClient, tally: _Tally, stop: threading.Event | None) -> None:
        # One worker reads the next batch from the store while the cloud works on this one;
        # it is used only after this one is acknowledged in full (still one request in
        # flight), and `shutdown(wait=True)` leaves no read running past the cycle.
        reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-read")
        try:
            self._push_batches(client, tally, stop, reader)
        finally:
            reader.shutdown(wait=True, cancel_futures=True)

    def _push_batches(
        self,
        client: CloudClient,
        tally: _Tally,
        stop: threading.Event | None,
        reader: ThreadPoolExecutor,
    ) -> None:
        limit = self._batch_size
        rewinds = 0
        last_acked: tuple[int, Any] | None = None
        following: Future[PushRequest | None] | None = None
        while True:
            _check(stop)
            batch = None if following is None else following.result()
            following = None
            if batch is None:
                batch = self._port.pending_batch(limit)
            if batch is None:
                return
            head = (batch.epoch, batch.events[0].get("seq"))
            if head == last_acked:
                raise _Alert("sync_stuck", "the station offered a batch the cloud had acknowledged")
            after = batch.events[-1].get("seq")
            if isinstance(after, int):
                following = reader.submit(self._port.next_batch, batch.epoch, after, limit)
            try:
                response = client.push(batch)
            except SyncGap as gap:
                _discard(following)
                following = None
                rewinds += 1
                if rewinds > MAX_REWINDS_PER_CYCLE:
                    raise _Alert(
                        "sequence_gap",
                        f"the cloud still misses events after {MAX_REWINDS_PER_CYCLE} rewinds "
                        f"(expects seq {gap.expected_seq} of epoch {gap.epoch})",
                    ) from None
                requeued = self._port.rewind(gap.epoch, gap.expected_seq)
                self._log.warning(
                    "cloud expects seq %d of epoch %d: %d events re-queued",
                    gap.expected_seq,
                    gap.epoch,
                    requeued,
                )
                if requeued == 0:
                    raise _Alert(
                        "sequence_gap",
                        f"the cloud expects seq {gap.expected_seq} of epoch {gap.epoch}, "
                        "which this station cannot resend",
                    ) from None
                tally.rewound += requeued
                last_acked = None
                continue
            except SyncRejected as exc:
                _discard(following)
                following = None
                if exc.status == 413 and len(batch.events) > 1:
                    limit = len(batch.events) // 2
                    self._log.warning(
                        "cloud refused %d events as too large; sending %d", len(batch.events), limit
                    )
                    continue
                raise
            self._acknowledge(batch, response, tally)
            last_acked = head

    def _acknowledge(self, batch: PushRequest, response: PushResponse, tally: _Tally) -> None:
        """Acknowledge exactly what the answer names. An answer that names other events, or
        only some, is not trusted beyond a consistent leading run of the batch."""
        sent: list[tuple[Any, Any]] = [(ev.get("seq"), ev.get("event_id")) for ev in batch.events]
        got: list[tuple[Any, Any]] = sorted((r.seq, r.event_id) for r in response.results)
        consistent = (
            response.station_id == batch.station_id
            and response.epoch == batch.epoch
            and all(r.seq <= response.high_water for r in response.results)
        )
        if consistent and got == sent:
            self._record(response, tally)
            return
        if consistent and got and got == sent[: len(got)]:
            self._record(response, tally)
            raise SyncRetry(f"the cloud answered {len(got)} of {len(sent)} events")
        raise SyncRetry("the cloud's answer does not match the batch sent")

    def _record(self, response: PushResponse, tally: _Tally) -> None:
        self._port.acknowledge(response)
        for result in response.results:
            tally.pushed += 1
            if result.status == "duplicate":
                tally.duplicates += 1
            elif result.status == "rejected":
                tally.rejected += 1
                self._log.warning(
                    "cloud rejected event seq %d: %s", result.seq, result.reason or "no reason"
                )

    def _pull(self, client: CloudClient, tally: _Tally, stop: threading.Event | None) -> None:
        while True:
            _check(stop)
            cursor = self._port.changes_cursor()
            page = client.changes(cursor, self._page_limit)
            if page.cursor != cursor:
                raise SyncRetry(f"the cloud answered cursor {page.cursor} for since={cursor}")
            if page.next_cursor < cursor or (page.more and page.next_cursor == cursor):
                raise SyncRetry(f"the changes feed did not advance from cursor {cursor}")
            self._port.apply_changes(page)
            tally.pages += 1
            if not page.more:
                return
            if self._port.changes_cursor() == cursor:
                raise _Alert("sync_stuck", "the station did not store the changes cursor")

    def _failed(self, tally: _Tally, exc: SyncError) -> CycleResult:
        if isinstance(exc, _Alert):
            self._alert(tally, exc.code, exc.detail)
        elif isinstance(exc, SyncConflict):
            detail = f"event {exc.event_id}: {exc.detail}" if exc.event_id else exc.detail
            self._alert(tally, "event_conflict", detail)
        elif isinstance(exc, SyncRejected):
            self._alert(tally, "sync_rejected", str(exc))
        elif isinstance(exc, SyncAuth):
            self._alert(tally, "sync_auth", exc.detail)
        elif isinstance(exc, SyncRetry):
            tally.retry_after = exc.retry_after
        return self._result(tally, str(exc))

    def _alert(self, tally: _Tally, code: str, detail: str) -> None:
        tally.alert = code
        self._alert_active = True
        try:
            self._port.record_alert(code, detail)
        except Exception:
            self._log.exception("could not record the sync alert %s", code)

    def _result(self, tally: _Tally, error: str | None) -> CycleResult:
        if error is not None:
            self._log.warning("sync cycle failed: %s", error)
        try:
            backlog = self._port.backlog()
        except Exception:
            self._log.exception("could not read the sync backlog")
            backlog = Backlog(pending=-1, oldest_created_at=None)
        return CycleResult(
            pushed=tally.pushed,
            duplicates=tally.duplicates,
            rejected=tally.rejected,
            rewound=tally.rewound,
            pages=tally.pages,
            backlog_after=backlog,
            ok=error is None,
            error=error,
            alert=tally.alert,
            retry_after=tally.retry_after,
        )


def _discard(prepared: Future[PushRequest | None] | None) -> None:
    """Let a read of the next batch finish and drop it: after a rewind or a smaller batch
    size, the next batch is taken afresh from the oldest pending event."""
    if prepared is not None and not prepared.cancel():
        prepared.exception()  # waits for the read; its outcome no longer matters


def _check(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise _Stopped
