"""Sign-in limits hold under a burst: 40 parallel wrong passwords for one name check at most
`login_attempts` of them, never more than `login_concurrency` hashes run at once, and the
attempt tables stay small however many names are tried."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from cloud_sync.cloud.console.throttle import LoginLimiter

from .support import PASSWORDS, console


@pytest.mark.parametrize("slots", [2, 16])
def test_forty_parallel_wrong_logins_cannot_pass_the_limit(
    tmp_path: Path, cloud_db_url: str, slots: int
) -> None:
    """With 2 slots most are told "busy" (uncounted: nothing was checked); with 16 the
    limiter alone must cut the burst at 5, whatever order the checks finish in."""
    with console(tmp_path, cloud_db_url, login_attempts=5, login_concurrency=slots) as hq:
        client = hq.client()
        start = threading.Barrier(40)
        statuses: list[int] = []
        lock = threading.Lock()

        def guess(number: int) -> None:
            start.wait()
            answer = client.post(
                "/hq/login", data={"name": "alice", "password": f"guess-number-{number:04d}"}
            )
            with lock:
                statuses.append(answer.status_code)

        threads = [threading.Thread(target=guess, args=(n,)) for n in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        counted = Counter(statuses)
        assert sum(counted.values()) == 40
        assert set(counted) <= {401, 429, 503}
        assert 1 <= counted[401] <= 5  # checked passwords: never more than the limit
        assert counted[429] >= 35 - counted[503]
        if slots == 16:
            assert counted == {401: 5, 429: 35}  # the limiter, not the slots, cut it
        assert hq.state.limiter.attempts() <= 5
        assert hq.state.slots.most_busy <= min(slots, 5)
        assert hq.state.slots.busy == 0
        # The name stays locked for the window, even with the right password...
        right = {"name": "alice", "password": PASSWORDS["alice"][1]}
        locked = client.post("/hq/login", data=right)
        if counted[401] == 5:
            assert locked.status_code == 429
            assert "尝试次数过多" in locked.text
            assert int(locked.headers["Retry-After"]) > 0
        # ...and frees when the window has passed (the limiter's own monotonic clock).
        hq.state.limiter.clock = lambda: 10**9
        assert client.post("/hq/login", data=right).status_code == 303


def test_attempts_from_one_address_are_limited_across_names(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    with console(tmp_path, url, login_attempts=5, login_attempts_per_address=3) as hq:
        client = hq.client()
        answers = [
            client.post("/hq/login", data={"name": f"user{n}", "password": "not-a-password"})
            for n in range(5)
        ]
        assert [a.status_code for a in answers] == [401, 401, 401, 429, 429]
        assert "X-Forwarded-For" not in str(answers[0].request.headers)
        spoofed = client.post(
            "/hq/login",
            data={"name": "user9", "password": "not-a-password"},
            headers={"X-Forwarded-For": "203.0.113.7"},
        )
        assert spoofed.status_code == 429  # a header does not make a new address


def test_a_right_password_clears_that_names_failures() -> None:
    now = [0.0]
    limiter = LoginLimiter(per_name=3, per_address=100, window_s=60, clock=lambda: now[0])
    assert limiter.reserve("alice", "10.0.0.1") == 0
    assert limiter.reserve("alice", "10.0.0.1") == 0
    limiter.succeeded("alice", "10.0.0.1")
    assert limiter.attempts() == 0
    for _ in range(3):
        assert limiter.reserve("alice", "10.0.0.2") == 0
    assert limiter.reserve("alice", "10.0.0.1") > 0
    now[0] = 61.0
    assert limiter.reserve("alice", "10.0.0.1") == 0


def test_a_flood_of_names_keeps_the_tables_bounded() -> None:
    now = [0.0]
    limiter = LoginLimiter(
        per_name=5, per_address=10**9, window_s=60, max_keys=100, clock=lambda: now[0]
    )
    for number in range(5000):
        now[0] = number / 1000
        limiter.reserve(f"name-{number}", "10.0.0.1")
    assert limiter.keys() <= 101 + 1
    limiter.release("name-4999", "10.0.0.1")
    assert limiter.reserve("name-4999", "10.0.0.1") == 0
