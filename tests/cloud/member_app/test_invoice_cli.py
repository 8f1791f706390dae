"""`loyalpump cloud invoice list|file|issue|reject` as HQ (or a job) runs them, on both
backends: the queue read, the outbox written, decisions audited, refusals as exit 2."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from cloud_sync.cloud.cli import cloud_app
from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.cloud.ledger.member_invoices import request_invoice, validate_ask
from cloud_sync.cloud.server.keyfiles import load_or_create_chain_keys
from tests.cloud.hq.seed_chain import seed_chain
from tests.support import free_port

from .activity_support import sale_rows


def run(*args: str) -> Any:
    return CliRunner().invoke(cloud_app, list(args))


def _chain_with_a_request(data: Path, url: str) -> str:
    """The seeded chain under the data folder's own keys, and one invoice request."""
    keys = load_or_create_chain_keys(data)
    ledger = CloudLedger.open(url, chain_keys=keys)
    try:
        seeded = seed_chain(ledger, keys)
        member = seeded.members[1]
        sale = next(s for s in sale_rows(ledger, member) if s.status == "recorded")
        ask = validate_ask(sale.sale_id, "腾讯科技", "9144030071526726XG", "li@qq.com")
        made, _ = ledger.db.transact(
            lambda conn: request_invoice(
                ledger.db,
                conn,
                keys,
                ledger.rules,
                member_id=member,
                ask=ask,
                now=datetime.now(UTC),
            )
        )
        return str(made["request_id"])
    finally:
        ledger.close()


def test_list_file_issue_reject(tmp_path: Path, cloud_db_url: str) -> None:
    config = tmp_path / "cloud.toml"
    config.write_text(
        f'[cloud]\ndata_dir = "data"\nport = {free_port()}\n'
        'admin_token = "invoice-cli-admin-token-0123456789"\n',
        encoding="utf-8",
    )
    request_id = _chain_with_a_request(tmp_path / "data", cloud_db_url)
    base = ("-c", str(config), "--database-url", cloud_db_url)

    listed = run("invoice", "list", *base, "--status", "requested", "--json")
    assert listed.exit_code == 0, listed.stderr
    queue = json.loads(listed.stdout)
    assert [i["request_id"] for i in queue["invoices"]] == [request_id]
    table = run("invoice", "list", *base)
    assert request_id in table.stdout and "腾讯科技" in table.stdout

    filed = run("invoice", "file", *base, "--by", "nightly", "--json")
    assert filed.exit_code == 0, filed.stderr
    assert json.loads(filed.stdout)["filed"] == 1
    written = tmp_path / "data" / "invoices" / "outbox" / f"{request_id}.json"
    assert json.loads(written.read_text(encoding="utf-8"))["email"] == "li@qq.com"
    assert json.loads(run("invoice", "file", *base, "--json").stdout)["filed"] == 0

    bad = run("invoice", "issue", *base, "--id", request_id, "--number", "x")
    assert bad.exit_code == 2 and "invoice number" in bad.stderr
    issued = run(
        "invoice",
        "issue",
        *base,
        "--id",
        request_id,
        "--number",
        "26442000000123456789",
        "--by",
        "ops",
        "--json",
    )
    assert issued.exit_code == 0, issued.stderr
    assert json.loads(issued.stdout)["status"] == "issued"
    again = run("invoice", "reject", *base, "--id", request_id, "--reason", "late")
    assert again.exit_code == 2
    assert again.stderr.strip().splitlines() == ["loyalpump: error: the request is issued"]
    unknown = run("invoice", "reject", *base, "--id", "nope", "--reason", "x")
    assert unknown.exit_code == 2 and "no invoice request" in unknown.stderr
    wrong = run("invoice", "list", *base, "--status", "lost")
    assert wrong.exit_code == 2 and "status is requested, issued or rejected" in wrong.stderr
