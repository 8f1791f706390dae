"""Station configuration (`station.toml`), validated once at start.

Unknown keys and wrong types are refused with the key's dotted path in the message: a typo
in a config file must never silently fall back to a default on an unattended station PC.

Environment overrides (a systemd drop-in, a container) are applied on top of the file before
validation: `LOYALPUMP_<SECTION>__<KEY>`, a double underscore between levels, e.g.
`LOYALPUMP_CLOUD__TOKEN`, `LOYALPUMP_WEB__PORT=8081`, `LOYALPUMP_STATION__DATA_DIR`.

- A value for a text field (strings, paths) is taken as it is; any other value is read as a
  TOML scalar (`8081`, `true`), and refused by validation if it has the wrong type.
- An empty value removes the key, so its default applies (`LOYALPUMP_CLOUD__TOKEN_FILE=` to
  use `LOYALPUMP_CLOUD__TOKEN` instead of the file's `token_file`).
- A relative `data_dir` (or `tls_cert`, `tls_key`) is taken from the config file's folder, as
  in the file.
- Unknown keys are refused with the variable's name; `[[drivers]]` cannot be overridden
  (links are edited in the file). Names without a double underscore (`LOYALPUMP_CONFIG`, the
  config path) are not overrides and are left alone.

`station_json_schema()` is the file's JSON schema; `scripts/gen-schemas` writes it to
`config/station.schema.json` for editors and reviewers.
"""

from __future__ import annotations

import json
import os
import tomllib
import types
from collections.abc import Mapping
from ipaddress import ip_address
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cloud_sync.core.networks import ip_networks

from .sale_limit_settings import SaleLimitsSettings

__all__ = [
    "CloudSettings",
    "ConfigError",
    "DartDriverSettings",
    "DartPumpSettings",
    "DriverSettings",
    "IfsfDriverSettings",
    "PrinterSettings",
    "SaleLimitsSettings",
    "StationSection",
    "StationSettings",
    "WebSettings",
    "driver_name",
    "load_settings",
    "station_json_schema",
    "station_schema_text",
]

ENV_PREFIX = "LOYALPUMP_"
_SCHEMA_URL = "https://json-schema.org/draft/2020-12/schema"


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    """Unknown keys refused; integers strict too (`port = true` or `"8080"` is a mistake)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StationSection(_Strict):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
    data_dir: Path
    timezone: str = "Asia/Shanghai"
    attach_window_min: Annotated[int, Field(strict=True, ge=1, le=7 * 24 * 60)] = 30
    # A cashier may undo their own attach this long after making it; later, or someone
    # else's, only a manager (with a reason) while the attach window is open.
    undo_window_min: Annotated[int, Field(strict=True, ge=1, le=7 * 24 * 60)] = 10

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _undo_within_attach(self) -> StationSection:
        """A window set by hand beyond the attach window is a mistake; the default (10) just
        shrinks to a shorter attach window (`cashier_undo_min`)."""
        explicit = "undo_window_min" in self.model_fields_set
        if explicit and self.undo_window_min > self.attach_window_min:
            raise ValueError("undo_window_min must be at most attach_window_min")
        return self

    @property
    def cashier_undo_min(self) -> int:
        """Minutes after their attach a cashier may undo it themselves."""
        return min(self.undo_window_min, self.attach_window_min)


class CloudSettings(_Strict):
    url: str = ""
    token: str = Field(default="", repr=False)
    token_file: Path | None = None
    sync_interval_s: Annotated[int, Field(strict=True, ge=1, le=3600)] = 15

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


_HOST_NAME = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]{1,253})$"


class WebSettings(_Strict):
    """The cashier page's listener.

    - `allowed_hosts`: names the `Host` header may carry besides `host`, `localhost`,
      `127.0.0.1` and `[::1]` (any port): the station PC's LAN name or address when tills
      open the page from another PC. Other names are answered 400 (DNS rebinding).
    - `trusted_proxies`: addresses of reverse proxies whose `X-Forwarded-For` and
      `X-Forwarded-Proto` are believed. Empty (the default): the headers are ignored, and
      the login limiter counts the connection's own address.
    - `tls_cert` / `tls_key`: PEM files; set both to serve the page over HTTPS (the session
      cookie is then Secure).
    - `login_concurrency`: PIN hashes at once (argon2 takes 19 MiB each); a login finding
      them busy is answered 429 at once.
    """

    host: str = "127.0.0.1"
    port: Annotated[int, Field(strict=True, ge=1, le=65535)] = 8080
    allowed_hosts: list[Annotated[str, Field(pattern=_HOST_NAME)]] = Field(default_factory=list)
    trusted_proxies: list[str] = Field(default_factory=list)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    login_concurrency: Annotated[int, Field(strict=True, ge=1, le=16)] = 2

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        return ip_networks(value)

    @model_validator(mode="after")
    def _cert_and_key(self) -> WebSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("set both tls_cert and tls_key, or neither")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


class PrinterSettings(_Strict):
    """The till's receipt printer (ESC/POS, GB18030, 80 mm): none, a serial line
    (`device`: /dev/ttyUSB1 or a pyserial URL, at `baudrate`) or the network (`host`,
    `port` 9100, raw TCP). `header` is the receipt's first line (the station's id if
    empty), `footer` its last."""

    kind: Literal["none", "serial", "tcp"] = "none"
    device: Annotated[str, Field(max_length=256)] = ""
    baudrate: Literal[9600, 19200, 38400, 57600, 115200] = 9600
    host: Annotated[str, Field(max_length=253)] = ""
    port: Annotated[int, Field(strict=True, ge=1, le=65535)] = 9100
    timeout_s: Annotated[int, Field(strict=True, ge=1, le=60)] = 5
    header: Annotated[str, Field(max_length=24)] = ""
    footer: Annotated[str, Field(max_length=48)] = ""

    @model_validator(mode="after")
    def _where(self) -> PrinterSettings:
        if self.kind == "serial" and not self.device:
            raise ValueError("a serial printer needs its device")
        if self.kind == "tcp" and not self.host:
            raise ValueError("a network printer needs its host")
        return self


class DartPumpSettings(_Strict):
    address: Annotated[int, Field(strict=True, ge=0x50, le=0x6F)]
    fuelling_point: Annotated[int, Field(strict=True, ge=1, le=99)]
    nozzles: dict[int, str]
    volume_decimals: Annotated[int, Field(strict=True, ge=0, le=4)] = 2
    amount_decimals: Annotated[int, Field(strict=True, ge=0, le=4)] = 2
    price_decimals: Annotated[int, Field(strict=True, ge=0, le=4)] = 2


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
    port: Annotated[int, Field(strict=True, ge=1, le=65535)] = 4710
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
    sale_limits: SaleLimitsSettings = SaleLimitsSettings()
    printer: PrinterSettings = PrinterSettings()
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


_Path = tuple[str, ...]


def _wants_text(annotation: Any) -> bool:
    """True when a field takes text as it is (str, Path, a string Literal), maybe optional."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _wants_text(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return any(_wants_text(arg) for arg in get_args(annotation) if arg is not type(None))
    if origin is Literal:
        return any(isinstance(arg, str) for arg in get_args(annotation))
    return isinstance(annotation, type) and issubclass(annotation, str | Path)


def _scalar(text: str) -> object:
    """`text` read as a TOML scalar (8081, true, "quoted"), or the text itself."""
    try:
        document = tomllib.loads(f"value = {text}")
    except tomllib.TOMLDecodeError:
        return text
    value = document.get("value")
    if len(document) != 1 or not isinstance(value, bool | int | float | str):
        return text  # a table, an array, a date or trailing lines: not a scalar
    return value


def _table(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _override_field(variable: str, path: _Path) -> Any:
    """The annotation of the settings field `path` names; ConfigError naming `variable`."""
    model: type[BaseModel] = StationSettings
    for depth, part in enumerate(path):
        dotted = ".".join(path[: depth + 1])
        if depth == 0 and part == "drivers":
            raise ConfigError(
                f"{variable}: [[drivers]] cannot be overridden from the environment; "
                "edit the links in station.toml"
            )
        field = model.model_fields.get(part)
        if field is None:
            raise ConfigError(f"{variable}: {dotted}: unknown key")
        table = _table(field.annotation)
        if depth == len(path) - 1:
            if table is not None:
                raise ConfigError(f"{variable}: {dotted} is a table; name one of its keys")
            return field.annotation
        if table is None:
            raise ConfigError(f"{variable}: {dotted} is not a table")
        model = table
    raise AssertionError("unreachable: a path has at least one part")


def _apply_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[_Path, str]:
    """Apply `LOYALPUMP_*__*` variables to the parsed file; answers {key path: variable}."""
    origins: dict[_Path, str] = {}
    for variable in sorted(environ):
        rest = variable[len(ENV_PREFIX) :]
        if not variable.startswith(ENV_PREFIX) or "__" not in rest:
            continue
        path = tuple(rest.lower().split("__"))
        if not all(path):
            raise ConfigError(f"{variable}: expected LOYALPUMP_<SECTION>__<KEY>")
        annotation = _override_field(variable, path)
        table = raw
        for depth, part in enumerate(path[:-1]):
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                dotted = ".".join(path[: depth + 1])
                raise ConfigError(f"{variable}: {dotted} in the file is not a table")
        text = environ[variable]
        if text == "":
            table.pop(path[-1], None)
        else:
            table[path[-1]] = text if _wants_text(annotation) else _scalar(text)
        origins[path] = variable
    return origins


def _describe(error: ValidationError, config: Path, origins: Mapping[_Path, str]) -> str:
    """One line: the first problem, with the variable's name when an override caused it."""
    problems = error.errors()

    def location(problem: Any) -> _Path:
        return tuple(str(part) for part in problem["loc"])

    def source(loc: _Path) -> str | None:
        for path, variable in origins.items():
            if loc[: len(path)] == path:
                return variable
        return None

    first = next((p for p in problems if source(location(p))), problems[0])
    loc = location(first)
    dotted = ".".join(loc) or "(top level)"
    message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
    more = len(problems) - 1
    suffix = f" (and {more} more)" if more else ""
    variable = source(loc)
    if variable is not None:
        return f"{variable}: {dotted}: {message}{suffix}"
    involved = [v for path, v in origins.items() if path[: len(loc)] == loc]
    if involved:  # a check across keys (token and token_file) with one of them overridden
        suffix += f" (with {', '.join(involved)})"
    return f"{config}: {dotted}: {message}{suffix}"


def load_settings(path: Path, environ: Mapping[str, str] = os.environ) -> StationSettings:
    """Read `station.toml`, apply the environment's overrides, validate.

    `environ` is the process environment unless a test passes its own; a relative data_dir
    is taken from the file's folder.
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    origins = _apply_overrides(raw, environ)
    station = raw.get("station")
    if isinstance(station, dict) and isinstance(station.get("data_dir"), str):
        station["data_dir"] = str((path.parent / station["data_dir"]).resolve())
    web = raw.get("web")
    if isinstance(web, dict):
        for key in ("tls_cert", "tls_key"):
            if isinstance(web.get(key), str):
                web[key] = str((path.parent / web[key]).resolve())
    try:
        return StationSettings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, origins)) from exc


def station_json_schema() -> dict[str, Any]:
    """The JSON schema of `station.toml`, from the pydantic model (so it cannot drift)."""
    schema = StationSettings.model_json_schema()
    return {
        "$schema": _SCHEMA_URL,
        "title": "loyalpump station.toml",
        "description": (
            "Station agent configuration. Generated by scripts/gen-schemas from "
            "edge_agent/settings.py; do not edit by hand."
        ),
        **{key: value for key, value in schema.items() if key != "title"},
    }


def station_schema_text() -> str:
    """The schema as committed in `config/station.schema.json`."""
    return json.dumps(station_json_schema(), indent=2, ensure_ascii=False) + "\n"
