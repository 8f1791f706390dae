"""The station's cloud client: every answer the cloud (or anything in between) can give maps
to the one exception the sync engine acts on, and the token is read per request and never
leaks into an error or a log line."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from cloud_sync.core.wire import (
    ChangesResponse,
    EnrolRequest,
    EnrolResponse,
    MemberKeysWire,
    PushRequest,
    PushResponse,
)
from cloud_sync.station.client import (
    CHANGES_PATH,
    ENROL_PATH,
    EVENTS_PATH,
    CloudClient,
    SyncAuth,
    SyncConflict,
    SyncError,
    SyncGap,
    SyncRejected,
    SyncRetry,
)
from tests.cloud.faults import Fault, FaultProxy, FaultyTransport, ProxyMode

TOKEN = "s3cret-station-token"
EVENT_ID = "01890a5d-ac96-774b-bcce-b302099a8057"

Handler = Callable[[httpx.Request], httpx.Response]


def push_request(epoch: int = 1) -> PushRequest:
    event = {
        "event_id": EVENT_ID,
        "seq": 7,
        "epoch": epoch,
        "kind": "sale.recorded",
        "payload": {"sale_id": "x"},
        "created_at": "2026-01-01T08:00:00+08:00",
    }
    return PushRequest(station_id="S001", epoch=epoch, events=[event])


def push_answer(epoch: int = 1) -> dict[str, Any]:
    return {
        "station_id": "S001",
        "epoch": epoch,
        "high_water": 7,
        "results": [{"event_id": EVENT_ID, "seq": 7, "status": "applied"}],
    }


def problem(error: str, detail: str = "because", **extra: Any) -> dict[str, Any]:
    return {"error": error, "detail": detail, **extra}


def client_for(handler: Handler, token: Callable[[], str] = lambda: TOKEN) -> CloudClient:
    return CloudClient("http://cloud.test/", token, transport=httpx.MockTransport(handler))


def answer(status: int, body: Any = None, **kw: Any) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, bytes | str):
            return httpx.Response(status, content=body, **kw)
        return httpx.Response(status, json=body, **kw)

    return handler


def test_push_sends_the_batch_with_the_token_and_parses_the_answer() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=push_answer())

    with client_for(handler) as client:
        response = client.push(push_request())
    assert response == PushResponse.model_validate(push_answer())
    [request] = seen
    assert request.method == "POST"
    assert request.url.path == EVENTS_PATH
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert PushRequest.model_validate_json(request.content) == push_request()


def test_changes_passes_cursor_and_limit() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"cursor": 42, "next_cursor": 50, "more": True})

    with client_for(handler) as client:
        page = client.changes(42, 8)
    assert page == ChangesResponse(cursor=42, next_cursor=50, more=True)
    assert seen[0].method == "GET"
    assert seen[0].url.path == CHANGES_PATH
    assert dict(seen[0].url.params) == {"since": "42", "limit": "8"}


def test_enrol_round_trip() -> None:
    body = {
        "station_id": "S001",
        "member_keys": {"key_id": "k1", "encryption_key": "ZQ==", "index_key": "aQ=="},
        "signing_key_id": "abcd",
        "signing_public_key": "cHVi",
    }
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=body)

    keys = MemberKeysWire(key_id="old", encryption_key="ZQ==", index_key="aQ==")
    request = EnrolRequest(station_id="S001", station_keys=[keys])
    with client_for(handler) as client:
        assert client.enrol(request) == EnrolResponse.model_validate(body)
    assert seen[0].url.path == ENROL_PATH
    assert EnrolRequest.model_validate_json(seen[0].content) == request


def test_the_token_is_read_for_every_request() -> None:
    tokens = iter(["first", "second", "third"])
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(200, json=push_answer())

    with client_for(handler, token=lambda: next(tokens)) as client:
        for _ in range(3):
            client.push(push_request())
    assert seen == ["Bearer first", "Bearer second", "Bearer third"]


@pytest.mark.parametrize("token", ["", "   ", "two words", "line\nbreak"])
def test_a_missing_or_malformed_token_is_refused_before_sending(token: str) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json=push_answer())

    with client_for(handler, token=lambda: token) as client, pytest.raises(SyncAuth):
        client.push(push_request())
    assert sent == []


def test_an_unreadable_token_file_is_an_auth_failure() -> None:
    def unreadable() -> str:
        raise FileNotFoundError("/etc/loyalpump/token")

    client = client_for(answer(200, push_answer()), token=unreadable)
    with client, pytest.raises(SyncAuth, match="cannot read"):
        client.push(push_request())


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, problem("internal", "boom")),
        (502, b"<html>Bad Gateway</html>"),
        (503, b"<html>Service Unavailable</html>"),
        (504, b""),
        (429, problem("rate_limited")),
        (408, b"timeout"),
        (200, b"<html><body>captive portal</body></html>"),
        (200, json.dumps(push_answer())[:40].encode()),
        (200, json.dumps({"station_id": "S001"}).encode()),
        (201, b"null"),
        (409, b"<html>conflict</html>"),
        (409, json.dumps(problem("sequence_gap")).encode()),
    ],
)
def test_transient_or_unreadable_answers_are_retried(status: int, body: Any) -> None:
    with client_for(answer(status, body)) as client, pytest.raises(SyncRetry):
        client.push(push_request())


def test_retry_after_is_passed_on() -> None:
    handler = answer(429, problem("rate_limited"), headers={"Retry-After": "17"})
    with client_for(handler) as client, pytest.raises(SyncRetry) as caught:
        client.push(push_request())
    assert caught.value.retry_after == 17.0


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow"),
        httpx.ReadTimeout("slow"),
        httpx.ReadError("connection reset by peer"),
        httpx.RemoteProtocolError("server disconnected without sending a response"),
        httpx.WriteError("broken pipe"),
    ],
)
def test_network_errors_are_retried(error: httpx.TransportError) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    with client_for(handler) as client, pytest.raises(SyncRetry):
        client.changes(0, 10)


def test_sequence_gap_names_epoch_and_expected_seq() -> None:
    body = problem("sequence_gap", "missing events", expected_seq=5, epoch=2)
    with client_for(answer(409, body)) as client, pytest.raises(SyncGap) as caught:
        client.push(push_request(epoch=2))
    assert (caught.value.epoch, caught.value.expected_seq) == (2, 5)


def test_sequence_gap_without_epoch_uses_the_batch_epoch() -> None:
    body = problem("sequence_gap", "missing events", expected_seq=3)
    with client_for(answer(409, body)) as client, pytest.raises(SyncGap) as caught:
        client.push(push_request(epoch=4))
    assert (caught.value.epoch, caught.value.expected_seq) == (4, 3)


def test_event_conflict_names_the_event() -> None:
    body = problem("event_conflict", "another payload under this id", event_id=EVENT_ID)
    with client_for(answer(409, body)) as client, pytest.raises(SyncConflict) as caught:
        client.push(push_request())
    assert caught.value.event_id == EVENT_ID
    assert caught.value.detail == "another payload under this id"


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("body", [problem("unauthorized", "unknown token"), b"<html>no</html>"])
def test_refused_credentials(status: int, body: Any) -> None:
    with client_for(answer(status, body)) as client, pytest.raises(SyncAuth):
        client.push(push_request())


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, problem("invalid", "schema_version must be 1")),
        (413, b"<html>413 Request Entity Too Large</html>"),
        (413, problem("too_large", "at most 1000 events")),
        (422, problem("invalid", "events: too short")),
        (404, b"not found"),
        (405, b""),
        (409, problem("station_retired", "this station is retired")),
        (301, b""),
    ],
)
def test_wrong_requests_are_rejected_with_their_status(status: int, body: Any) -> None:
    with client_for(answer(status, body)) as client, pytest.raises(SyncRejected) as caught:
        client.push(push_request())
    assert caught.value.status == status


def test_a_problem_body_becomes_the_detail() -> None:
    body = problem("invalid", "events[0].seq: must be >= 1")
    with client_for(answer(422, body)) as client, pytest.raises(SyncRejected) as caught:
        client.push(push_request())
    assert caught.value.detail == "invalid: events[0].seq: must be >= 1"


def test_a_bad_cloud_url_is_rejected_not_retried() -> None:
    client = CloudClient("ftp://cloud.test", lambda: TOKEN)
    with client, pytest.raises(SyncRejected) as caught:
        client.changes(0, 1)
    assert caught.value.status == 0


def test_the_token_never_reaches_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    echo = problem("unauthorized", f"token {TOKEN} is unknown", event_id=EVENT_ID)
    errors: list[SyncError] = []
    caplog.set_level(logging.DEBUG)
    for status in (401, 409, 422, 500):
        body = dict(echo, error="event_conflict") if status == 409 else echo
        with client_for(answer(status, body)) as client:
            try:
                client.push(push_request())
            except SyncError as exc:
                errors.append(exc)
    assert len(errors) == 4
    for error in errors:
        assert TOKEN not in str(error)
        assert TOKEN not in repr(vars(error))
    assert TOKEN not in caplog.text


# --- real sockets: a tiny HTTP cloud behind the fault proxy ---------------------------------


class _Cloud(BaseHTTPRequestHandler):
    hits: list[str]

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.rfile.read(length)
        self.hits.append(self.path)
        body = json.dumps(push_answer()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def real_cloud() -> Iterator[tuple[ThreadingHTTPServer, list[str]]]:
    hits: list[str] = []
    handler = type("Handler", (_Cloud,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server, hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_real_network_faults_through_the_proxy_are_retried(
    real_cloud: tuple[ThreadingHTTPServer, list[str]],
) -> None:
    server, hits = real_cloud
    with FaultProxy(server.server_address[1]) as proxy:
        client = CloudClient(proxy.url, lambda: TOKEN, timeout=0.5)
        with client:
            assert client.push(push_request()).high_water == 7
            assert hits == [EVENTS_PATH]

            proxy.mode = ProxyMode.RESET
            with pytest.raises(SyncRetry):
                client.push(push_request())

            proxy.mode = ProxyMode.BLACKHOLE
            with pytest.raises(SyncRetry, match="Timeout"):
                client.push(push_request())

            proxy.mode = ProxyMode.LOSE_RESPONSE
            with pytest.raises(SyncRetry):
                client.push(push_request())
            assert len(hits) == 2, "a lost response still reached the server"

            proxy.mode = ProxyMode.DROP
            with pytest.raises(SyncRetry):
                client.push(push_request())
            assert len(hits) == 2, "a dropped connection reached the server"

            # Each chunk is late: the request (headers and body may be two chunks) and the
            # answer, so 0.1 s per chunk stays well inside the client's 0.5 s read timeout.
            proxy.mode, proxy.delay_s = ProxyMode.DELAY, 0.1
            started = time.monotonic()
            assert client.push(push_request()).high_water == 7
            assert time.monotonic() - started >= 0.2  # the request and its answer, each late
            proxy.delay_s = 1.0  # beyond the timeout: a link this slow is an outage
            with pytest.raises(SyncRetry, match="Timeout"):
                client.push(push_request())

            proxy.mode = ProxyMode.PASS
            assert client.push(push_request()).high_water == 7
    assert proxy.counts[ProxyMode.PASS] >= 1
    assert proxy.counts[ProxyMode.DROP] >= 1


def test_faulty_transport_counts_and_follows_its_plan() -> None:
    hits: list[int] = []

    def cloud(request: httpx.Request) -> httpx.Response:
        hits.append(1)
        return httpx.Response(200, json=push_answer())

    plan = [
        Fault.drop(),
        Fault.lose_response(),
        Fault.duplicate(3),
        Fault.unavailable(),
        Fault.delay(0.5),
    ]
    slept: list[float] = []
    transport = FaultyTransport(httpx.MockTransport(cloud), plan, sleep=slept.append)
    outcomes: list[str] = []
    with CloudClient("http://cloud.test", lambda: TOKEN, transport=transport) as client:
        for _ in range(6):
            try:
                client.push(push_request())
                outcomes.append("ok")
            except SyncRetry:
                outcomes.append("retry")
    assert outcomes == ["retry", "retry", "ok", "retry", "ok", "ok"]
    assert len(hits) == transport.forwarded == 1 + 3 + 1 + 1
    assert slept == [0.5]
    assert transport.requests == 6
