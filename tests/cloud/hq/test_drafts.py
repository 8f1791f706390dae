"""Drafts: validation with JSON paths, maker-checker, stale approvals and backtests,
publishing through the signing path into the stations' feed, pull status."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.cloud.ledger import CloudLedger, LedgerError
from cloud_sync.cloud.ledger.audit import audit_entries
from cloud_sync.cloud.ledger.backtest import (
    MAX_RUNNING,
    backtest_row,
    run_backtest,
    start_backtest,
)
from cloud_sync.cloud.ledger.drafts import (
    approve_draft,
    diff_documents,
    list_versions,
    pull_status,
    save_draft,
    validate_document,
)
from cloud_sync.cloud.server.rules import publish_draft
from cloud_sync.core.privacy import MemberKeys
from cloud_sync.core.signing import public_key_b64, verify_document
from tests.cloud.ledger.fake_station import RULES_TEXT

from .seed import END, NOW, START, rules_with, seed_month


@pytest.fixture
def ledger(cloud_db_url: str) -> Iterator[CloudLedger]:
    keys = MemberKeys.generate("chain-1")
    opened = CloudLedger.open(cloud_db_url, chain_keys=keys)
    seed_month(opened, keys, sales=20)
    try:
        yield opened
    finally:
        opened.close()


def _draft(ledger: CloudLedger, document: str, by: str = "mia") -> str:
    row = ledger.db.transact(lambda c: save_draft(c, document=document, by=by, now=NOW))
    return str(row["draft_id"])


def _start(ledger: CloudLedger, draft_id: str, at: datetime = NOW) -> str:
    """mia starts a chain-wide backtest of the window; its id."""
    return str(
        ledger.db.transact(
            lambda c: start_backtest(
                c,
                draft_id=draft_id,
                window_from=START,
                window_to=END,
                station_id=None,
                by="mia",
                now=at,
            )
        )
    )


def _backtest(ledger: CloudLedger, draft_id: str) -> None:
    run_backtest(ledger.db, ledger.rules, _start(ledger, draft_id), lambda: NOW)


def _approve(ledger: CloudLedger, draft_id: str, by: str) -> None:
    ledger.db.transact(lambda c: approve_draft(c, draft_id=draft_id, by=by, now=NOW))


def _refused(code: str, work: object) -> None:
    with pytest.raises(LedgerError) as caught:
        work()  # type: ignore[operator]
    assert caught.value.code == code


def test_every_fault_carries_its_json_path(ledger: CloudLedger) -> None:
    document = json.loads(rules_with())
    document["earn"][1]["points_per_litre"] = "-1"
    document["redeem"]["points_per_yuan"] = 0
    document["version"] = 3  # published already
    parsed, faults = ledger.db.read(lambda c: validate_document(c, json.dumps(document)))
    assert parsed is None
    paths = {f.path for f in faults}
    assert "$.earn[1].points_per_litre" in paths
    assert "$.redeem.points_per_yuan" in paths
    _, faults = ledger.db.read(lambda c: validate_document(c, rules_with(version=3)))
    assert [f.path for f in faults] == ["$.version"]
    _refused("rules.invalid", lambda: _draft(ledger, json.dumps(document)))
    _refused("rules.invalid", lambda: _draft(ledger, rules_with(name="x" * 81)))
    _, faults = validate_document(None, "[" * 10 + " " * (256 * 1024))
    assert faults[0].path == "$" and "KiB" in faults[0].message


def test_maker_checker_and_stale_approvals(ledger: CloudLedger) -> None:
    key = Ed25519PrivateKey.generate()
    draft_id = _draft(ledger, rules_with())
    _refused("rules.backtest_needed", lambda: _approve(ledger, draft_id, "ada"))
    _backtest(ledger, draft_id)
    _refused("rules.self_approval", lambda: _approve(ledger, draft_id, "mia"))
    _refused("rules.not_approved", lambda: publish_draft(ledger, key, draft_id, "ada", NOW))
    _approve(ledger, draft_id, "ada")
    # An edit after approval and backtest: both stale.
    ledger.db.transact(
        lambda c: save_draft(
            c, document=rules_with(name="edited"), by="mia", now=NOW, draft_id=draft_id
        )
    )
    _refused("rules.not_approved", lambda: publish_draft(ledger, key, draft_id, "ada", NOW))
    _refused("rules.backtest_needed", lambda: _approve(ledger, draft_id, "ada"))
    _backtest(ledger, draft_id)
    _approve(ledger, draft_id, "ada")
    published = publish_draft(ledger, key, draft_id, "bob", NOW)
    assert published["status"] == "published" and published["published_version"] == 4
    actions = [e["action"] for e in ledger.db.read(lambda c: audit_entries(c, target=draft_id))]
    assert actions == [
        "rules.publish",
        "rules.approve",
        "rules.backtest",
        "rules.draft_edit",
        "rules.approve",
        "rules.backtest",
        "rules.draft",
    ]
    versions = ledger.db.read(list_versions)
    top = versions["published"][0]
    assert (top["version"], top["drafted_by"], top["approved_by"], top["published_by"]) == (
        4,
        "mia",
        "ada",
        "bob",
    )
    assert versions["drafts"] == []
    _refused("rules.draft_published", lambda: _approve(ledger, draft_id, "ada"))


def test_published_draft_is_signed_in_the_feed_and_pull_status_flips(ledger: CloudLedger) -> None:
    key = Ed25519PrivateKey.generate()
    draft_id = _draft(ledger, rules_with(effective_from="2027-06-01T00:00:00+08:00"))
    _backtest(ledger, draft_id)
    _approve(ledger, draft_id, "ada")
    page = ledger.changes("S001", 0, 500, NOW)
    cursor = page.next_cursor
    ledger.changes("S002", cursor, 500, NOW)  # S002 is up to date before the publish
    publish_draft(ledger, key, draft_id, "ada", NOW)
    status = ledger.db.read(pull_status)[4]
    assert status == {"pulled": [], "waiting": ["S001", "S002"]}
    page = ledger.changes("S001", cursor, 500, NOW)
    [signed] = [r for r in page.rulesets if r.version == 4]
    verify_document(public_key_b64(key), signed.document, signed.signature)  # raises if bad
    assert ledger.db.read(pull_status)[4] == {"pulled": [], "waiting": ["S001", "S002"]}
    ledger.changes("S001", page.next_cursor, 500, NOW)  # the next pull says it has it
    assert ledger.db.read(pull_status)[4] == {"pulled": ["S001"], "waiting": ["S002"]}
    assert ledger.db.read(pull_status)[3]["pulled"] == ["S001", "S002"]


def test_the_diff_names_each_path_with_both_values() -> None:
    earn = json.loads(RULES_TEXT)["earn"]
    earn[0]["points_per_litre"] = "2"
    diff = diff_documents(RULES_TEXT, rules_with(earn=earn, bonuses=[]))
    by_path = {d["path"]: d for d in diff}
    assert by_path["$.earn[0].points_per_litre"]["before"] == "1"
    assert by_path["$.earn[0].points_per_litre"]["after"] == "2"
    assert by_path["$.version"]["after"] == 4
    assert by_path["$.bonuses[0]"]["change"] == "removed"
    assert diff_documents(RULES_TEXT, RULES_TEXT) == []


def test_one_backtest_at_a_time_per_draft_and_a_stale_one_is_cleared(ledger: CloudLedger) -> None:
    draft_id = _draft(ledger, rules_with())

    def start(at: datetime) -> str:
        return _start(ledger, draft_id, at)

    first = start(NOW)
    _refused("backtest.running", lambda: start(NOW + timedelta(minutes=5)))
    start(NOW + timedelta(hours=3))  # the first was cut off by a restart
    assert ledger.db.read(lambda c: backtest_row(c, first))["status"] == "failed"
    _refused("backtest.window", lambda: start_backtest_window(ledger, draft_id, END, START))


def start_backtest_window(ledger: CloudLedger, draft_id: str, lo: datetime, hi: datetime) -> str:
    return str(
        ledger.db.transact(
            lambda c: start_backtest(
                c, draft_id=draft_id, window_from=lo, window_to=hi, station_id=None, by="m", now=NOW
            )
        )
    )


def test_at_most_three_backtests_run_or_wait_chain_wide(ledger: CloudLedger) -> None:
    """Each backtest takes a core for its whole run: HQ waits, never the stations' pushes."""
    drafts = [_draft(ledger, rules_with()) for _ in range(MAX_RUNNING + 1)]
    started = [start_backtest_window(ledger, d, START, END) for d in drafts[:MAX_RUNNING]]
    _refused("backtest.running", lambda: start_backtest_window(ledger, drafts[-1], START, END))
    run_backtest(ledger.db, ledger.rules, started[0], lambda: NOW)
    start_backtest_window(ledger, drafts[-1], START, END)  # one finished: room again
