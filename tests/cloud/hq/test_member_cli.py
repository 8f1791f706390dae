"""`loyalpump cloud member import|export|erase` as HQ runs them: exit codes, stdout and
stderr, on SQLite and PostgreSQL (`--database-url`). In-process (typer's runner) to stay
fast; one real process checks the installed entry point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cloud_sync.cloud.cli import cloud_app
from tests.cloud.server.test_cli import run as run_process
from tests.support import assert_refused, free_port


class _Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run(*args: str, check: bool = True) -> Any:
    result = CliRunner().invoke(cloud_app, list(args))
    if check and result.exit_code != 0:
        raise AssertionError(f"{args} exited {result.exit_code}: {result.stderr}")
    return _Result(result.exit_code, result.stdout, result.stderr)


SHEET = "手机号,车牌,姓名,期初积分\r\n13900000001,京B11111 粤BD12345,王五,120\r\n"
BAD = SHEET + "123,,x,0\r\n13900000001,,dup,0\r\n13900000003,,y,-5\r\n"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "cloud.toml"
    path.write_text(
        f'[cloud]\ndata_dir = "data"\nport = {free_port()}\n'
        'admin_token = "member-cli-admin-token-0123456789"\n',
        encoding="utf-8",
    )
    return path


def test_import_export_erase(config: Path, tmp_path: Path, cloud_db_url: str) -> None:
    base = ("-c", str(config), "--database-url", cloud_db_url)
    bad = tmp_path / "bad.csv"
    bad.write_text(BAD, encoding="utf-8")
    refused = run("member", "import", *base, str(bad), check=False)
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert lines[0].startswith("row 3: phone")
    assert lines[1] == "row 4: the same phone is on row 2"
    assert lines[2].startswith("row 5: opening_points")
    assert "3 bad rows" in lines[3]
    good = tmp_path / "good.csv"
    good.write_text(SHEET, encoding="utf-8")
    dry = json.loads(run("member", "import", *base, str(good), "--dry-run", "--json").stdout)
    assert dry == {"rows": 1, "imported": 0, "opening_points": 120, "problems": [], "dry_run": True}
    done = json.loads(run("member", "import", *base, str(good), "--json").stdout)
    assert done["imported"] == 1
    again = run("member", "import", *base, str(good), check=False)
    assert again.returncode == 2
    assert again.stderr.splitlines()[0] == "row 2: the phone belongs to a member already"

    shown = json.loads(run("member", "show", *base, "--plate", "粤BD12345", "--json").stdout)
    member = shown["member_id"]
    assert shown["points"] == 120
    exported = run_process("member", "export", *base, "--id", member, "--by", "dpo")
    doc = json.loads(exported.stdout)
    assert doc["profile"]["phone"] == "+8613900000001" and doc["profile"]["name"] == "王五"
    assert sorted(doc["plates"]) == ["京B11111", "粤BD12345"]
    assert doc["consent"]["channel"] == "import"

    asked = run("member", "erase", *base, "--id", member, check=False)  # no tty: "no"
    assert asked.returncode == 2
    erased = json.loads(run("member", "erase", *base, "--id", member, "--yes", "--json").stdout)
    assert erased["plates_removed"] == 2
    assert_refused(run("member", "show", *base, "--plate", "粤BD12345", check=False))
    assert_refused(run("member", "export", *base, "--id", "nobody", check=False), "no member")
