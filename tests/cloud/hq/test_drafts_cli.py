"""`loyalpump cloud rules draft|drafts|backtest|approve|publish --draft` end to end, in
process, on both backends: ids printed, refusals as exit 2 with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cloud_sync.cloud.cli import cloud_app
from cloud_sync.cloud.server.run import open_ledger
from cloud_sync.cloud.server.settings import load_cloud_settings

from .seed import END, START, rules_with, seed_month

ADMIN_TOKEN = "admin-token-0123456789abcdef0123"


@pytest.fixture
def config(tmp_path: Path, cloud_db_url: str) -> tuple[Path, str]:
    path = tmp_path / "cloud.toml"
    path.write_text(
        f'[cloud]\ndata_dir = "data"\nadmin_token = "{ADMIN_TOKEN}"\n', encoding="utf-8"
    )
    ledger = open_ledger(load_cloud_settings(path).with_database_url(cloud_db_url))
    try:
        seed_month(ledger, ledger.chain_keys, sales=40)
    finally:
        ledger.close()
    return path, cloud_db_url


def test_draft_backtest_approve_publish(config: tuple[Path, str], tmp_path: Path) -> None:
    path, url = config
    runner = CliRunner()

    def cloud(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(cloud_app, [*args, "-c", str(path), "--database-url", url])
        return result.exit_code, result.stdout, result.stderr

    file = tmp_path / "draft.json"
    file.write_text(rules_with(name="春季"), encoding="utf-8")
    code, out, _ = cloud("rules", "draft", str(file), "--by", "mia")
    assert code == 0
    draft_id = out.strip()
    assert draft_id.startswith("d")
    bad = tmp_path / "bad.json"
    bad.write_text(rules_with(rounding="up"), encoding="utf-8")
    code, _, err = cloud("rules", "draft", str(bad))
    assert code == 2 and "$.rounding" in err and len(err.strip().splitlines()) == 1
    code, _, err = cloud("rules", "approve", draft_id, "--by", "ada")
    assert code == 2 and "backtest" in err
    code, out, _ = cloud(
        "rules",
        "backtest",
        draft_id,
        "--from",
        START.isoformat(),
        "--to",
        END.isoformat(),
        "--json",
    )
    assert code == 0
    result = json.loads(out)
    assert result["totals"]["sales"] == 40 and result["totals"]["diff_points"] == 0
    code, _, err = cloud("rules", "backtest", draft_id, "--days", "30", "--from", "2026-01-01")
    assert code == 2 and "--days" in err
    code, _, err = cloud("rules", "approve", draft_id, "--by", "mia")
    assert code == 2 and "drafted" in err
    code, out, _ = cloud("rules", "approve", draft_id, "--by", "ada")
    assert code == 0 and "approved by ada" in out
    code, out, _ = cloud("rules", "drafts", "--json")
    assert json.loads(out)["drafts"][0]["status"] == "approved"
    code, _, err = cloud("rules", "publish", "--draft", draft_id)
    assert code == 2 and "--by" in err
    code, out, _ = cloud("rules", "publish", "--draft", draft_id, "--by", "ada")
    assert code == 0 and "published as rule set 4" in out
    code, out, _ = cloud("rules", "drafts")
    assert code == 0 and "春季" in out
