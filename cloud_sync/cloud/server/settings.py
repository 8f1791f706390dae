"""Cloud configuration (`cloud.toml`), validated once at start.

Unknown keys and wrong types are refused with the key's dotted path in the message, like the
station's settings: a typo must never silently fall back to a default on the chain's server.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cloud_sync.cloud.ledger.trust import StationLimits, TrustPolicy
from cloud_sync.core.networks import ip_networks

__all__ = [
    "DATABASE_URL_ENV",
    "MAX_WORKERS",
    "SQLITE_FILE",
    "CloudConfigError",
    "CloudSection",
    "CloudSettings",
    "HqSection",
    "MemberAppSection",
    "OfflineRedemptionSection",
    "StationLimitsSection",
    "TrustSection",
    "load_cloud_settings",
    "normalize_database_url",
]

DATABASE_URL_ENV = "LOYALPUMP_CLOUD_DATABASE_URL"
SQLITE_FILE = "cloud.sqlite3"


MAX_WORKERS = 64
MIN_ADMIN_TOKEN = 24  # HQ's token guards rules and members: no short guessable ones


class CloudConfigError(ValueError):
    """The configuration cannot be used; the message names the file and the key."""


def normalize_database_url(url: str) -> str:
    """The SQLAlchemy spelling of a database URL: libpq URLs get the psycopg 3 driver.

    Empty stays empty (the SQLite file in data_dir). Anything but SQLite or PostgreSQL is
    refused, so a mistyped scheme fails at start rather than at the first request.
    """
    url = url.strip()
    if not url:
        return ""
    scheme, separator, rest = url.partition("://")
    if not separator or not rest:
        raise ValueError("expected sqlite:///PATH or postgresql://USER@HOST/DB")
    scheme = scheme.lower()
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    if scheme in ("postgresql+psycopg", "sqlite", "sqlite+pysqlite"):
        return f"{scheme}://{rest}"
    raise ValueError(f"unsupported database scheme {scheme!r}; use sqlite:/// or postgresql://")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CloudSection(_Strict):
    data_dir: Path
    database_url: str = Field(default="", repr=False)  # may carry a password
    # A read replica of database_url (PostgreSQL streaming or logical replication): the
    # member app's and HQ's read-only screens read there while it is at most read_max_lag_s
    # behind. Empty: every read goes to database_url.
    database_url_read: str = Field(default="", repr=False)
    read_max_lag_s: Annotated[int, Field(ge=1, le=24 * 3600)] = 30
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    admin_token: str = Field(default="", repr=False)
    admin_token_file: Path | None = None
    # Reverse proxies whose X-Forwarded-For is believed (the HQ login limiter then counts the
    # person's address, not the proxy's). Empty: the headers are ignored.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Serving: worker processes (0: one per core; SQLite always serves from one) and each
    # process's PostgreSQL connections (SQLAlchemy's pool: kept open, plus opened at need).
    workers: Annotated[int, Field(ge=0, le=MAX_WORKERS)] = 0
    pool_size: Annotated[int, Field(ge=1, le=200)] = 5
    max_overflow: Annotated[int, Field(ge=0, le=200)] = 10

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        return ip_networks(value)

    @field_validator("database_url", "database_url_read")
    @classmethod
    def _known_database(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("admin_token")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        if value and len(value) < MIN_ADMIN_TOKEN:
            raise ValueError(f"must be at least {MIN_ADMIN_TOKEN} characters")
        return value

    @model_validator(mode="after")
    def _one_token_source(self) -> CloudSection:
        if self.admin_token and self.admin_token_file is not None:
            raise ValueError("set admin_token or admin_token_file, not both")
        return self

    @model_validator(mode="after")
    def _replica_of_postgresql(self) -> CloudSection:
        """A replica only makes sense beside a PostgreSQL primary (SQLite has one file)."""
        if not self.database_url_read:
            return self
        if not self.database_url_read.startswith("postgresql"):
            raise ValueError("database_url_read must be a postgresql:// URL")
        if not self.database_url.startswith("postgresql"):
            raise ValueError("database_url_read needs a postgresql:// database_url beside it")
        return self


class OfflineRedemptionSection(_Strict):
    """The allowance every station is granted; `enabled` only seeds HQ's switch on a new
    chain (no station, no rule set yet)."""

    enabled: bool = True
    points: Annotated[int, Field(ge=0, le=100_000_000)] = 50_000
    per_member_cap: Annotated[int, Field(ge=0, le=100_000_000)] = 5_000
    lifetime_h: Annotated[int, Field(ge=1, le=24 * 365)] = 72
    max_snapshot_age_h: Annotated[int, Field(ge=1, le=24 * 365)] = 72

    @model_validator(mode="after")
    def _cap_within_allowance(self) -> OfflineRedemptionSection:
        if self.per_member_cap > self.points:
            raise ValueError("per_member_cap is larger than points")
        return self


_StationId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]


class StationLimitsSection(_Strict):
    """Manual adjustments one station books without HQ's approval."""

    adjust_max_points: Annotated[int, Field(ge=0, le=100_000_000)] = 10_000
    adjust_daily_points: Annotated[int, Field(ge=0, le=1_000_000_000)] = 100_000


class TrustSection(_Strict):
    """What a station token may move on its own (docs/sync.md, "Trust"): adjustment
    bounds (for every station, or per station under `[trust.stations.<id>]`), and how many
    rule breaks within `suspend_window_h` suspend a station's offline redemption."""

    adjust_max_points: Annotated[int, Field(ge=0, le=100_000_000)] = 10_000
    adjust_daily_points: Annotated[int, Field(ge=0, le=1_000_000_000)] = 100_000
    suspend_after: Annotated[int, Field(ge=1, le=1_000_000)] = 5
    suspend_window_h: Annotated[int, Field(ge=1, le=24 * 365)] = 24
    clock_skew_s: Annotated[int, Field(ge=0, le=24 * 3600)] = 600
    unverified_sale_points: Annotated[int, Field(ge=0, le=1_000_000)] = 2_000
    detach_window_h: Annotated[int, Field(ge=1, le=24 * 366)] = 14 * 24
    stations: dict[
        Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")], StationLimitsSection
    ] = Field(default_factory=dict)


class HqSection(_Strict):
    """The HQ console's sign-in: cookies, session lifetimes, how many wrong passwords."""

    secure_cookies: bool = False
    session_idle_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 30
    session_max_hours: Annotated[int, Field(ge=1, le=24 * 30)] = 12
    login_attempts: Annotated[int, Field(ge=1, le=1000)] = 5
    login_attempts_per_address: Annotated[int, Field(ge=1, le=10_000)] = 20
    login_window_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 15
    login_concurrency: Annotated[int, Field(ge=1, le=16)] = 2


class MemberAppSection(_Strict):
    """The member's app (`/m/`): one-time codes, tokens, limits, and the chain's brand."""

    gateway: Literal["log"] = "log"  # how codes reach the phone; SMS and WeChat come later
    otp_ttl_minutes: Annotated[int, Field(ge=1, le=30)] = 5
    otp_tries: Annotated[int, Field(ge=1, le=10)] = 5
    otp_per_phone_per_hour: Annotated[int, Field(ge=1, le=100)] = 5
    otp_per_address_per_hour: Annotated[int, Field(ge=1, le=10_000)] = 30
    otp_per_phone_per_day: Annotated[int, Field(ge=1, le=1000)] = 10
    otp_resend_seconds: Annotated[int, Field(ge=0, le=600)] = 60
    session_failures_per_address_per_hour: Annotated[int, Field(ge=1, le=10_000)] = 30
    access_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 15
    refresh_days: Annotated[int, Field(ge=1, le=365)] = 30
    feedback_per_day: Annotated[int, Field(ge=1, le=100)] = 5
    brand_name: Annotated[str, Field(min_length=1, max_length=40)] = "加油会员"
    brand_colour: Annotated[str, Field(pattern=r"^#[0-9A-Fa-f]{6}$")] = "#C8102E"
    brand_logo: Path | None = None  # a PNG, SVG or JPEG of at most 256 KiB


class CloudSettings(_Strict):
    cloud: CloudSection
    hq: HqSection = HqSection()
    member_app: MemberAppSection = MemberAppSection()
    offline_redemption: OfflineRedemptionSection = OfflineRedemptionSection()
    trust: TrustSection = TrustSection()

    def trust_policy(self) -> TrustPolicy:
        """The ledger's bounds on what each station may move on its own."""
        section = self.trust

        def limits(part: TrustSection | StationLimitsSection) -> StationLimits:
            return StationLimits(
                adjust_max_points=part.adjust_max_points,
                adjust_daily_points=part.adjust_daily_points,
            )

        return TrustPolicy(
            limits=limits(section),
            per_station=MappingProxyType(
                {station: limits(part) for station, part in section.stations.items()}
            ),
            suspend_after=section.suspend_after,
            suspend_window_s=section.suspend_window_h * 3600,
            clock_skew_s=section.clock_skew_s,
            unverified_sale_points=section.unverified_sale_points,
            detach_window_s=section.detach_window_h * 3600,
        )

    @property
    def data_dir(self) -> Path:
        return self.cloud.data_dir

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL in use: the configured one, or the SQLite file in data_dir."""
        return self.cloud.database_url or f"sqlite:///{self.cloud.data_dir / SQLITE_FILE}"

    def with_database_url(self, url: str) -> CloudSettings:
        """A copy with another database (the `--database-url` override), validated."""
        try:
            normalized = normalize_database_url(url)
        except ValueError as exc:
            raise CloudConfigError(f"--database-url: {exc}") from exc
        try:  # validated again: the replica's and the workers' checks see the new URL
            section = type(self.cloud).model_validate(
                {**self.cloud.model_dump(), "database_url": normalized}
            )
        except ValidationError as exc:
            raise CloudConfigError(f"--database-url: {_describe(exc)}") from exc
        return self.model_copy(update={"cloud": section})

    def admin_token(self) -> str:
        """The admin token, read afresh from admin_token_file when configured ('' = none)."""
        path = self.cloud.admin_token_file
        if path is None:
            return self.cloud.admin_token
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise CloudConfigError(f"cloud.admin_token_file: cannot read {path}: {exc}") from exc
        if len(token) < MIN_ADMIN_TOKEN:
            raise CloudConfigError(
                f"cloud.admin_token_file: {path} holds fewer than {MIN_ADMIN_TOKEN} characters"
            )
        return token


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    path = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    more = error.error_count() - 1
    suffix = f" (and {more} more)" if more else ""
    return f"{path}: {message}{suffix}"


def _resolve_paths(raw: dict[str, Any], folder: Path) -> None:
    cloud = raw.get("cloud")
    if not isinstance(cloud, dict):
        return
    for key in ("data_dir", "admin_token_file"):
        if isinstance(cloud.get(key), str) and cloud[key]:
            cloud[key] = str((folder / cloud[key]).resolve())
    app = raw.get("member_app")
    if isinstance(app, dict) and isinstance(app.get("brand_logo"), str) and app["brand_logo"]:
        app["brand_logo"] = str((folder / app["brand_logo"]).resolve())


def load_cloud_settings(path: Path) -> CloudSettings:
    """Read and validate `cloud.toml`; relative paths are taken from the file's folder.

    `LOYALPUMP_CLOUD_DATABASE_URL`, when set and not empty, replaces `cloud.database_url`.
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CloudConfigError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CloudConfigError(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CloudConfigError(f"{path}: not valid TOML: {exc}") from exc
    _resolve_paths(raw, path.parent)
    override = os.environ.get(DATABASE_URL_ENV, "").strip()
    if override and isinstance(raw.get("cloud"), dict):
        raw["cloud"]["database_url"] = override
    try:
        return CloudSettings.model_validate(raw)
    except ValidationError as exc:
        shown = _describe(exc)
        if override and shown.startswith("cloud.database_url"):
            shown = f"{DATABASE_URL_ENV}: {shown.partition(': ')[2]}"
        raise CloudConfigError(f"{path}: {shown}") from exc
