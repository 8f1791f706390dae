"""Kill a process recording sales with SIGKILL at random moments; nothing acknowledged is lost.

A child (`crash_child.py`) records sales for one member in a loop and prints a line after
each `record_sale` returns. The test kills it at a random moment, 200 times, on the same
store, so every run after the first also starts on a store a SIGKILL just interrupted
(WAL recovery). Some runs first re-send the last acknowledged sale and the one after it,
as a driver does after a restart. Then the store must hold every acknowledged sale exactly
once, with its ledger entry, its lot and its outbox event, and no partial transaction.

Set CRASH_SEED to replay a schedule (kill timing also depends on the machine's speed).
"""

from __future__ import annotations

import json
import os
import random
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge_agent.services.members import register_member
from edge_agent.services.points import verify_ledger
from edge_agent.services.rules import install_ruleset
from edge_agent.services.station import open_station
from edge_agent.settings import StationSettings

CHILD = Path(__file__).with_name("crash_child.py")
RULESET = Path(__file__).resolve().parents[2] / "config" / "rulesets" / "field-examples.json"
RUNS = int(os.environ.get("CRASH_RUNS", "200"))
SEED = int(os.environ.get("CRASH_SEED", "20261123"))
START_TIMEOUT_S = 30.0


def _settings(data_dir: Path) -> StationSettings:
    return StationSettings.model_validate({"station": {"id": "S001", "data_dir": str(data_dir)}})


@dataclass
class _Child:
    """One child process and what it printed, read without blocking."""

    proc: subprocess.Popen[bytes]
    buffer: bytearray = field(default_factory=bytearray)

    @classmethod
    def spawn(cls, data_dir: Path, member_id: str) -> _Child:
        """Start a child; it imports, then waits for `start` before it opens the store."""
        command = [sys.executable, str(CHILD), str(data_dir), member_id]
        pipe = subprocess.PIPE
        return cls(subprocess.Popen(command, stdin=pipe, stdout=pipe, stderr=pipe))

    def start(self, run: int, retries: list[str]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(" ".join([str(run), *retries]).encode() + b"\n")
        self.proc.stdin.close()

    def read_until(self, marker: bytes, timeout: float) -> bool:
        """Read output until a complete line starting with `marker` arrived (or time ran out)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while not any(line.startswith(marker) for line in self.lines()):
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    return False
                chunk = os.read(fd, 65536)
                if not chunk:
                    return False  # the child exited
                self.buffer += chunk
        return True

    def kill(self) -> int | None:
        """SIGKILL the child; the exit status if it had already ended on its own."""
        ended_before = self.proc.poll()
        if ended_before is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        assert self.proc.stdout is not None
        if not self.proc.stdout.closed:
            self.buffer += self.proc.stdout.read()
        return ended_before

    def lines(self) -> list[bytes]:
        """Complete lines only: a half-written line was never an acknowledgement."""
        return bytes(self.buffer).split(b"\n")[:-1]

    def stderr(self) -> str:
        self.kill()
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")

    def close(self) -> None:
        self.kill()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def _setup_store(data_dir: Path) -> str:
    with open_station(_settings(data_dir), create=True) as station:
        install_ruleset(station, RULESET.read_bytes(), actor="test")
        member = register_member(station, phone="13800138000", consent_channel="test", actor="test")
        return member.member_id


@pytest.mark.slow
def test_sigkill_never_loses_or_duplicates_an_acknowledged_sale(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    data_dir = tmp_path / "data"
    member_id = _setup_store(data_dir)
    where = f"(CRASH_SEED={SEED}, store {data_dir})"

    acknowledged: dict[str, str] = {}  # source_key -> sale_id
    last_key: str | None = None
    started = time.monotonic()
    kills = {"opening": 0, "first_sale": 0, "running": 0}
    retried = 0
    following = child = _Child.spawn(data_dir, member_id)
    try:
        for run in range(RUNS):
            retries: list[str] = []
            if last_key is not None and rng.random() < 0.3:
                prefix, index = last_key.rsplit(":", 1)
                retries = [last_key, f"{prefix}:{int(index) + 1}"]
                retried += 1
            child = following
            child.start(run, retries)
            # The next child starts its interpreter while this one runs.
            following = _Child.spawn(data_dir, member_id)
            mode = rng.random()
            if mode < 0.05:
                # While it opens the store, right after the previous kill (WAL recovery).
                kills["opening"] += 1
                time.sleep(rng.uniform(0, 0.01))
            elif mode < 0.15:
                # Around its first transaction (a retry when there is one).
                kills["first_sale"] += 1
                assert child.read_until(b"READY", START_TIMEOUT_S), (
                    f"run {run}: child never opened the store {where}\n{child.stderr()}"
                )
                time.sleep(rng.uniform(0, 0.02))
            else:
                kills["running"] += 1
                assert child.read_until(b"COMMITTED", START_TIMEOUT_S), (
                    f"run {run}: child never committed a sale {where}\n{child.stderr()}"
                )
                time.sleep(rng.uniform(0, 0.15))
            ended_on_its_own = child.kill()
            assert ended_on_its_own is None, (
                f"run {run}: child exited with {ended_on_its_own} before the kill {where}\n"
                f"{child.stderr()}"
            )
            assert child.proc.returncode == -signal.SIGKILL
            child.close()

            reported = [line.split() for line in child.lines() if line.startswith(b"COMMITTED")]
            for position, parts in enumerate(reported):
                assert len(parts) == 4, f"run {run}: garbled line {parts!r} {where}"
                sale_id, key, created = (part.decode() for part in parts[1:])
                if key in acknowledged:
                    assert acknowledged[key] == sale_id, (
                        f"run {run}: {key} acknowledged as {acknowledged[key]}, now as "
                        f"{sale_id} {where}"
                    )
                    assert created == "0", f"run {run}: {key} recorded twice {where}"
                if position == 0 and retries:
                    assert key == retries[0]
                    assert created == "0", f"run {run}: retried {key} was recorded again {where}"
                acknowledged[key] = sale_id
                last_key = key
    finally:
        child.close()
        following.close()
    elapsed = time.monotonic() - started

    assert len(acknowledged) >= RUNS // 2, f"too few sales acknowledged {where}"
    unacknowledged = _check_store(data_dir, member_id, acknowledged, where)
    print(
        f"\n{RUNS} kills in {elapsed:.1f} s ({kills}), {retried} runs retried, "
        f"{len(acknowledged)} sales acknowledged, {unacknowledged} more committed "
        f"unacknowledged {where}"
    )


def _check_store(data_dir: Path, member_id: str, acknowledged: dict[str, str], where: str) -> int:
    """Check the store after the kills; return how many sales committed without an ack."""
    with open_station(_settings(data_dir)) as station:
        assert station.store.integrity_problems() == [], where
        assert verify_ledger(station) == [], where
        with station.store.read() as tx:
            sales = {
                str(key): (str(sale_id), str(member), int(points), str(status))
                for key, sale_id, member, points, status in tx.execute(
                    "SELECT source_key, sale_id, member_id, points, status FROM sales"
                ).fetchall()
            }
            key_counts = Counter(
                str(key) for (key,) in tx.execute("SELECT source_key FROM sales").fetchall()
            )
            earn = {
                str(sale_id): (int(count), int(points), int(lots), int(remaining))
                for sale_id, count, points, lots, remaining in tx.execute(
                    "SELECT l.sale_id, count(*), sum(l.points), count(lots.lot_entry_id), "
                    "coalesce(sum(lots.remaining), -1) FROM ledger l "
                    "LEFT JOIN lots ON lots.lot_entry_id = l.entry_id "
                    "WHERE l.kind = 'earn' GROUP BY l.sale_id"
                ).fetchall()
            }
            other_entries = tx.execute("SELECT count(*) FROM ledger WHERE kind <> 'earn'")
            events = [
                (int(seq), json.loads(payload))
                for seq, payload in tx.execute(
                    "SELECT seq, payload FROM outbox WHERE kind = 'sale.recorded' ORDER BY seq"
                ).fetchall()
            ]
            seqs = [int(seq) for (seq,) in tx.execute("SELECT seq FROM outbox ORDER BY seq")]
            balance_rows = tx.execute(
                "SELECT (SELECT coalesce(sum(points), 0) FROM ledger WHERE member_id = :m), "
                "(SELECT coalesce(sum(remaining), 0) FROM lots WHERE member_id = :m), "
                "(SELECT coalesce(sum(points), 0) FROM balances WHERE member_id = :m)",
                {"m": member_id},
            ).fetchone()
            assert other_entries.fetchone()[0] == 0, where

    # Every acknowledged sale is there exactly once, under the id the child was given.
    for key, sale_id in acknowledged.items():
        assert key_counts[key] == 1, f"{key}: {key_counts[key]} rows {where}"
        assert sales[key][0] == sale_id, f"{key}: stored as {sales[key][0]}, acked {sale_id}"
    assert len(sales) == len(key_counts) >= len(acknowledged)

    # Every stored sale (acknowledged or committed just before a kill) is whole.
    event_by_sale = Counter(str(payload["sale_id"]) for _, payload in events)
    payload_by_sale = {str(payload["sale_id"]): payload for _, payload in events}
    for key, (sale_id, member, points, status) in sales.items():
        assert member == member_id and status == "recorded", (key, where)
        assert points > 0, f"{key}: a member's sale of >= 5 L of 92 earns points {where}"
        assert earn.get(sale_id) == (1, points, 1, points), (
            f"{key}: earn entries/points/lots/remaining {earn.get(sale_id)}, "
            f"expected (1, {points}, 1, {points}) {where}"
        )
        assert event_by_sale[sale_id] == 1, f"{key}: {event_by_sale[sale_id]} events {where}"
        payload = payload_by_sale[sale_id]
        assert payload["source_key"] == key and payload["points"] == points, (key, where)
        assert [entry["kind"] for entry in payload["ledger"]] == ["earn"], (key, where)
    assert set(earn) <= {sale_id for sale_id, *_ in sales.values()}, where
    assert len(events) == len(sales), where

    # The outbox is dense 1..N; balances agree with the ledger.
    assert seqs == list(range(1, len(seqs) + 1)), f"outbox seq has gaps {where}"
    ledger_total, lots_total, cached = balance_rows
    total_points = sum(points for _, _, points, _ in sales.values())
    assert ledger_total == lots_total == cached == total_points, (balance_rows, where)
    return len(sales) - len(acknowledged)


def test_crash_child_records_and_deduplicates(tmp_path: Path) -> None:
    """The child itself, without kills: a retried key is acknowledged again, not re-recorded."""
    data_dir = tmp_path / "data"
    member_id = _setup_store(data_dir)
    first = _Child.spawn(data_dir, member_id)
    first.start(0, [])
    assert first.read_until(b"COMMITTED", START_TIMEOUT_S), first.stderr()
    first.close()
    acked = {
        parts[2].decode(): parts[1].decode()
        for parts in (line.split() for line in first.lines())
        if parts[0] == b"COMMITTED"
    }
    key = next(iter(acked))
    second = _Child.spawn(data_dir, member_id)
    second.start(1, [key])
    assert second.read_until(b"COMMITTED", START_TIMEOUT_S), second.stderr()
    second.close()
    retry = next(line.split() for line in second.lines() if line.startswith(b"COMMITTED"))
    assert retry == [b"COMMITTED", acked[key].encode(), key.encode(), b"0"]
    _check_store(data_dir, member_id, acked, "(no kills mid-way)")
