"""The systemd units: `systemd-analyze verify` accepts them, and the hardening is there.

`verify` insists that ExecStart's program exists, so it checks a copy of each unit whose
ExecStart points at this checkout's `loyalpump` instead of /opt/loyalpump; everything else
is the unit as shipped. A missing `systemd-analyze` fails the test: CI installs it.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"
INSTALLED = "/opt/loyalpump/.venv/bin/loyalpump"
LOYALPUMP = str(Path(sys.executable).with_name("loyalpump"))


def _unit(name: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value (systemd keys may repeat, so configparser won't do)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in (UNITS / name).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None, f"{name}: {line!r} outside a section"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _one(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    values = unit[section].get(key)
    assert values, f"[{section}] {key} missing"
    return values[-1]


def _verify(tmp_path: Path, name: str, text: str) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` of unit `name` written as `text`, its ExecStart pointed at
    this checkout's `loyalpump`."""
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze is missing: apt-get install systemd"
    copy = tmp_path / name
    copy.write_text(text.replace(INSTALLED, LOYALPUMP), encoding="utf-8")
    return subprocess.run(
        [analyze, "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("name", ["loyalpump-edge.service", "loyalpump-cloud.service"])
def test_systemd_analyze_verify_accepts_the_unit(name: str, tmp_path: Path) -> None:
    text = (UNITS / name).read_text(encoding="utf-8")
    assert INSTALLED in text
    result = _verify(tmp_path, name, text)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # verify only warns (exit 0) about unknown keys and bad values: any line naming the
    # unit is a mistake in it.
    complaints = [line for line in output.splitlines() if name in line]
    assert complaints == [], output


def test_verify_would_catch_a_typo(tmp_path: Path) -> None:
    name = "loyalpump-edge.service"
    text = (UNITS / name).read_text(encoding="utf-8")
    result = _verify(tmp_path, name, text.replace("ProtectSystem=", "ProtectSystm="))
    assert "ProtectSystm" in result.stdout + result.stderr


HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "SystemCallArchitectures": "native",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
}


def _assert_service(unit: dict[str, dict[str, list[str]]], expected: dict[str, str]) -> None:
    """[Service] sets each key `expected` names, and the HARDENING, to its value."""
    for key, value in {**expected, **HARDENING}.items():
        assert _one(unit, "Service", key) == value, key


def test_the_station_unit() -> None:
    unit = _unit("loyalpump-edge.service")
    service = unit["Service"]
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "ExecStart": f"{INSTALLED} edge run --config /etc/loyalpump/station.toml",
        "WatchdogSec": "30",
        "Restart": "on-failure",
        "RestartSec": "5",
        "RestartPreventExitStatus": "2",  # refusals wait for a person; 75 and crashes retry
        "TimeoutStopSec": "15",
        "User": "loyalpump",
        "Group": "loyalpump",
        "SupplementaryGroups": "dialout",
        "StateDirectory": "loyalpump",
        "ConfigurationDirectory": "loyalpump",
        "Environment": "PYTHONUNBUFFERED=1",
    }
    _assert_service(unit, expected)
    # The drivers open serial ports: nothing may hide /dev or restrict it to a list.
    for forbidden in ("PrivateDevices", "DevicePolicy", "DeviceAllow", "ProtectClock"):
        assert forbidden not in service, forbidden
    assert "MemoryDenyWriteExecute" not in service  # Python's cffi callbacks need W+X pages
    assert _one(unit, "Install", "WantedBy") == "multi-user.target"


def test_the_cloud_unit() -> None:
    unit = _unit("loyalpump-cloud.service")
    expected = {
        "Type": "simple",
        "ExecStart": f"{INSTALLED} cloud run --config /etc/loyalpump/cloud.toml",
        "Restart": "on-failure",
        "User": "loyalpump-cloud",
        "StateDirectory": "loyalpump-cloud",
        "Environment": "PYTHONUNBUFFERED=1",
    }
    _assert_service(unit, expected)
    assert "SupplementaryGroups" not in unit["Service"]  # no serial port on the server
    assert "MemoryDenyWriteExecute" not in unit["Service"]
    after = " ".join(unit["Unit"]["After"]).split()
    assert {"network-online.target", "postgresql.service"} <= set(after)
    assert "network-online.target" in " ".join(unit["Unit"]["Wants"])


def test_the_units_parse_as_ini_too() -> None:
    """A last guard against stray text: both files are plain INI to any parser."""
    for name in ("loyalpump-edge.service", "loyalpump-cloud.service"):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read(UNITS / name, encoding="utf-8")
        assert {"Unit", "Service", "Install"} <= set(parser.sections())
