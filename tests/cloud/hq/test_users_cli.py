"""`loyalpump cloud user …` as HQ runs it: real processes on a real SQLite ledger."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cloud_sync.cloud.cli import cloud_app
from cloud_sync.cloud.ledger.audit import audit_entries
from cloud_sync.cloud.ledger.hq_users import check_password
from cloud_sync.cloud.server.run import open_ledger
from cloud_sync.cloud.server.settings import DATABASE_URL_ENV, load_cloud_settings
from tests.support import assert_refused

LOYALPUMP = str(Path(sys.executable).with_name("loyalpump"))
ENV = {key: value for key, value in os.environ.items() if key != DATABASE_URL_ENV}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """The command in this process (a real process costs seconds each on a busy machine)."""
    result = CliRunner().invoke(cloud_app, ["user", *args], env={DATABASE_URL_ENV: ""})
    code = result.exit_code
    if isinstance(result.exception, SystemExit) and isinstance(result.exception.code, int):
        code = result.exception.code
    return subprocess.CompletedProcess(args, code, result.stdout, result.stderr)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "cloud.toml"
    path.write_text('[cloud]\ndata_dir = "data"\n', encoding="utf-8")
    return path


def _secret(tmp_path: Path, text: str) -> str:
    path = tmp_path / "password.txt"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_add_list_disable_enable_audited_as_cli(tmp_path: Path, config: Path) -> None:
    c = str(config)
    pw = _secret(tmp_path, "first-admin-pass\n")
    added = run("add", "-c", c, "--name", "boss", "--role", "admin", "--password-file", pw)
    assert added.returncode == 0, added.stderr
    assert "boss" in added.stdout
    run("add", "-c", c, "--name", "ann", "--role", "auditor", "--password-file", pw)
    listed = json.loads(run("list", "-c", c, "--json").stdout)
    assert [(u["name"], u["role"], u["disabled"]) for u in listed] == [
        ("ann", "auditor", False),
        ("boss", "admin", False),
    ]
    assert "hash" not in json.dumps(listed)
    assert run("disable", "-c", c, "--name", "ann").returncode == 0
    assert json.loads(run("list", "-c", c, "--json").stdout)[0]["disabled"] is True
    assert run("enable", "-c", c, "--name", "ann").returncode == 0
    ledger = open_ledger(load_cloud_settings(config))
    try:
        entries = ledger.db.read(audit_entries)
        assert [(e["actor"], e["action"], e["target"]) for e in entries] == [
            ("cli", "user.enable", "ann"),
            ("cli", "user.disable", "ann"),
            ("cli", "user.add", "ann"),
            ("cli", "user.add", "boss"),
        ]
        assert "first-admin-pass" not in json.dumps(entries)
        assert "argon2" not in json.dumps(entries)
        user = ledger.db.read(lambda conn: check_password(conn, "boss", "first-admin-pass"))
        assert user is not None
        assert user["role"] == "admin"
    finally:
        ledger.close()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--name", "x y", "--role", "admin"], "user name"),
        (["--name", "ok", "--role", "boss"], "role"),
        (["--name", "ok", "--role", "admin", "--password", "short"], "10 to 256"),
        (["--name", "ok", "--role", "admin"], "--password-file"),  # no terminal to ask on
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, config: Path, args: list[str], fragment: str
) -> None:
    if "--password" in args:
        args = [*args[:-2], "--password-file", _secret(tmp_path, args[-1])]
    assert_refused(run("add", "-c", str(config), *args), fragment)


def test_the_last_admin_is_never_disabled(tmp_path: Path, config: Path) -> None:
    pw = _secret(tmp_path, "first-admin-pass")
    run("add", "-c", str(config), "--name", "boss", "--role", "admin", "--password-file", pw)
    assert_refused(run("disable", "-c", str(config), "--name", "boss"), "last active admin")
    assert_refused(run("disable", "-c", str(config), "--name", "ghost"), "no HQ user")
    assert_refused(
        run("add", "-c", str(config), "--name", "boss", "--role", "admin", "--password-file", pw),
        "exists",
    )


def test_on_a_terminal_the_password_is_asked_twice(config: Path) -> None:
    primary, secondary = pty.openpty()
    child = subprocess.Popen(
        [
            LOYALPUMP,
            "cloud",
            "user",
            "add",
            "-c",
            str(config),
            "--name",
            "tty",
            "--role",
            "marketer",
        ],
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
        start_new_session=True,  # no controlling terminal: the prompt reads the pty (stdin)
    )
    os.close(secondary)
    assert child.stderr is not None
    for _ in range(2):  # each prompt's own " " (getpass) says input is now read, not flushed
        while child.stderr.read(1) != b" ":
            pass
        os.write(primary, b"typed-password-1\n")
    out, err = child.communicate(timeout=60)
    os.close(primary)
    assert child.returncode == 0, err
    assert b"HQ user tty added" in out
    ledger = open_ledger(load_cloud_settings(config))
    try:
        assert ledger.db.read(lambda conn: check_password(conn, "tty", "typed-password-1"))
    finally:
        ledger.close()
