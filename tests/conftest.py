"""Shared fixtures: a real station store on a temporary SQLite file, with a settable clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from edge_agent.services.rules import install_ruleset
from edge_agent.services.station import Station, open_station
from tests.support import RULESETS, SHANGHAI, FakeClock, make_settings


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI))  # a Monday


@pytest.fixture
def station(tmp_path: Path, clock: FakeClock) -> Iterator[Station]:
    """A station with the domain's field-example rule set installed."""
    opened = open_station(make_settings(tmp_path / "data"), create=True, clock=clock)
    install_ruleset(opened, (RULESETS / "field-examples.json").read_bytes(), actor="test")
    yield opened
    opened.close()
