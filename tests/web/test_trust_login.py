"""Logins that hold (issue 13): counted before the PIN check, a few hashes at a time, and a
station-sized argon2 setting that still reads older hashes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient

from edge_agent.services import users
from edge_agent.services.station import Station
from edge_agent.services.users import check_pin
from edge_agent.store.users import set_pin_hash, user_by_name
from edge_agent.web.auth import HashSlots, LoginLimiter
from tests.support import free_port
from tests.web.conftest import context_of, refused

STATION_SETTING = "$argon2id$v=19$m=19456,t=2,p=1$"


# --------------------------------------------------------------------------- the limiter


def test_parallel_reservations_are_cut_at_the_limit() -> None:
    limiter = LoginLimiter()
    barrier = threading.Barrier(40)

    def attempt(_: int) -> float:
        barrier.wait()
        return limiter.reserve("alice", "10.0.0.9")

    with ThreadPoolExecutor(40) as pool:
        waits = list(pool.map(attempt, range(40)))
    assert waits.count(0.0) == limiter.max_per_name == 5
    assert all(wait >= 1 for wait in waits if wait)


def test_the_limit_holds_per_name_across_clients_and_per_client_across_names() -> None:
    now = [0.0]
    limiter = LoginLimiter(clock=lambda: now[0])
    assert [limiter.reserve("bob", f"10.0.0.{i}") for i in range(6)][-1] > 0  # one name
    assert [limiter.reserve(f"user{i}", "10.0.0.99") for i in range(11)][-1] > 0  # one client
    assert limiter.reserve("carol", "10.0.0.7") == 0.0  # others are untouched
    now[0] += 301
    assert limiter.reserve("bob", "10.0.0.0") == 0.0
    assert limiter.reserve("user0", "10.0.0.99") == 0.0


def test_release_gives_back_a_slot_and_success_forgets_the_pairs_failures() -> None:
    limiter = LoginLimiter()
    for _ in range(5):
        assert limiter.reserve("dan", "10.0.0.1") == 0.0
    assert limiter.reserve("dan", "10.0.0.1") > 0
    limiter.release("dan", "10.0.0.1")
    assert limiter.reserve("dan", "10.0.0.1") == 0.0
    limiter.succeeded("dan", "10.0.0.1")
    assert limiter.attempts() == 0
    for _ in range(3):
        limiter.reserve("dan", "10.0.0.2")  # someone else's failures for dan stay counted
    limiter.succeeded("dan", "10.0.0.1")
    assert limiter.attempts() == 3


def test_a_login_is_counted_even_while_its_pin_is_being_checked(
    anon: TestClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    limiter = context_of(app).limiter

    def spy(station: Station, name: str, pin: str) -> None:
        seen.append(limiter.attempts())
        return

    monkeypatch.setattr("edge_agent.web.api.check_pin", spy)
    refused(anon.post("/api/v1/login", json={"name": "alice", "pin": "0000"}), 401, "login.failed")
    assert seen == [1]


# --------------------------------------------------------------------------- hashing slots


def test_a_login_finding_every_hashing_slot_busy_is_429_at_once(
    anon: TestClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = context_of(app)
    ctx.hash_slots = HashSlots(1)
    assert ctx.hash_slots.try_acquire()  # a login is being hashed
    checked: list[str] = []

    def spy(station: Station, name: str, pin: str) -> object:
        checked.append(name)
        return check_pin(station, name, pin)

    monkeypatch.setattr("edge_agent.web.api.check_pin", spy)
    # at once: had it waited for the slot this test holds, the request would never return
    busy = anon.post("/api/v1/login", json={"name": "alice", "pin": "2468"})
    assert checked == []  # no PIN hashed
    refused(busy, 429, "login.busy")
    assert busy.headers["Retry-After"] == "1"
    form = anon.post("/login", data={"name": "alice", "pin": "2468"})
    assert (form.status_code, form.headers["Retry-After"]) == (429, "1")
    assert ctx.limiter.attempts() == 0  # nothing was checked: nothing counted
    ctx.hash_slots.release()
    assert anon.post("/api/v1/login", json={"name": "alice", "pin": "2468"}).status_code == 200


@pytest.fixture
def served(app: FastAPI) -> Iterator[str]:
    """The app on a real uvicorn server on loopback, in a thread."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_parallel_wrong_logins_check_at_most_the_limit(
    served: str, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 wrong PINs at once (the issue's burst): at most 5 checked, every other one 429,
    and never more than the slots' worth of hashes at the same time."""
    ctx = context_of(app)
    running, most = [0], [0]
    lock = threading.Lock()

    def slow_check(station: Station, name: str, pin: str) -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return

    monkeypatch.setattr("edge_agent.web.api.check_pin", slow_check)
    barrier = threading.Barrier(40)

    def attempt(_: int) -> int:
        with httpx.Client(base_url=served, timeout=10) as client:
            barrier.wait()
            return client.post("/api/v1/login", json={"name": "bob", "pin": "0000"}).status_code

    with ThreadPoolExecutor(40) as pool:
        statuses = list(pool.map(attempt, range(40)))
    assert statuses.count(401) <= ctx.limiter.max_per_name
    assert statuses.count(401) + statuses.count(429) == 40
    assert most[0] <= ctx.hash_slots.size


# --------------------------------------------------------------------------- the hash setting


def test_new_pins_are_hashed_with_the_station_setting(station: Station) -> None:
    users.add_user(station, name="eve", role="cashier", pin="8642", actor="test")
    with station.store.read() as tx:
        row = user_by_name(tx, "eve")
    assert row is not None
    assert row.pin_hash.startswith(STATION_SETTING)
    assert users.pin_hasher().memory_cost == users.HASH_MEMORY_KIB == 19_456


def test_an_older_hash_still_verifies_and_is_rewritten_on_the_next_login(station: Station) -> None:
    old = PasswordHasher().hash("2468")  # argon2-cffi's default: m=64 MiB, t=3, p=4
    with station.store.write() as tx:
        alice = user_by_name(tx, "alice")
        assert alice is not None
        set_pin_hash(tx, alice.user_id, old)
    assert check_pin(station, "alice", "0000") is None  # a wrong PIN rewrites nothing
    with station.store.read() as tx:
        assert user_by_name(tx, "alice").pin_hash == old  # type: ignore[union-attr]
    assert check_pin(station, "alice", "2468") is not None
    with station.store.read() as tx:
        rewritten = user_by_name(tx, "alice").pin_hash  # type: ignore[union-attr]
    assert rewritten.startswith(STATION_SETTING)
    assert check_pin(station, "alice", "2468") is not None


def test_an_unknown_name_costs_one_verification_of_the_same_setting(
    station: Station, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified: list[str] = []
    real = users.pin_hasher()

    class Spy:
        def verify(self, hashed: str, pin: str) -> bool:
            verified.append(hashed)
            return real.verify(hashed, pin)

        def hash(self, pin: str) -> str:
            return real.hash(pin)

        def check_needs_rehash(self, hashed: str) -> bool:
            return real.check_needs_rehash(hashed)

    monkeypatch.setattr(users, "_hasher", Spy())
    assert check_pin(station, "nobody", "2468") is None
    assert check_pin(station, "alice", "0000") is None
    assert len(verified) == 2
    assert all(hashed.startswith(STATION_SETTING) for hashed in verified)
