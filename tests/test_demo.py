"""`loyalpump demo` as a newcomer runs it: one real process, embedded defaults only.

The summary is the demo's own account, so the stores it leaves behind (with --data-dir) are
read independently: every sale the station recorded and every event it queued must be in
the cloud ledger's SQLite file, applied once. The demo runs in a session of its own, so any
process it left behind would still be found in that session after it exited.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edge_agent.demo.seed import sample_ruleset

LOYALPUMP = str(Path(sys.executable).with_name("loyalpump"))
pytestmark = pytest.mark.slow


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    process = subprocess.Popen(
        [LOYALPUMP, "demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        env={**os.environ, "COLUMNS": "120"},
    )
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    leftovers = _session_members(process.pid)
    assert leftovers == [], f"processes left behind: {leftovers}"
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _session_members(session: int) -> list[str]:
    """Processes still in the session the demo led (it has exited and been reaped)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended while we looked
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == session:
            found.append(f"{entry.name} {stat.split(' ', 2)[1]}")
    return found


def _query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute(sql).fetchall()


def test_demo_drives_both_links_into_a_synced_balanced_chain(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    result = _run("--seconds", "20", "--json", "--data-dir", str(data), timeout=90)
    assert result.returncode == 0, result.stderr + result.stdout[-3000:]
    summary = json.loads(result.stdout)  # stdout is one JSON document and nothing else
    assert summary["ok"] is True and summary["problems"] == []
    assert summary["stop_reason"] == "time"

    by_source = summary["sales"]["by_source"]
    assert by_source["dart"]["sales"] > 0
    assert by_source["ifsf"]["sales"] > 0
    assert summary["sales"]["with_member"] > 0
    assert summary["points"]["earned"] > 0
    assert summary["members"] == 20 == summary["cloud"]["members"]

    station, cloud = summary["station"], summary["cloud"]
    assert station["backlog"] == 0
    assert station["rules_version"] == 3
    assert cloud["events_applied"] == station["events_pushed"] > 0
    assert cloud["events_rejected"] == 0
    assert cloud["ledger_problems"] == [] and station["ledger_problems"] == []
    assert summary["shutdown"] == {"clean": True, "threads_left": []}

    # The stores agree with the summary, read without the demo's code.
    store = data / "station" / "station.sqlite3"
    ledger = data / "cloud" / "cloud.sqlite3"
    sales = dict(_query(store, "SELECT source, count(*) FROM sales GROUP BY source"))
    assert sales == {"dart": by_source["dart"]["sales"], "ifsf": by_source["ifsf"]["sales"]}
    [(events, acked)] = _query(store, "SELECT count(*), count(acked_at) FROM outbox")
    assert events == acked == station["events_pushed"]
    applied = dict(_query(ledger, "SELECT status, count(*) FROM events GROUP BY status"))
    assert applied == {"applied": events}
    [(cloud_sales,)] = _query(ledger, "SELECT count(*) FROM sales")
    assert cloud_sales == summary["sales"]["total"]
    [(points,)] = _query(store, "SELECT coalesce(sum(points), 0) FROM sales")
    assert points == summary["points"]["earned"]


def test_demo_console_shows_urls_logins_and_the_summary(tmp_path: Path) -> None:
    result = _run("--seconds", "3", timeout=60)
    assert result.returncode == 0, result.stderr + result.stdout[-3000:]
    out = result.stdout
    for text in (
        "Cashier page",
        "http://127.0.0.1:",
        "/docs",
        "wang (cashier) PIN",
        "li (manager) PIN",
        "admin token",
        "Sales",
        "cloud events applied",
        "every sale and point is in the cloud ledger",
    ):
        assert text in out, f"{text!r} missing from:\n{out}"
    # a few sample members to try at once: phone, plate, name and the phone's last 4 digits
    tried = re.findall(r"(1[3-9]\d{9})  ·  (\S{7,8})  ·  \S+  ·  last 4: (\d{4})", out)
    assert len(tried) == 3, out
    assert all(phone.endswith(last4) for phone, _, last4 in tried)


def test_demo_refuses_a_data_dir_in_use(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("mine", encoding="utf-8")
    result = subprocess.run(
        [LOYALPUMP, "demo", "--data-dir", str(tmp_path), "--seconds", "5"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "must be a new or empty directory" in result.stderr
    assert (tmp_path / "something").read_text(encoding="utf-8") == "mine"


def test_the_embedded_rule_set_is_the_sample_one_in_force_now() -> None:
    now = datetime.now(UTC)
    embedded = json.loads(sample_ruleset(now))
    sample = json.loads(
        (Path(__file__).parents[1] / "config" / "rulesets" / "sample.json").read_text("utf-8")
    )
    assert datetime.fromisoformat(embedded.pop("effective_from")) < now
    sample.pop("effective_from")
    assert embedded == sample  # edge_agent/demo/sample_ruleset.json follows config/rulesets
