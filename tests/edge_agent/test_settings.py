"""The shipped example configuration stays valid, and its types are what the drivers expect."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.settings import (
    ConfigError,
    DartDriverSettings,
    IfsfDriverSettings,
    load_settings,
)
from tests.support import PROJECT_ROOT


def test_the_example_station_config_loads() -> None:
    settings = load_settings(PROJECT_ROOT / "config" / "station.example.toml")
    assert settings.station.id == "S001"
    dart, fdc = settings.drivers
    assert isinstance(dart, DartDriverSettings)
    assert isinstance(fdc, IfsfDriverSettings)
    assert dart.pumps[0].address == 0x50
    assert dart.pumps[0].nozzles == {1: "92", 2: "95"}
    assert (dart.pumps[0].volume_decimals, dart.pumps[0].price_decimals) == (2, 2)
    assert fdc.products[3] == "0"
    assert "passphrase" not in repr(fdc)


def test_relative_data_dir_is_taken_from_the_config_folder(tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    path.write_text('[station]\nid = "S9"\ndata_dir = "store"\n', encoding="utf-8")
    assert load_settings(path).station.data_dir == tmp_path / "store"


def test_token_and_token_file_together_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    path.write_text(
        '[station]\nid = "S9"\ndata_dir = "d"\n[cloud]\ntoken = "x"\ntoken_file = "/t"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"cloud: .*not both"):
        load_settings(path)


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://hq.example.com", True),
        ("http://127.0.0.1:8000", True),
        ("http://localhost:8000/", True),
        ("http://[::1]:8000", True),
        ("http://hq.example.com", False),  # member keys would cross the network in clear
        ("http://10.0.0.5:8000", False),
        ("ftp://hq.example.com", False),
        ("hq.example.com", False),
    ],
)
def test_the_cloud_is_reached_over_tls_unless_on_this_machine(
    tmp_path: Path, url: str, accepted: bool
) -> None:
    path = tmp_path / "station.toml"
    path.write_text(
        f'[station]\nid = "S9"\ndata_dir = "d"\n[cloud]\nurl = "{url}"\n', encoding="utf-8"
    )
    if accepted:
        assert load_settings(path).cloud.url == url.rstrip("/")
    else:
        with pytest.raises(ConfigError, match=r"cloud\.url: "):
            load_settings(path)
