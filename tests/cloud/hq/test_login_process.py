"""The HQ login limits as a real `loyalpump cloud run` serves them (uvicorn, not a test client).

uvicorn believes `X-Forwarded-For` from 127.0.0.1 by default; without `[cloud]
trusted_proxies` the cloud must not, or a local caller rotating the header would pick the
address the per-address limit counts.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.cloud.chain import CloudProcess

PER_ADDRESS = 20  # [hq] login_attempts_per_address, the default


@pytest.mark.slow
def test_a_forged_forwarded_address_does_not_reset_the_per_address_limit(tmp_path: Path) -> None:
    cloud = CloudProcess(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    cloud.start()
    try:
        statuses = []
        with httpx.Client(base_url=cloud.url, timeout=30) as client:
            for n in range(PER_ADDRESS + 1):
                answer = client.post(
                    "/hq/login",
                    data={"name": f"nobody{n}", "password": "wrong-password-0"},
                    headers={"X-Forwarded-For": f"203.0.113.{n}", "Origin": cloud.url},
                )
                statuses.append(answer.status_code)
    finally:
        cloud.stop()
    assert statuses[:PER_ADDRESS] == [401] * PER_ADDRESS
    assert statuses[PER_ADDRESS] == 429
