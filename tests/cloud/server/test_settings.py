"""cloud.toml and the key files: refused with the key's path, created once, kept private."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cloud_sync.cloud.server.keyfiles import (
    CHAIN_KEY_ID,
    MEMBER_KEYS_FILE,
    SIGNING_KEY_FILE,
    KeyFileError,
    load_or_create_chain_keys,
    load_or_create_signing_key,
)
from cloud_sync.cloud.server.settings import DATABASE_URL_ENV, CloudConfigError, load_cloud_settings
from cloud_sync.core.signing import public_key_b64
from tests.support import PROJECT_ROOT


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cloud.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_example_config_loads() -> None:
    settings = load_cloud_settings(PROJECT_ROOT / "config" / "cloud.toml")
    assert settings.cloud.port == 8000
    assert settings.database_url == "sqlite:////var/lib/loyalpump-cloud/cloud.sqlite3"
    assert settings.offline_redemption.points == 50_000
    policy = settings.trust_policy()
    assert (policy.limits.adjust_max_points, policy.limits.adjust_daily_points) == (
        10_000,
        100_000,
    )
    assert (policy.suspend_after, policy.suspend_window_s) == (5, 24 * 3600)


def test_trust_limits_per_station_and_refusals(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[cloud]\ndata_dir = "d"\n[trust]\nadjust_max_points = 500\n'
        "[trust.stations.S007]\nadjust_max_points = 50000\n",
    )
    policy = load_cloud_settings(path).trust_policy()
    assert policy.limits_for("S001").adjust_max_points == 500
    assert policy.limits_for("S007").adjust_max_points == 50_000
    assert policy.limits_for("S007").adjust_daily_points == 100_000
    for bad, key in (
        ("[trust]\nsuspend_after = 0\n", "trust.suspend_after"),
        ("[trust]\nadjust_max_points = -1\n", "trust.adjust_max_points"),
        ('[trust.stations."bad id"]\nadjust_max_points = 1\n', "trust.stations"),
        ("[trust]\nsuspend_afterr = 3\n", "trust.suspend_afterr: unknown key"),
    ):
        with pytest.raises(CloudConfigError) as refused:
            load_cloud_settings(write(tmp_path, '[cloud]\ndata_dir = "d"\n' + bad))
        assert key in str(refused.value)


def test_relative_paths_and_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    (tmp_path / "admin.token").write_text("secret-from-file-0123456789abcdef\n", encoding="utf-8")
    path = write(tmp_path, '[cloud]\ndata_dir = "data"\nadmin_token_file = "admin.token"\n')
    settings = load_cloud_settings(path)
    assert settings.data_dir == (tmp_path / "data").resolve()
    assert settings.database_url == f"sqlite:///{(tmp_path / 'data').resolve()}/cloud.sqlite3"
    assert settings.admin_token() == "secret-from-file-0123456789abcdef"
    assert (settings.cloud.host, settings.cloud.port) == ("127.0.0.1", 8000)
    assert settings.offline_redemption.enabled is True


def test_postgresql_urls_get_the_psycopg_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    path = write(
        tmp_path, '[cloud]\ndata_dir = "d"\ndatabase_url = "postgresql://lp@db.example/ledger"\n'
    )
    assert load_cloud_settings(path).database_url == "postgresql+psycopg://lp@db.example/ledger"
    monkeypatch.setenv(DATABASE_URL_ENV, "postgres://other@host/db")
    assert load_cloud_settings(path).database_url == "postgresql+psycopg://other@host/db"
    override = load_cloud_settings(path).with_database_url("sqlite:////tmp/x.sqlite3")
    assert override.database_url == "sqlite:////tmp/x.sqlite3"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[cloud]\ndata_dir = "d"\ncolour = "red"\n', "cloud.colour: unknown key"),
        ('[cloud]\ndata_dir = "d"\nport = "eighty"\n', "cloud.port"),
        ('[cloud]\ndata_dir = "d"\nport = 70000\n', "cloud.port"),
        ("[cloud]\nport = 8000\n", "cloud.data_dir"),
        ('[cloud]\ndata_dir = "d"\ndatabase_url = "mysql://x/y"\n', "cloud.database_url"),
        (
            f'[cloud]\ndata_dir = "d"\nadmin_token = "{"a" * 30}"\nadmin_token_file = "f"\n',
            "admin_token or admin_token_file, not both",
        ),
        ('[cloud]\ndata_dir = "d"\nadmin_token = "hq"\n', "cloud.admin_token: must be at least"),
        ('[cloud]\ndata_dir = "d"\n[offline_redemption]\nlifetime_h = 0\n', "lifetime_h"),
        ('[cloud]\ndata_dir = "d"\n[offline_redemption]\nenable = true\n', "enable: unknown"),
        ("[cloud\n", "not valid TOML"),
    ],
)
def test_bad_configs_name_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, fragment: str
) -> None:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    with pytest.raises(CloudConfigError) as caught:
        load_cloud_settings(write(tmp_path, text))
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(CloudConfigError, match="no such file"):
        load_cloud_settings(tmp_path / "absent.toml")


def test_key_files_are_created_once_and_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "cloud"
    keys = load_or_create_chain_keys(data_dir)
    signing = load_or_create_signing_key(data_dir)
    assert keys.key_id == CHAIN_KEY_ID
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    for name in (MEMBER_KEYS_FILE, SIGNING_KEY_FILE):
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600
    again = load_or_create_chain_keys(data_dir)
    assert (again.encryption_key, again.index_key) == (keys.encryption_key, keys.index_key)
    assert public_key_b64(load_or_create_signing_key(data_dir)) == public_key_b64(signing)
    assert not [p.name for p in data_dir.iterdir() if p.name.endswith(".tmp")]


def test_readable_key_files_are_refused(tmp_path: Path) -> None:
    load_or_create_chain_keys(tmp_path)
    load_or_create_signing_key(tmp_path)
    for name, load in (
        (MEMBER_KEYS_FILE, load_or_create_chain_keys),
        (SIGNING_KEY_FILE, load_or_create_signing_key),
    ):
        os.chmod(tmp_path / name, 0o644)
        with pytest.raises(KeyFileError, match="chmod 600"):
            load(tmp_path)
        os.chmod(tmp_path / name, 0o600)


def test_damaged_key_files_are_refused(tmp_path: Path) -> None:
    load_or_create_chain_keys(tmp_path)
    (tmp_path / MEMBER_KEYS_FILE).write_text('{"key_id": "chain-1"}', encoding="ascii")
    with pytest.raises(KeyFileError, match="damaged"):
        load_or_create_chain_keys(tmp_path)
