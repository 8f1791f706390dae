"""/healthz verdicts and /metrics series, on a real station store with a fake runtime probe."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from edge_agent.services.station import Station
from edge_agent.settings import CloudSettings
from edge_agent.store import Store
from edge_agent.store.sync import set_alert, set_last_contact
from edge_agent.web.app import build_app
from edge_agent.web.health import DriverHealth, RuntimeHealth
from edge_agent.web.metrics import LATENCY_BUCKETS_S, StationMetrics
from tests.support import FakeClock
from tests.web.conftest import MakeSale, SignIn

COUNTERS = {
    "frames": 120,
    "crc_errors": 2,
    "framing_errors": 0,
    "malformed": 1,
    "timeouts": 3,
    "resyncs": 0,
    "reconnects": 1,
    "sales": 7,
}


def link(name: str, *, connected: bool = True, kind: str = "dart") -> DriverHealth:
    return DriverHealth(name, kind, connected, COUNTERS["sales"], dict(COUNTERS))


class Probe:
    """What the daemon would report; tests change it between requests."""

    def __init__(self) -> None:
        self.runtime = RuntimeHealth((link("bus1"), link("fdc", kind="ifsf-fdc")), True)
        self.raises = False

    def __call__(self) -> RuntimeHealth:
        if self.raises:
            raise RuntimeError("probe broke")
        return self.runtime


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def cloud_station(station: Station) -> Station:
    """The same store, configured with a cloud that syncs every 15 s."""
    cloud = CloudSettings(url="https://hq.example.com", token="t", sync_interval_s=15)
    return replace(station, settings=station.settings.model_copy(update={"cloud": cloud}))


@pytest.fixture
def client(cloud_station: Station, probe: Probe) -> TestClient:
    return TestClient(
        build_app(cloud_station, probe=probe), follow_redirects=False, base_url="http://127.0.0.1"
    )


def contact(station: Station, clock: FakeClock, seconds_ago: int) -> None:
    clock.advance(seconds=-seconds_ago)
    with station.store.write() as tx:
        set_last_contact(tx, clock().isoformat())
    clock.advance(seconds=seconds_ago)


def test_healthz_ok_with_store_links_and_a_fresh_contact(
    client: TestClient, cloud_station: Station, clock: FakeClock, make_sale: MakeSale
) -> None:
    make_sale()
    clock.advance(seconds=90)
    contact(cloud_station, clock, 20)
    answer = client.get("/healthz")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["status"], body["reasons"]) == ("ok", [])
    assert body["store"] == {"writable": True, "error": None}
    assert body["drivers"] == [
        {"name": "bus1", "kind": "dart", "connected": True},
        {"name": "fdc", "kind": "ifsf-fdc", "connected": True},
    ]
    sync = body["sync"]
    assert (sync["backlog"], sync["last_contact_age_s"], sync["thread_alive"]) == (1, 20, True)
    assert sync["oldest_pending_age_s"] == 90  # its event was stored 90 s ago
    assert sync["alert"] is None


def test_without_a_probe_or_a_cloud_only_the_store_is_judged(app: FastAPI) -> None:
    body = TestClient(app, base_url="http://127.0.0.1").get("/healthz").json()
    assert (body["status"], body["drivers"], body["sync"]["cloud_configured"]) == (
        "ok",
        None,
        False,
    )


def test_a_link_down_is_degraded_but_still_200(
    client: TestClient, cloud_station: Station, clock: FakeClock, probe: Probe
) -> None:
    contact(cloud_station, clock, 5)
    probe.runtime = RuntimeHealth((link("bus1", connected=False), link("fdc")), True)
    answer = client.get("/healthz")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["status"], body["reasons"]) == ("degraded", ["link bus1 not connected"])
    assert body["drivers"][0]["connected"] is False


def test_a_stale_or_missing_cloud_contact_is_degraded(
    client: TestClient, cloud_station: Station, clock: FakeClock
) -> None:
    assert client.get("/healthz").json()["reasons"] == ["no answer from the cloud yet"]
    contact(cloud_station, clock, 60)  # 3 x 15 s is under the one-minute floor: still fresh
    assert client.get("/healthz").json()["status"] == "ok"
    clock.advance(seconds=1)
    body = client.get("/healthz").json()
    assert body["status"] == "degraded"
    assert body["reasons"] == ["last answer from the cloud 61 s ago"]


def test_a_sync_alert_or_a_stopped_sync_thread_is_degraded(
    client: TestClient, cloud_station: Station, clock: FakeClock, probe: Probe
) -> None:
    contact(cloud_station, clock, 1)
    with cloud_station.store.write() as tx:
        set_alert(tx, "auth", "the cloud refused the station token", clock().isoformat())
    probe.runtime = replace(probe.runtime, sync_thread_alive=False)
    body = client.get("/healthz").json()
    assert body["status"] == "degraded"
    assert body["reasons"] == ["sync thread not running", "sync alert auth"]
    assert body["sync"]["alert"]["code"] == "auth"


def test_a_broken_probe_is_degraded_never_ok(
    client: TestClient, cloud_station: Station, clock: FakeClock, probe: Probe
) -> None:
    contact(cloud_station, clock, 1)
    probe.raises = True
    body = client.get("/healthz").json()
    assert body["status"] == "degraded"
    assert body["reasons"] == ["runtime probe failed (RuntimeError)"]
    assert "loyalpump_driver_connected" not in client.get("/metrics").text


def test_a_store_that_takes_no_write_is_failing_503(
    client: TestClient, cloud_station: Station
) -> None:
    # The connection the agent writes through is gone (as after a fatal I/O error): the
    # probe's BEGIN IMMEDIATE fails. A chmod would prove nothing: SQLite keeps its open
    # descriptors writable, and the tests may run as root.
    cloud_station.store.close()
    answer = client.get("/healthz")
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "failing"
    assert body["store"] == {"writable": False, "error": "ProgrammingError"}
    assert body["sync"] is None


def test_the_write_probe_releases_the_write_lock(client: TestClient, station: Station) -> None:
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    # Another writer gets the lock at once (a held lock would make it wait 5 s and fail).
    with Store.open(station.store.path) as other, other.write() as tx:
        set_last_contact(tx, "2026-11-23T09:00:00+08:00")
    assert client.get("/healthz").json()["sync"]["last_contact"] == "2026-11-23T09:00:00+08:00"


def series(text: str, name: str) -> dict[str, str]:
    """{labels: value} of one metric's samples; labels as exposed (prometheus_client sorts
    them by name), a whole number without the ".0" prometheus_client writes."""
    found = {}
    for line in text.splitlines():
        match = re.fullmatch(rf"{re.escape(name)}(\{{.*\}})? (\S+)", line)
        if match:
            value = match.group(2)
            number = float(value)
            found[match.group(1) or ""] = str(int(number)) if number.is_integer() else value
    return found


def test_metrics_carry_links_sync_and_sales_per_driver(
    client: TestClient,
    cloud_station: Station,
    clock: FakeClock,
    probe: Probe,
    make_sale: MakeSale,
) -> None:
    make_sale()
    clock.advance(seconds=45)
    make_sale()
    contact(cloud_station, clock, 30)
    probe.runtime = RuntimeHealth(
        (link("bus1"), link('odd"name\\', connected=False, kind="ifsf-fdc")), True
    )
    text = client.get("/metrics").text
    assert "# TYPE loyalpump_sales_ingested_total counter" in text
    assert series(text, "loyalpump_sales_ingested_total") == {
        '{driver="bus1"}': "7",
        '{driver="odd\\"name\\\\"}': "7",  # quote and backslash escaped
    }
    assert series(text, "loyalpump_driver_connected") == {
        '{driver="bus1"}': "1",
        '{driver="odd\\"name\\\\"}': "0",
    }
    assert series(text, "loyalpump_link_frames_total")['{driver="bus1"}'] == "120"
    errors = series(text, "loyalpump_link_errors_total")
    assert errors['{driver="bus1",kind="crc_errors"}'] == "2"
    assert errors['{driver="bus1",kind="timeouts"}'] == "3"
    assert errors['{driver="bus1",kind="reconnects"}'] == "1"
    assert not any('kind="frames"' in key or 'kind="sales"' in key for key in errors)
    assert series(text, "loyalpump_sync_backlog") == {"": "2"}
    assert series(text, "loyalpump_sync_oldest_pending_age_seconds") == {"": "45"}
    last = int(series(text, "loyalpump_sync_last_success_timestamp_seconds")[""])
    assert last == int(clock().timestamp()) - 30
    assert series(text, "loyalpump_sync_thread_alive") == {"": "1"}


def test_metrics_without_contact_or_probe(app: FastAPI) -> None:
    text = TestClient(app, base_url="http://127.0.0.1").get("/metrics").text
    assert series(text, "loyalpump_sync_last_success_timestamp_seconds") == {"": "0"}
    assert series(text, "loyalpump_sync_oldest_pending_age_seconds") == {"": "0"}
    assert "loyalpump_link_frames_total" not in text


def test_the_latency_histogram_counts_real_requests_by_route_template(
    app: FastAPI, sign_in: SignIn, make_sale: MakeSale
) -> None:
    cashier = sign_in("alice")
    sale = make_sale()
    anon = TestClient(app, follow_redirects=False, base_url="http://127.0.0.1")
    for _ in range(3):
        assert anon.get("/healthz").status_code == 200
    assert cashier.get("/api/v1/members/lookup", params={"q": "13912345678"}).status_code == 404
    cashier.post(f"/api/v1/sales/{sale.sale_id}/member", json={"q": "13912345678"})
    anon.get("/api/v1/members/13912345678")  # refused before routing: 401
    anon.get("/no/such/13912345678")
    text = anon.get("/metrics").text

    name = "loyalpump_http_request_duration_seconds"
    assert f"# TYPE {name} histogram" in text
    counts = series(text, f"{name}_count")
    assert counts['{method="GET",route="/healthz"}'] == "3"
    assert counts['{method="GET",route="/api/v1/members/lookup"}'] == "1"
    assert counts['{method="POST",route="/api/v1/sales/{sale_id}/member"}'] == "1"
    assert counts['{method="GET",route="/api/v1/*"}'] == "1"
    assert counts['{method="GET",route="unmatched"}'] == "1"
    buckets = series(text, f"{name}_bucket")
    healthz = sorted(
        (float(re.findall(r'le="([^"]+)"', key)[0]), int(value))
        for key, value in buckets.items()
        if 'route="/healthz"' in key
    )
    assert len(healthz) == len(LATENCY_BUCKETS_S) + 1
    cumulative = [count for _, count in healthz]  # by bound, +Inf last
    assert cumulative == sorted(cumulative)
    assert buckets['{le="+Inf",method="GET",route="/healthz"}'] == "3"
    assert float(series(text, f"{name}_sum")['{method="GET",route="/healthz"}']) > 0
    # Route templates only: neither a phone number nor a sale id ever reaches a label.
    assert "13912345678" not in text
    assert sale.sale_id not in text


def test_a_non_standard_method_is_labelled_other(app: FastAPI) -> None:
    """Any method token a client invents folds into one OTHER series, in both metrics."""
    anon = TestClient(app, follow_redirects=False, base_url="http://127.0.0.1")
    for method in ("FOOBAR123", "FOOBAR456"):
        anon.request(method, "/healthz")
    anon.request("PATCH", "/healthz")
    text = anon.get("/metrics").text
    counts = series(text, "loyalpump_http_request_duration_seconds_count")
    assert counts['{method="OTHER",route="/healthz"}'] == "2"
    assert counts['{method="PATCH",route="/healthz"}'] == "1"
    assert "FOOBAR" not in text
    requests = series(text, "loyalpump_http_requests_total")
    assert sum(int(v) for k, v in requests.items() if 'method="OTHER"' in k) == 2


def test_two_apps_in_one_process_keep_their_own_series(app: FastAPI) -> None:
    """Each app has its own registry: another app's traffic never shows in this one's."""
    other = StationMetrics()
    for _ in range(5):
        other.count("GET", "/healthz", 200)
        other.observe("/healthz", "GET", 0.001)
    anon = TestClient(app, follow_redirects=False, base_url="http://127.0.0.1")
    anon.get("/healthz")
    text = anon.get("/metrics").text
    assert series(text, "loyalpump_http_request_duration_seconds_count") == {
        '{method="GET",route="/healthz"}': "1"
    }
    assert series(text, "loyalpump_http_requests_total") == {
        '{method="GET",route="/healthz",status="200"}': "1"
    }
