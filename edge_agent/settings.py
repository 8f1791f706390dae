"""Station configuration (`station.toml`), validated once at start.

Unknown keys and wrong types are refused with the key's dotted path in the message: a typo
in a config file must never silently fall back to a default on an unattended station PC.
"""

from __future__ import annotations

import tomllib
from ipaddress import ip_address
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "CloudSettings",
    "ConfigError",
    "DartDriverSettings",
    "DartPumpSettings",
    "DriverSettings",
    "IfsfDriverSettings",
    "StationSection",
    "StationSettings",
    "WebSettings",
    "driver_name",
    "load_settings",
]


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StationSection(_Strict):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
    data_dir: Path
    timezone: str = "Asia/Shanghai"
    attach_window_min: Annotated[int, Field(ge=1, le=7 * 24 * 60)] = 30

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class CloudSettings(_Strict):
    url: str = ""
    token: str = Field(default="", repr=False)
    token_file: Path | None = None
    sync_interval_s: Annotated[int, Field(ge=1, le=3600)] = 15

    @field_validator("url")
    @classmethod
    def _encrypted_unless_loopback(cls, value: str) -> str:
        """Enrolment hands the chain's member keys over this link: TLS, or this machine."""
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http(s):// URL")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ValueError("use https:// (plain http only to this machine, e.g. a TLS proxy)")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_token_source(self) -> CloudSettings:
        if self.token and self.token_file is not None:
            raise ValueError("set token or token_file, not both")
        return self


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


class WebSettings(_Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080


class DartPumpSettings(_Strict):
    address: Annotated[int, Field(ge=0x50, le=0x6F)]
    fuelling_point: Annotated[int, Field(ge=1, le=99)]
    nozzles: dict[int, str]
    volume_decimals: Annotated[int, Field(ge=0, le=4)] = 2
    amount_decimals: Annotated[int, Field(ge=0, le=4)] = 2
    price_decimals: Annotated[int, Field(ge=0, le=4)] = 2


_DRIVER_NAME = r"^[A-Za-z0-9_-]{1,32}$"


class DartDriverSettings(_Strict):
    kind: Literal["dart"]
    name: Annotated[str | None, Field(pattern=_DRIVER_NAME)] = None  # part of every sale key
    port: str
    baudrate: Literal[9600, 19200] = 9600
    mode: Literal["master", "sniffer"] = "master"
    authorize: Literal["auto", "never"] = "auto"
    pumps: list[DartPumpSettings] = Field(default_factory=list)


class IfsfDriverSettings(_Strict):
    kind: Literal["ifsf-fdc"]
    name: Annotated[str | None, Field(pattern=_DRIVER_NAME)] = None  # part of every sale key
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 4710
    header: Literal["plain", "md5", "md5-noid"] = "plain"
    passphrase: str = Field(default="", repr=False)
    products: dict[int, str] = Field(default_factory=dict)
    interface_version: Literal["01.00", "00.07"] = "01.00"
    application_sender: Annotated[str, Field(min_length=1, max_length=32)] = "loyalpump"
    workstation_id: Annotated[str, Field(min_length=1, max_length=32)] = "LP1"


DriverSettings = Annotated[DartDriverSettings | IfsfDriverSettings, Field(discriminator="kind")]


class StationSettings(_Strict):
    station: StationSection
    cloud: CloudSettings = CloudSettings()
    web: WebSettings = WebSettings()
    drivers: list[DriverSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _driver_names_unique(self) -> StationSettings:
        names = [driver_name(driver, index) for index, driver in enumerate(self.drivers)]
        if len(set(names)) != len(names):
            raise ValueError("drivers: two links have the same name; name them explicitly")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.station.timezone)

    @property
    def store_path(self) -> Path:
        return self.station.data_dir / "station.sqlite3"


def driver_name(driver: DartDriverSettings | IfsfDriverSettings, index: int) -> str:
    """A link's name: explicit, or the kind and its position (`dart1`, `ifsf-fdc2`).

    The name is part of every sale key, so renaming a link (or reordering unnamed links)
    makes the agent treat sales it already recorded as new ones; name links explicitly on
    sites whose configuration changes.
    """
    return driver.name or f"{driver.kind}{index + 1}"


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    path = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    more = error.error_count() - 1
    suffix = f" (and {more} more)" if more else ""
    return f"{path}: {message}{suffix}"


def load_settings(path: Path) -> StationSettings:
    """Read and validate `station.toml`; a relative data_dir is taken from the file's folder."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    station = raw.get("station")
    if isinstance(station, dict) and isinstance(station.get("data_dir"), str):
        station["data_dir"] = str((path.parent / station["data_dir"]).resolve())
    try:
        return StationSettings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc)}") from exc
