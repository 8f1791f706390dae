"""Test support shared by the suites: paths, a settable clock, station settings, ports."""

from __future__ import annotations

import random
import socket
import subprocess
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from edge_agent.services.sales import SaleInput, SaleView, record_sale
from edge_agent.services.station import Station
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


def manual_sale(
    station: Station,
    litres: str | int,
    member_id: str | None,
    *,
    nozzle: int | None = None,
    actor: str = "cashier1",
    at: datetime | None = None,
) -> SaleView:
    """A sale keyed in by hand at pump 1: grade 92 at 7.50 yuan a litre, ended now (or `at`)."""
    volume = Decimal(litres)
    outcome = record_sale(
        station,
        SaleInput(
            source="manual",
            pump=1,
            nozzle=nozzle,
            grade="92",
            litres=volume,
            amount=(volume * Decimal("7.50")).quantize(Decimal("0.01")),
            ended_at=station.now() if at is None else at,
            member_id=member_id,
            actor=actor,
        ),
    )
    return outcome.sale


def pump_sale(
    station: Station, litres: str | int, member_id: str | None, *, at: datetime | None = None
) -> SaleView:
    """A dispenser's sale at pump 1 (grade 92 at 7.50 yuan a litre): any volume, unlike a
    manual one, which the sanity limits hold to `[sale_limits] max_litres`."""
    volume = Decimal(litres)
    outcome = record_sale(
        station,
        SaleInput(
            source="dart",
            source_key=f"dart:test:{uuid.uuid4()}",
            pump=1,
            nozzle=1,
            grade="92",
            litres=volume,
            amount=(volume * Decimal("7.50")).quantize(Decimal("0.01")),
            ended_at=station.now() if at is None else at,
            member_id=member_id,
        ),
    )
    return outcome.sale


# Ports a test process listens on, and listens on again after a kill, come from below
# Linux's ephemeral range (32768-60999 by default): a port picked inside it can be taken by
# any outgoing connection's local end before, or between, the listener's lives (the soak
# lost a station that way: `address already in use` at start).
_LISTEN_PORTS = range(20000, 32000)
_handed_out: set[int] = set()
_port_lock = threading.Lock()


def free_port() -> int:
    """A free port outside the ephemeral range, never handed out twice in this process."""
    with _port_lock:
        for _ in range(1000):
            port = random.choice(_LISTEN_PORTS)
            if port in _handed_out:
                continue
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    raise RuntimeError("no free listening port below the ephemeral range")


def assert_refused(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """A CLI refusal: exit 2, one line on stderr (no traceback) holding every fragment."""
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
