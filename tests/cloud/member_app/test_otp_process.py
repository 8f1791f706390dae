"""Signing in to the member app against a real `loyalpump cloud run` (uvicorn, its own
process): parallel code requests for one phone within the resend cooldown (one send), the
per-address limit against forged and (from a trusted proxy) real forwarded addresses, and the
code read from the data folder.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.cloud.chain import CloudProcess

from .sign_in_support import API, last_code, messages

PER_ADDRESS = 30  # the [member_app] default


@dataclass
class ProxiedCloud(CloudProcess):
    """The cloud behind a reverse proxy on 127.0.0.1 (`[cloud] trusted_proxies`)."""

    def write_config(self) -> None:
        super().write_config()
        with self.config.open("a", encoding="utf-8") as config:
            config.write('trusted_proxies = ["127.0.0.1"]\n')


def _running(cloud: CloudProcess) -> Iterator[CloudProcess]:
    cloud.start()
    try:
        yield cloud
    finally:
        cloud.stop()


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[CloudProcess]:
    yield from _running(CloudProcess(tmp_path / "cloud", f"sqlite:///{tmp_path / 'c.sqlite3'}"))


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[CloudProcess]:
    yield from _running(ProxiedCloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'c.sqlite3'}"))


def _otp(client: httpx.Client, phone: str, forwarded: str | None = None) -> int:
    headers = {} if forwarded is None else {"X-Forwarded-For": forwarded}
    return client.post(f"{API}/otp", json={"phone": phone}, headers=headers).status_code


@pytest.mark.slow
def test_parallel_codes_forged_addresses_and_signing_in(cloud: CloudProcess) -> None:
    data = cloud.home / "data"
    with httpx.Client(base_url=cloud.url, timeout=30) as client:
        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(lambda _: _otp(client, "13912340000"), range(20)))
        assert Counter(statuses) == {202: 20}  # all within the cooldown of the first
        assert len(messages(data)) == 1
        # A caller that is no trusted proxy cannot pick the address the limit counts.
        forged = [
            _otp(client, f"1391235{n:04d}", forwarded=f"203.0.113.{n}")
            for n in range(PER_ADDRESS - 1 + 1)
        ]
        assert forged == [202] * (PER_ADDRESS - 1) + [429]
        code = last_code(data, "13912340000")
        answer = client.post(
            f"{API}/session", json={"phone": "13912340000", "code": code, "consent": True}
        )
        assert answer.status_code == 200 and answer.json()["new_member"] is True
        headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        assert client.delete(f"{API}/session", headers=headers).status_code == 204
        assert client.delete(f"{API}/session", headers=headers).status_code == 401


@pytest.mark.slow
def test_behind_a_trusted_proxy_each_forwarded_address_is_counted(proxied: CloudProcess) -> None:
    with httpx.Client(base_url=proxied.url, timeout=30) as client:
        spread = [
            _otp(client, f"1391236{n:04d}", forwarded=f"203.0.113.{n}")
            for n in range(PER_ADDRESS + 1)
        ]
        assert spread == [202] * (PER_ADDRESS + 1)
        one = [
            _otp(client, f"1391237{n:04d}", forwarded="198.51.100.9")
            for n in range(PER_ADDRESS + 1)
        ]
        assert one == [202] * PER_ADDRESS + [429]
