"""Cloud database fixtures: every test that touches the cloud ledger runs on SQLite and on
the real PostgreSQL server at 127.0.0.1:5432 (user postgres, trust auth).

Each pytest worker creates its own PostgreSQL database for the session and drops it at the
end; each test gets an empty `public` schema in it, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.support import RULESETS

from .chain import CloudProcess

PG_ADMIN_URL = os.environ.get("LOYALPUMP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_url(database: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


def sqlalchemy_url(libpq_url: str) -> str:
    """The SQLAlchemy spelling of a libpq URL (psycopg 3 driver)."""
    return libpq_url.replace("postgresql://", "postgresql+psycopg://", 1)


@contextmanager
def scratch_database(prefix: str = "loyalpump_test") -> Iterator[str]:
    """A new PostgreSQL database (its libpq URL), dropped on the way out."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url(name)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of this worker's own, dropped when the session ends."""
    with scratch_database() as url:
        yield url


def fresh_pg_schema(libpq_url: str) -> None:
    with psycopg.connect(libpq_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")


@pytest.fixture(params=["sqlite", "postgresql"])
def cloud_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLAlchemy URL of an empty database, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    libpq_url: str = request.getfixturevalue("pg_database")
    fresh_pg_schema(libpq_url)
    return sqlalchemy_url(libpq_url)


@pytest.fixture
def cloud(tmp_path: Path, cloud_db_url: str) -> Iterator[CloudProcess]:
    """The cloud service as a real process, the field-examples rule set published."""
    process = CloudProcess(tmp_path / "cloud", cloud_db_url)
    process.write_config()
    process.publish(RULESETS / "field-examples.json")
    try:
        yield process
    finally:
        process.stop()
