"""Fault injection between the station and the cloud, for sync tests.

`FaultyTransport` wraps any httpx transport (a `MockTransport` fake cloud or a real
`HTTPTransport`) and, request by request, passes, drops, loses the answer, duplicates,
delays or answers 503, following a plan. `FaultProxy` does the same at the TCP level between
real processes: a threaded proxy on 127.0.0.1 whose mode a test switches at run time.
"""

from __future__ import annotations

import contextlib
import enum
import random
import select
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import httpx

__all__ = [
    "Fault",
    "FaultKind",
    "FaultPlan",
    "FaultProxy",
    "FaultyTransport",
    "ProxyMode",
    "random_plan",
    "sequence_plan",
]


class FaultKind(enum.Enum):
    PASS = "pass"
    DROP = "drop"  # never sent: httpx.ConnectError
    LOSE_RESPONSE = "lose_response"  # the server answered (and committed); httpx.ReadError
    DUPLICATE = "duplicate"  # sent `copies` times; the last answer is returned
    DELAY = "delay"  # wait `seconds`, then pass
    UNAVAILABLE = "unavailable"  # a proxy's 503 page; the server never sees the request


@dataclass(frozen=True)
class Fault:
    kind: FaultKind = FaultKind.PASS
    copies: int = 2
    seconds: float = 0.0

    @classmethod
    def passing(cls) -> Fault:
        return cls(FaultKind.PASS)

    @classmethod
    def drop(cls) -> Fault:
        return cls(FaultKind.DROP)

    @classmethod
    def lose_response(cls) -> Fault:
        return cls(FaultKind.LOSE_RESPONSE)

    @classmethod
    def duplicate(cls, copies: int = 2) -> Fault:
        if copies < 1:
            raise ValueError("copies must be at least 1")
        return cls(FaultKind.DUPLICATE, copies=copies)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        return cls(FaultKind.DELAY, seconds=seconds)

    @classmethod
    def unavailable(cls) -> Fault:
        return cls(FaultKind.UNAVAILABLE)


FaultPlan = Callable[[int, httpx.Request], Fault]
"""Given the request's index (0-based, over the transport's life) and the request."""


def sequence_plan(faults: Iterable[Fault]) -> FaultPlan:
    """Faults in order, one per request; every request after the list passes."""
    listed = list(faults)

    def plan(index: int, request: httpx.Request) -> Fault:
        return listed[index] if index < len(listed) else Fault.passing()

    return plan


def random_plan(
    seed: int,
    *,
    drop: float = 0.1,
    lose_response: float = 0.1,
    duplicate: float = 0.1,
    unavailable: float = 0.1,
    max_copies: int = 5,
    only_paths: Sequence[str] | None = None,
) -> FaultPlan:
    """Seeded random faults with the given probabilities (the rest pass). Duplicates send
    2..`max_copies` copies. `only_paths` limits faults to requests on those URL paths."""
    rng = random.Random(seed)

    def plan(index: int, request: httpx.Request) -> Fault:
        if only_paths is not None and request.url.path not in only_paths:
            return Fault.passing()
        draw = rng.random()
        for weight, fault in (
            (drop, Fault.drop()),
            (lose_response, Fault.lose_response()),
            (unavailable, Fault.unavailable()),
        ):
            if draw < weight:
                return fault
            draw -= weight
        if draw < duplicate:
            return Fault.duplicate(rng.randint(2, max(2, max_copies)))
        return Fault.passing()

    return plan


class FaultyTransport(httpx.BaseTransport):
    """An httpx transport that misbehaves on purpose, and counts what it did.

    `counts[kind]` is how many requests got each fault; `forwarded` how many requests
    (copies included) reached the inner transport.
    """

    def __init__(
        self,
        inner: httpx.BaseTransport,
        plan: FaultPlan | Sequence[Fault] | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._inner = inner
        if plan is None:
            plan = []
        self._plan: FaultPlan = sequence_plan(plan) if not callable(plan) else plan
        self._sleep = sleep
        self._lock = threading.Lock()
        self._index = 0
        self.counts: Counter[FaultKind] = Counter()
        self.forwarded = 0

    @property
    def requests(self) -> int:
        return self._index

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            index = self._index
            self._index += 1
        fault = self._plan(index, request)
        with self._lock:
            self.counts[fault.kind] += 1
        kind = fault.kind
        if kind is FaultKind.DROP:
            raise httpx.ConnectError("injected: connection refused", request=request)
        if kind is FaultKind.UNAVAILABLE:
            return httpx.Response(
                503,
                headers={"Content-Type": "text/html"},
                content=b"<html><body><h1>503 Service Unavailable</h1></body></html>",
                request=request,
            )
        if kind is FaultKind.DELAY:
            self._sleep(fault.seconds)
        if kind is FaultKind.LOSE_RESPONSE:
            self._forward_and_discard(request)
            raise httpx.ReadError("injected: connection reset by peer", request=request)
        if kind is FaultKind.DUPLICATE:
            for _ in range(fault.copies - 1):
                self._forward_and_discard(request)
        return self._forward(request)

    def _forward(self, request: httpx.Request) -> httpx.Response:
        request.read()
        with self._lock:
            self.forwarded += 1
        return self._inner.handle_request(request)

    def _forward_and_discard(self, request: httpx.Request) -> None:
        response = self._forward(request)
        try:
            response.read()
        finally:
            response.close()

    def close(self) -> None:
        self._inner.close()


class ProxyMode(enum.Enum):
    PASS = "pass"
    RESET = "reset"  # accept, then reset the connection (RST)
    BLACKHOLE = "blackhole"  # accept, read, never answer
    LOSE_RESPONSE = "lose_response"  # forward the request, drop the answer, close
    # Close the connection (FIN) at once; on an open connection, at its next chunk (if that
    # chunk is the answer, the request was already forwarded: then it is a lost answer).
    DROP = "drop"
    DELAY = "delay"  # pass every chunk, each `delay_s` late (per chunk: a large body is slower)


_CHUNK = 65536
_POLL_S = 0.05


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of `upstream_host:upstream_port`.

    Set `mode` at any time: it applies to new connections and to every chunk on open ones
    (httpx keeps connections alive, so a switch must reach pooled connections too).
    `counts[mode]` counts connections accepted in each mode; `delay_s` is DELAY's latency.
    """

    def __init__(
        self, upstream_port: int, upstream_host: str = "127.0.0.1", *, port: int = 0
    ) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._requested_port = port
        self.mode = ProxyMode.PASS
        self.delay_s = 0.5
        self.counts: Counter[ProxyMode] = Counter()
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("the proxy is not started")
        port: int = self._listener.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self._requested_port))
        listener.listen(64)
        listener.settimeout(_POLL_S)
        self._listener = listener
        self._stopping.clear()
        self._spawn(self._accept_loop)

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _close(sock)
        for thread in list(self._threads):
            thread.join(timeout=2.0)
        if self._listener is not None:
            _close(self._listener)
        self._threads.clear()

    def reset_open_connections(self) -> None:
        """Reset every connection open now (e.g. to cut pooled keep-alive connections)."""
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _reset(sock)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name="fault-proxy")
        self._threads.append(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _untrack(self, *socks: socket.socket | None) -> None:
        with self._lock:
            for sock in socks:
                if sock is not None:
                    self._sockets.discard(sock)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            mode = self.mode
            self.counts[mode] += 1
            self._threads = [t for t in self._threads if t.is_alive()]
            if mode is ProxyMode.RESET:
                _reset(client)
                continue
            if mode is ProxyMode.DROP:
                _close(client)
                continue
            self._track(client)
            self._spawn(self._serve, client, mode)

    def _serve(self, client: socket.socket, mode: ProxyMode) -> None:
        upstream: socket.socket | None = None
        try:
            if mode is not ProxyMode.BLACKHOLE:
                try:
                    upstream = socket.create_connection(self._upstream, timeout=5.0)
                except OSError:
                    return
                self._track(upstream)
            self._pump(client, upstream)
        finally:
            self._untrack(client, upstream)
            _close(client)
            if upstream is not None:
                _close(upstream)

    def _pump(self, client: socket.socket, upstream: socket.socket | None) -> None:
        """Move bytes both ways until either side closes, obeying the current mode."""
        sockets = [client] if upstream is None else [client, upstream]
        while not self._stopping.is_set():
            try:
                readable, _, _ = select.select(sockets, [], [], _POLL_S)
            except (OSError, ValueError):
                return
            for sock in readable:
                try:
                    data = sock.recv(_CHUNK)
                except OSError:
                    return
                if not data:
                    return
                mode = self.mode
                if mode is ProxyMode.RESET:
                    _reset(client)
                    return
                if mode is ProxyMode.DROP:
                    return
                if mode is ProxyMode.BLACKHOLE or upstream is None:
                    continue
                if mode is ProxyMode.DELAY:
                    self._stopping.wait(self.delay_s)
                try:
                    if sock is client:
                        upstream.sendall(data)
                    elif mode is ProxyMode.LOSE_RESPONSE:
                        return
                    else:
                        client.sendall(data)
                except OSError:
                    return


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    _close(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
