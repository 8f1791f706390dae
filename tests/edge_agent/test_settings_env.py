"""LOYALPUMP_* environment overrides on top of station.toml, and the generated JSON schema."""

from __future__ import annotations

import importlib
import json
import tomllib
from pathlib import Path

import pytest

from edge_agent.settings import ConfigError, load_settings, station_schema_text
from tests.support import PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "config" / "station.example.toml"
SCHEMA = PROJECT_ROOT / "config" / "station.schema.json"

BASE = """
[station]
id = "S9"
data_dir = "data"

[cloud]
url = "https://hq.example.com"
token_file = "/etc/loyalpump/token"

[web]
port = 8080

[[drivers]]
kind = "ifsf-fdc"
host = "127.0.0.1"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "station.toml"
    path.write_text(BASE, encoding="utf-8")
    return path


def test_without_overrides_the_file_is_read_as_it_is(config: Path) -> None:
    settings = load_settings(config, environ={})
    assert (settings.web.port, settings.station.id) == (8080, "S9")
    assert settings.station.data_dir == config.parent / "data"


def test_each_kind_of_value_is_overridden(config: Path, tmp_path: Path) -> None:
    settings = load_settings(
        config,
        environ={
            "LOYALPUMP_WEB__PORT": "8081",  # an integer
            "LOYALPUMP_WEB__HOST": "0.0.0.0",
            "LOYALPUMP_STATION__ID": "42",  # text field: stays text, not the integer 42
            "LOYALPUMP_STATION__DATA_DIR": str(tmp_path / "elsewhere"),  # a path
            "LOYALPUMP_CLOUD__URL": "http://127.0.0.1:9000",
            "LOYALPUMP_CLOUD__SYNC_INTERVAL_S": "5",
            "LOYALPUMP_CLOUD__TOKEN_FILE": "",  # empty: the key goes, its default applies
            "LOYALPUMP_CLOUD__TOKEN": "true",  # text field: a token that reads like a bool
        },
    )
    assert (settings.web.port, settings.web.host) == (8081, "0.0.0.0")
    assert settings.station.id == "42"
    assert settings.station.data_dir == tmp_path / "elsewhere"
    assert settings.cloud.url == "http://127.0.0.1:9000"
    assert settings.cloud.sync_interval_s == 5
    assert (settings.cloud.token, settings.cloud.token_file) == ("true", None)
    assert len(settings.drivers) == 1  # the file's links are untouched


def test_a_relative_data_dir_is_taken_from_the_config_folder(config: Path) -> None:
    settings = load_settings(config, environ={"LOYALPUMP_STATION__DATA_DIR": "store"})
    assert settings.station.data_dir == config.parent / "store"


def test_an_override_creates_a_section_the_file_lacks(tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    path.write_text('[station]\nid = "S9"\ndata_dir = "d"\n', encoding="utf-8")
    assert load_settings(path, environ={"LOYALPUMP_WEB__PORT": "9090"}).web.port == 9090


def test_other_loyalpump_variables_are_not_overrides(config: Path) -> None:
    environ = {
        "LOYALPUMP_CONFIG": "/etc/loyalpump/station.toml",
        "LOYALPUMP_CLOUD_DATABASE_URL": "sqlite:///x",
        "WEB__PORT": "1",
    }
    assert load_settings(config, environ=environ).web.port == 8080


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        # unknown keys
        ("LOYALPUMP_WEB__PROT", "8081", "LOYALPUMP_WEB__PROT: web.prot: unknown key"),
        ("LOYALPUMP_NOSUCH__KEY", "1", "LOYALPUMP_NOSUCH__KEY: nosuch: unknown key"),
        ("LOYALPUMP_WEB__PORT__X", "1", "LOYALPUMP_WEB__PORT__X: web.port is not a table"),
        ("LOYALPUMP_WEB__", "1", "LOYALPUMP_WEB__: expected LOYALPUMP_<SECTION>__<KEY>"),
        ("LOYALPUMP_DRIVERS__0__HOST", "h", "LOYALPUMP_DRIVERS__0__HOST: [[drivers]] cannot"),
        # bad values
        ("LOYALPUMP_WEB__PORT", "eighty", "LOYALPUMP_WEB__PORT: web.port: Input should be"),
        ("LOYALPUMP_WEB__PORT", "70000", "LOYALPUMP_WEB__PORT: web.port: Input should be less"),
        ("LOYALPUMP_WEB__PORT", "true", "LOYALPUMP_WEB__PORT: web.port: Input should be"),
        ("LOYALPUMP_CLOUD__URL", "http://hq.example.com", "LOYALPUMP_CLOUD__URL: cloud.url:"),
        ("LOYALPUMP_STATION__TIMEZONE", "Mars/Olympus", "LOYALPUMP_STATION__TIMEZONE: station"),
    ],
)
def test_unknown_keys_and_bad_values_are_refused_naming_the_variable(
    config: Path, variable: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(config, environ={variable: value})
    assert str(refused.value).startswith(expected), refused.value


def test_a_check_across_keys_names_the_override_involved(config: Path) -> None:
    with pytest.raises(ConfigError, match=r"not both .*\(with LOYALPUMP_CLOUD__TOKEN\)"):
        load_settings(config, environ={"LOYALPUMP_CLOUD__TOKEN": "secret"})


def test_a_file_error_is_still_reported_against_the_file(tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    path.write_text('[station]\nid = "S9"\ndata_dir = "d"\ncolour = 1\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"station\.toml: station\.colour: unknown key"):
        load_settings(path, environ={"LOYALPUMP_WEB__PORT": "8081"})


def test_the_committed_schema_is_the_generated_one() -> None:
    assert SCHEMA.read_text(encoding="utf-8") == station_schema_text(), "run scripts/gen-schemas"


def test_the_example_config_matches_the_schema() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert schema["additionalProperties"] is False  # unknown top-level tables are refused
    assert set(schema["properties"]) == {
        "station",
        "cloud",
        "web",
        "sale_limits",
        "printer",
        "drivers",
    }
    document = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    importlib.import_module("jsonschema").validate(document, schema)  # the dev extra has it
    # The schema is generated from the model, so the model's verdict is the schema's.
    load_settings(EXAMPLE, environ={})
