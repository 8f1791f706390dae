"""Test support shared by the suites: paths, a settable clock, station settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from edge_agent.settings import StationSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RULESETS = PROJECT_ROOT / "config" / "rulesets"
SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass
class FakeClock:
    """A clock the test moves by hand; services read it through `Station.clock`."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def make_settings(data_dir: Path, station_id: str = "S001") -> StationSettings:
    return StationSettings.model_validate(
        {"station": {"id": station_id, "data_dir": str(data_dir), "timezone": "Asia/Shanghai"}}
    )
