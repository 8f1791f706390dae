"""The demo's embedded defaults: rule set, logins, sample members and both configurations.

Everything a newcomer needs ships inside the package, so `loyalpump demo` works from an
installed wheel on a fresh machine, without the repository checkout or a config file.
"""

from __future__ import annotations

import json
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

from cloud_sync.cloud.server.settings import CloudSettings

from ..settings import StationSettings

__all__ = [
    "STATION_ID",
    "DemoLogin",
    "SampleMember",
    "cloud_settings",
    "demo_logins",
    "sample_members",
    "sample_ruleset",
    "station_settings",
    "write_configs",
]

STATION_ID = "S001"
TIMEZONE = "Asia/Shanghai"
_RULESET_FILE = "sample_ruleset.json"

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = ("伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "艳", "杰", "军", "涛", "明", "超")
_PROVINCES = "京沪粤苏浙川鄂湘鲁豫"
_PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # never I or O
_MOBILE_PREFIXES = ("138", "139", "150", "158", "186", "188", "136", "137")


@dataclass(frozen=True)
class DemoLogin:
    name: str
    role: str
    pin: str


@dataclass(frozen=True)
class SampleMember:
    phone: str
    plate: str
    name: str


def sample_ruleset(now: datetime) -> bytes:
    """The sample rule set (config/rulesets/sample.json), in force since yesterday."""
    raw = resources.files(__package__).joinpath(_RULESET_FILE).read_text(encoding="utf-8")
    document = json.loads(raw)
    zone = ZoneInfo(document["timezone"])
    start = (now.astimezone(zone) - timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    document["effective_from"] = start.isoformat()
    return json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")


def demo_logins() -> list[DemoLogin]:
    """A cashier and a manager with fresh six-digit PINs (printed, never stored in clear)."""

    def pin() -> str:
        while True:
            value = f"{secrets.randbelow(1_000_000):06d}"
            if len(set(value)) > 1:
                return value

    return [DemoLogin("wang", "cashier", pin()), DemoLogin("li", "manager", pin())]


def sample_members(count: int, rng: random.Random) -> list[SampleMember]:
    """`count` members with distinct mobile numbers and plates, reproducible from `rng`."""
    members: list[SampleMember] = []
    phones: set[str] = set()
    plates: set[str] = set()
    while len(members) < count:
        phone = rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(100_000_000):08d}"
        serial = rng.choice(_PLATE_LETTERS) + f"{rng.randrange(10_000):04d}"
        plate = rng.choice(_PROVINCES) + rng.choice(_PLATE_LETTERS) + serial
        if phone in phones or plate in plates:
            continue
        phones.add(phone)
        plates.add(plate)
        name = rng.choice(_SURNAMES) + rng.choice(_GIVEN)
        members.append(SampleMember(phone, plate, name))
    return members


def station_settings(
    data_dir: Path,
    *,
    cloud_url: str,
    token: str,
    web_port: int,
    dart_device: str,
    dart_pumps: int,
    dart_first_point: int,
    fdc_port: int,
) -> StationSettings:
    """Station S001: DART pumps in master mode on `dart_device`, the FDC on loopback.

    The FDC numbers its fuelling points from 1; the DART pumps follow from
    `dart_first_point`, so every pump on the cashier page is its own forecourt position.
    """
    dart_pump_tables = [
        {
            "address": 0x50 + index,
            "fuelling_point": dart_first_point + index,
            "nozzles": {1: "92", 2: "95"},
        }
        for index in range(dart_pumps)
    ]
    return StationSettings.model_validate(
        {
            "station": {"id": STATION_ID, "data_dir": str(data_dir), "timezone": TIMEZONE},
            "cloud": {"url": cloud_url, "token": token, "sync_interval_s": 2},
            "web": {"host": "127.0.0.1", "port": web_port},
            "drivers": [
                {
                    "kind": "dart",
                    "name": "dart",
                    "port": dart_device,
                    "mode": "master",
                    "authorize": "auto",
                    "pumps": dart_pump_tables,
                },
                {
                    "kind": "ifsf-fdc",
                    "name": "fdc",
                    "host": "127.0.0.1",
                    "port": fdc_port,
                    "header": "plain",
                    "products": {1: "92", 2: "95", 3: "0"},
                },
            ],
        }
    )


def cloud_settings(data_dir: Path, admin_token: str) -> CloudSettings:
    """A cloud ledger on SQLite in `data_dir`, listening on a free loopback port."""
    return CloudSettings.model_validate(
        {
            "cloud": {
                "data_dir": str(data_dir),
                "host": "127.0.0.1",
                "port": 0,
                "admin_token": admin_token,
            }
        }
    )


def write_configs(work: Path, station: StationSettings, cloud: CloudSettings) -> None:
    """`station.toml` and `cloud.toml` in the work directory (0600: they hold tokens), so
    `loyalpump edge …` and `loyalpump cloud …` can look at the demo's stores. The station's
    links are left out: the pseudo-terminal and the FDC go away with the demo."""
    station_text = (
        "# written by `loyalpump demo`; the simulated links are not listed\n"
        f"[station]\nid = {json.dumps(station.station.id)}\n"
        f"data_dir = {json.dumps(str(station.station.data_dir))}\n"
        f"timezone = {json.dumps(station.station.timezone)}\n\n"
        f"[cloud]\nurl = {json.dumps(station.cloud.url)}\n"
        f"token = {json.dumps(station.cloud.token)}\n"
        f"sync_interval_s = {station.cloud.sync_interval_s}\n\n"
        f"[web]\nhost = {json.dumps(station.web.host)}\nport = {station.web.port}\n"
    )
    cloud_text = (
        "# written by `loyalpump demo`\n"
        f"[cloud]\ndata_dir = {json.dumps(str(cloud.cloud.data_dir))}\n"
        f"host = {json.dumps(cloud.cloud.host)}\n"
        f"admin_token = {json.dumps(cloud.admin_token())}\n"
    )
    for name, text in (("station.toml", station_text), ("cloud.toml", cloud_text)):
        path = work / name
        path.touch(mode=0o600)
        path.write_text(text, encoding="utf-8")
