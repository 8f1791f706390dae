"""The soak at its CI setting: 4 stations, 3 minutes of faults, on SQLite and PostgreSQL.

`scripts/test` runs these after the rest of the suite, one at a time (they start some
twenty processes each). LOYALPUMP_SOAK_MINUTES and LOYALPUMP_SOAK_STATIONS lengthen a run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.soak.report import render
from tests.soak.run import SoakOptions, run_soak

pytestmark = pytest.mark.soak

MINUTES = float(os.environ.get("LOYALPUMP_SOAK_MINUTES", "3"))
STATIONS = int(os.environ.get("LOYALPUMP_SOAK_STATIONS", "4"))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_chain_keeps_every_sale_and_point_under_fire(backend: str, tmp_path: Path) -> None:
    options = SoakOptions(
        stations=STATIONS, minutes=MINUTES, backend=backend, work_dir=tmp_path / "soak"
    )
    report = run_soak(options, say=lambda line: None)
    text = render(report)
    print(text)
    assert report.passed, text
    # The run did what a soak is for: faults of every kind, and traffic through them.
    assert report.station_restarts >= 1 and sum(report.faults.values()) >= 10, text
    assert report.cashier["attached"] > 0 and report.cashier["redemptions"] > 0, text
