"""`trusted_proxies` (the cloud's [cloud] and the station's [web]): one check for both, an
address or a network per entry, and a bad entry named at start-up."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from cloud_sync.cloud.server.settings import CloudSection
from edge_agent.settings import WebSettings

Build = Callable[[list[str]], list[str]]
GOOD = ["127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8", "192.168.1.7/24"]


def _cloud(proxies: list[str]) -> list[str]:
    section = CloudSection(data_dir=Path("/tmp/x"), trusted_proxies=proxies)
    return section.trusted_proxies


def _station(proxies: list[str]) -> list[str]:
    return WebSettings(trusted_proxies=proxies).trusted_proxies


@pytest.mark.parametrize("build", [_cloud, _station])
def test_addresses_and_networks_are_kept_as_written(build: Build) -> None:
    assert build(GOOD) == GOOD
    assert build([]) == []


@pytest.mark.parametrize("build", [_cloud, _station])
@pytest.mark.parametrize("bad", ["10.0.0.300", "proxy.lan", "10.0.0.0/33", ""])
def test_a_bad_entry_is_refused_by_name(build: Build, bad: str) -> None:
    with pytest.raises(ValidationError, match="is not an IP address or network") as caught:
        build(["127.0.0.1", bad])
    assert repr(bad) in str(caught.value)
