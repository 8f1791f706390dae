"""`database_url_read`: a real `loyalpump cloud run` over a primary and its logical replica.

The replica is a second database on the local server subscribed to the first
(tests/cloud/server/replication.py). Read-only routes answer from it with their lag; writes
go to the primary; when replication stops, the lag grows and past `read_max_lag_s` the same
reads come from the primary again, and back to the replica once it catches up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import InternalError

from cloud_sync.cloud.server.replica import open_read_database
from tests.cloud.chain import ADMIN_TOKEN, CloudProcess

from .replication import Replication, logical_replication

pytestmark = pytest.mark.slow  # a logical replication set up, stopped and resumed: about a minute

MAX_LAG_S = 5
LAG = "Loyalpump-Replica-Lag-Ms"
SOURCE = "Loyalpump-Read-Source"
HQ = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class ReplicaCloud(CloudProcess):
    """One worker: each worker process watches the replica and logs its own changes of
    state, and this test counts those lines."""

    read_url: str = ""
    args: tuple[str, ...] = ("--workers", "1")

    def write_config(self) -> None:
        super().write_config()
        with self.config.open("a", encoding="utf-8") as out:
            out.write(f'database_url_read = "{self.read_url}"\nread_max_lag_s = {MAX_LAG_S}\n')


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[tuple[Replication, ReplicaCloud]]:
    with logical_replication() as setup:
        cloud = ReplicaCloud(
            tmp_path / "cloud", setup.primary_sqlalchemy, read_url=setup.replica_sqlalchemy
        )
        cloud.add_station("S001")
        cloud.cli(
            "station", "locate", "--id", "S001", "--lat", "31.2304", "--lng", "121.4737",
            "--address", "上海市黄浦区人民大道1号",
        )  # fmt: skip
        cloud.start()
        try:
            yield setup, cloud
        finally:
            cloud.stop()


def _finder(cloud: CloudProcess) -> httpx.Response:
    answer = httpx.get(f"{cloud.url}/m/api/v1/stations", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer


def _names(answer: httpx.Response) -> dict[str, str]:
    return {row["station_id"]: row["name"] for row in answer.json()["stations"]}


def _until(check: Callable[[], httpx.Response | None], timeout: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer is not None:
            return answer
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_reads_follow_the_replica_writes_the_primary_and_a_lagging_replica_is_left(
    replicated: tuple[Replication, ReplicaCloud],
) -> None:
    setup, cloud = replicated
    setup.wait_for("SELECT 1 FROM stations WHERE station_id = 'S001' AND lat_e6 IS NOT NULL")
    setup.wait_for("SELECT 1 FROM replica_heartbeat")
    # A name only the replica holds: an answer carrying it was read there.
    setup.on_replica("UPDATE stations SET name = 'replica copy' WHERE station_id = 'S001'")

    finder = _finder(cloud)
    assert finder.headers[SOURCE] == "replica"
    assert 0 <= int(finder.headers[LAG]) <= MAX_LAG_S * 1000
    assert _names(finder)["S001"] == "replica copy"
    listed = httpx.get(f"{cloud.url}/api/v1/hq/stations", headers=HQ, timeout=10)
    assert listed.headers[SOURCE] == "replica"
    assert [s["name"] for s in listed.json()["stations"]] == ["replica copy"]

    # A write goes to the primary (the replica's sessions are read-only: it would fail).
    enrolled = httpx.post(
        f"{cloud.url}/api/v1/hq/stations", headers=HQ, json={"station_id": "S002"}, timeout=10
    )
    assert enrolled.status_code == 201, enrolled.text
    assert SOURCE not in enrolled.headers and LAG not in enrolled.headers
    assert setup.on_primary("SELECT station_id FROM stations WHERE station_id = 'S002'")
    replica_db = open_read_database(setup.replica_sqlalchemy)
    try:
        with pytest.raises(InternalError, match="read-only transaction"):
            replica_db.transact(lambda conn: conn.execute(text("DELETE FROM stations")))
    finally:
        replica_db.close()
    # Station sync and auth stay on the primary too: a health probe, a pull with S002's
    # token a moment after its enrolment, answered without replica headers.
    pulled = httpx.get(
        f"{cloud.url}/api/v1/sync/changes",
        params={"since": 0},
        headers={"Authorization": f"Bearer {enrolled.json()['token']}"},
        timeout=10,
    )
    assert pulled.status_code == 200, pulled.text
    assert SOURCE not in pulled.headers

    # Replication stops: the lag grows while under the bound, then reads leave the replica.
    setup.set_enabled(False)
    time.sleep(1.5)  # the last beats in flight land; from here on none does
    first = int(_finder(cloud).headers[LAG])
    time.sleep(1.0)
    second = _finder(cloud)
    assert second.headers[SOURCE] == "replica"
    assert int(second.headers[LAG]) >= first + 500
    cloud.add_station("S003")  # on the primary only now
    fallen = _until(
        lambda: ((a := _finder(cloud)).headers[SOURCE].startswith("primary") and a) or None,
        timeout=MAX_LAG_S + 10,
    )
    assert fallen.headers[SOURCE] == "primary; reason=lagging"
    assert LAG not in fallen.headers
    hq = httpx.get(f"{cloud.url}/api/v1/hq/stations", headers=HQ, timeout=10)
    assert hq.headers[SOURCE] == "primary; reason=lagging"
    assert {s["id"]: s["name"] for s in hq.json()["stations"]} == {
        "S001": "S001",  # a station enrolled without a name is shown by its id
        "S002": "S002",
        "S003": "S003",
    }  # the primary's rows: no "replica copy", and S003 enrolled after replication stopped

    # Replication resumes: the replica catches up and takes the reads back.
    setup.set_enabled(True)
    back = _until(lambda: ((a := _finder(cloud)).headers[SOURCE] == "replica" and a) or None)
    assert int(back.headers[LAG]) <= MAX_LAG_S * 1000
    log = (cloud.home / "cloud.log").read_text(encoding="utf-8")
    assert log.count("reading the primary") == 1, log  # once per change of state
    assert log.count("read replica back in use") == 1, log
