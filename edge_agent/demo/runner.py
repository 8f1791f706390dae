"""`loyalpump demo`: the whole product on embedded defaults, in one process.

A cloud ledger on SQLite (HQ enrols station S001 and publishes the sample rule set), DART
pumps simulated on a pseudo-terminal and an IFSF FDC simulated on loopback TCP, and the
station daemon itself (`run_station`: drivers, store, cashier page, sync every 2 s). A
virtual cashier attaches sample members to most sales and spends points now and then.
On Ctrl-C, SIGTERM or after `seconds`, everything stops in order (station, simulators, a
last sync, cloud) and the summary says whether every event reached a healthy ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from ..daemon import run_station
from ..services.members import register_member
from ..services.points import verify_ledger
from ..services.reads import all_sale_rows
from ..services.station import Station, open_station
from ..services.status import station_status
from ..services.sync import sync_once
from ..services.users import add_user
from ..settings import StationSettings
from ..store.lock import AgentLock
from .cashier import CashierStats, VirtualCashier
from .logfile import log_to, quiet_uvicorn, unlog
from .parts import DartBus, DemoCloud, DemoError, FdcBus
from .seed import (
    STATION_ID,
    DemoLogin,
    SampleMember,
    demo_logins,
    sample_members,
    sample_ruleset,
    station_settings,
    write_configs,
)
from .summary import Drive, summarize

__all__ = ["DemoError", "DemoInfo", "DemoOptions", "DemoView", "Progress", "run_demo"]

log = logging.getLogger(__name__)

_FINAL_SYNC_CYCLES = 5
_STATION_STOP_S = 20.0  # the daemon's own grace is 8 s; this only catches a hang
_TICK_S = 0.5
_SAMPLES_SHOWN = 3


@dataclass(frozen=True)
class DemoOptions:
    seconds: float | None = None  # None: until Ctrl-C or SIGTERM
    data_dir: Path | None = None  # None: a fresh temporary directory
    keep: bool = False  # keep the temporary directory
    seed: int = 1
    dart_pumps: int = 3
    fdc_pumps: int = 3
    members: int = 20


@dataclass(frozen=True)
class DemoInfo:
    """What the operator needs to look around while the demo runs."""

    station_id: str
    cashier_url: str
    cloud_url: str
    admin_token: str
    logins: list[DemoLogin]
    data_dir: Path
    data_kept: bool
    log_file: Path
    station_config: Path  # for `loyalpump edge … --config` next to the demo
    dart_device: str
    dart_points: list[int]
    fdc_address: str
    fdc_points: list[int]
    members: int
    ruleset_version: int
    seconds: float | None
    samples: tuple[SampleMember, ...] = ()  # a few members to try on the cashier page


@dataclass(frozen=True)
class Progress:
    elapsed_s: float
    cashier: CashierStats
    backlog: int | None
    last_sync_age_s: int | None
    cloud_events: int | None


class DemoView(Protocol):
    """Where the demo reports what it does (a rich console, or nothing with --json)."""

    def step(self, message: str) -> None: ...
    def started(self, info: DemoInfo) -> None: ...
    def progress(self, progress: Progress) -> None: ...
    def stopping(self, reason: str) -> None: ...


def run_demo(options: DemoOptions, view: DemoView) -> dict[str, Any]:
    """Run the demo to its end and return the summary (`summary["ok"]`: all was well).

    Raises DemoError when a part cannot start; KeyboardInterrupt only before the station
    runs (from then on Ctrl-C ends the demo normally, with its summary).
    """
    work, remove = _work_dir(options)
    handler = log_to(work / "demo.log")
    try:
        summary = _Demo(options, view, work, kept=not remove).run()
    finally:
        unlog(handler)
        if remove:
            shutil.rmtree(work, ignore_errors=True)
    summary["data_dir"] = None if remove else str(work)
    return summary


def _work_dir(options: DemoOptions) -> tuple[Path, bool]:
    if options.data_dir is None:
        return Path(tempfile.mkdtemp(prefix="loyalpump-demo-")), not options.keep
    work = options.data_dir.expanduser().resolve()
    if work.exists() and (not work.is_dir() or any(work.iterdir())):
        raise DemoError(f"--data-dir {work}: must be a new or empty directory")
    work.mkdir(mode=0o700, parents=True, exist_ok=True)
    return work, False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Demo:
    def __init__(self, options: DemoOptions, view: DemoView, work: Path, *, kept: bool) -> None:
        self.options = options
        self.view = view
        self.work = work
        self.kept = kept
        self.rng = random.Random(options.seed)  # noqa: S311 - simulated traffic, not secrets
        self.began = time.monotonic()
        self.started = self.began  # when the traffic started (the progress line's clock)
        self.cashier_url = ""
        self.samples: tuple[SampleMember, ...] = ()

    def run(self) -> dict[str, Any]:
        options, view = self.options, self.view
        cloud = DemoCloud(self.work / "cloud")
        dart = DartBus(pumps=options.dart_pumps, interval_s=2.0, seed=options.seed)
        fdc = FdcBus(pumps=options.fdc_pumps, interval_s=1.5, seed=options.seed)
        stopped: dict[str, bool] = {}
        drive = Drive()
        final: dict[str, Any] = {}
        try:
            view.step("cloud ledger on SQLite: enrolling S001, publishing the sample rule set")
            now = datetime.now(UTC)
            token, version = cloud.prepare(STATION_ID, sample_ruleset(now), now)
            cloud.start()
            view.step(
                f"simulators: {options.dart_pumps} DART pumps, an FDC with "
                f"{options.fdc_pumps} fuelling points"
            )
            dart.start()
            fdc.start()
            settings = station_settings(
                self.work / "station",
                cloud_url=cloud.url,
                token=token,
                web_port=_free_port(),
                dart_device=dart.device,
                dart_pumps=options.dart_pumps,
                dart_first_point=options.fdc_pumps + 1,
                fdc_port=fdc.port,
            )
            write_configs(self.work, settings, cloud.settings)
            view.step("station S001: store, logins, first sync, sample members")
            logins, member_ids = self._prepare_station(settings)
            info = self._info(settings, cloud, logins, dart, fdc, version)
            self.cashier_url = info.cashier_url
            drive = asyncio.run(self._drive(settings, cloud, info, member_ids))
            stopped["station"] = drive.station_stopped
            stopped["simulators"] = dart.stop() & fdc.stop()
            view.step("last sync")
            final = self._finish_station(settings)
        finally:
            if "simulators" not in stopped:
                stopped["simulators"] = dart.stop() & fdc.stop()
            stopped["cloud"] = cloud.stop()
        cloud_report = cloud.report()
        threads = _threads_left()
        return summarize(
            drive,
            final,
            cloud_report,
            stopped,
            threads,
            parts=(dart, fdc, cloud),
            run_s=time.monotonic() - self.began,
            cashier_url=self.cashier_url,
        )

    # --- phases ---------------------------------------------------------------------------

    def _prepare_station(self, settings: StationSettings) -> tuple[list[DemoLogin], list[str]]:
        """Create the store, the logins, enrol with the cloud (which brings the rule set and
        the redemption allowance), then register the sample members under the chain's keys."""
        logins = demo_logins()
        with AgentLock(settings.station.data_dir):
            station = open_station(settings, create=True)
            try:
                for login in logins:
                    add_user(station, name=login.name, role=login.role, pin=login.pin, actor="demo")
                result = sync_once(station)
                if not result.ok:
                    raise DemoError(f"the station could not sync with the cloud: {result.error}")
                if station_status(station)["rules"] is None:
                    raise DemoError("the published rule set did not reach the station")
                samples = sample_members(self.options.members, self.rng)
                member_ids = [
                    register_member(
                        station,
                        phone=member.phone,
                        plates=[member.plate],
                        name=member.name,
                        consent_channel="demo",
                        actor="demo",
                    ).member_id
                    for member in samples
                ]
                self.samples = tuple(samples[:_SAMPLES_SHOWN])
            finally:
                station.close()
        return logins, member_ids

    def _info(
        self,
        settings: StationSettings,
        cloud: DemoCloud,
        logins: list[DemoLogin],
        dart: DartBus,
        fdc: FdcBus,
        version: int,
    ) -> DemoInfo:
        first = self.options.fdc_pumps + 1
        return DemoInfo(
            station_id=STATION_ID,
            cashier_url=f"http://{settings.web.host}:{settings.web.port}/",
            cloud_url=cloud.url,
            admin_token=cloud.admin_token,
            logins=logins,
            data_dir=self.work,
            data_kept=self.kept,
            log_file=self.work / "demo.log",
            station_config=self.work / "station.toml",
            dart_device=dart.device,
            dart_points=list(range(first, first + dart.pumps)),
            fdc_address=f"127.0.0.1:{fdc.port}",
            fdc_points=list(range(1, fdc.pumps + 1)),
            members=self.options.members,
            ruleset_version=version,
            seconds=self.options.seconds,
            samples=self.samples,
        )

    async def _drive(
        self, settings: StationSettings, cloud: DemoCloud, info: DemoInfo, member_ids: list[str]
    ) -> Drive:
        """Run the station with traffic until time is up, Ctrl-C/SIGTERM, or it stops."""
        drive = Drive()
        loop = asyncio.get_running_loop()
        interrupted = asyncio.Event()
        daemon_stop = asyncio.Event()

        def interrupt() -> None:
            # The station hears it at once, as under `edge run`: its web server (uvicorn)
            # also sees the signal and stops, which the daemon must know was asked for.
            interrupted.set()
            daemon_stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, interrupt)
        station_task = asyncio.create_task(run_station(settings, daemon_stop), name="station")
        try:
            if await self._wait_for_page(info.cashier_url, station_task, interrupted):
                handler = next(
                    (h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)),
                    None,
                )
                if handler is not None:
                    quiet_uvicorn(handler)
                drive.reason, drive.cashier = await self._traffic(
                    settings, cloud, info, member_ids, interrupted, station_task
                )
            else:
                drive.reason = "interrupted"
                self.view.stopping(drive.reason)
        finally:
            daemon_stop.set()
            try:
                drive.runtime = await asyncio.wait_for(station_task, _STATION_STOP_S)
                drive.station_stopped = True
            except TimeoutError:
                log.error("the station did not stop within %.0f s", _STATION_STOP_S)
                drive.station_error = f"it did not stop within {_STATION_STOP_S:.0f} s"
            except Exception as exc:
                log.exception("the station failed")
                drive.station_error = f"{type(exc).__name__}: {exc}"
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        return drive

    async def _wait_for_page(
        self, url: str, station_task: asyncio.Task[Any], interrupted: asyncio.Event
    ) -> bool:
        """True once the cashier page answers; False when interrupted first."""
        deadline = time.monotonic() + 20.0
        async with httpx.AsyncClient(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if interrupted.is_set():
                    return False
                if station_task.done():
                    station_task.result()  # its exception, if it has one
                    raise DemoError("the station stopped while starting; see the log")
                try:
                    await client.get(url + "healthz")
                    return True
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        raise DemoError(f"the cashier page did not answer on {url}")

    async def _traffic(
        self,
        settings: StationSettings,
        cloud: DemoCloud,
        info: DemoInfo,
        member_ids: list[str],
        interrupted: asyncio.Event,
        station_task: asyncio.Task[Any],
    ) -> tuple[str, CashierStats]:
        station = await asyncio.to_thread(open_station, settings)
        cashier = VirtualCashier(station, member_ids, self.rng)
        done = threading.Event()
        self.started = time.monotonic()
        self.view.started(info)
        workers = [
            asyncio.create_task(self._cashier_loop(cashier, done)),
            asyncio.create_task(self._progress_loop(cashier, station, cloud, done)),
        ]
        try:
            reason = await self._until_the_end(interrupted, station_task)
        finally:
            done.set()
            await asyncio.gather(*workers, return_exceptions=True)
            await asyncio.to_thread(station.close)
        self.view.stopping(reason)
        return reason, cashier.stats()

    async def _until_the_end(
        self, interrupted: asyncio.Event, station_task: asyncio.Task[Any]
    ) -> str:
        waiter = asyncio.create_task(interrupted.wait())
        try:
            done, _ = await asyncio.wait(
                [waiter, station_task],
                timeout=self.options.seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if waiter in done:
                return "interrupted"
            if station_task in done:
                # uvicorn catches Ctrl-C first and hands it on once the page has stopped
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(interrupted.wait(), 1.0)
                return "interrupted" if interrupted.is_set() else "station stopped"
            return "time"
        finally:
            waiter.cancel()

    async def _cashier_loop(self, cashier: VirtualCashier, done: threading.Event) -> None:
        while not done.is_set():
            try:
                await asyncio.to_thread(cashier.step)
            except Exception:
                log.exception("the virtual cashier failed a step")
            await asyncio.sleep(0.4)

    async def _progress_loop(
        self,
        cashier: VirtualCashier,
        station: Station,
        cloud: DemoCloud,
        done: threading.Event,
    ) -> None:
        headers = {"Authorization": f"Bearer {cloud.admin_token}"}
        async with httpx.AsyncClient(base_url=cloud.url, headers=headers, timeout=1.0) as client:
            while not done.is_set():
                status = await asyncio.to_thread(_status_or_none, station)
                progress = Progress(
                    elapsed_s=time.monotonic() - self.started,
                    cashier=cashier.stats(),
                    backlog=None if status is None else int(status["sync"]["backlog"]),
                    last_sync_age_s=_age_s(status),
                    cloud_events=await _cloud_high_water(client),
                )
                try:
                    self.view.progress(progress)
                except Exception:  # a display glitch must not stop the traffic
                    log.exception("the progress line failed")
                await asyncio.sleep(_TICK_S)

    def _finish_station(self, settings: StationSettings) -> dict[str, Any]:
        """A last push+pull (the daemon may have stopped between cycles), then the books."""
        with AgentLock(settings.station.data_dir):
            station = open_station(settings)
            try:
                cycles, error = 0, None
                for _ in range(_FINAL_SYNC_CYCLES):
                    cycles += 1
                    result = sync_once(station)
                    error = result.error
                    if result.ok and result.backlog_after.pending == 0:
                        break
                status = station_status(station)
                problems = verify_ledger(station)
                rows = all_sale_rows(station)
            finally:
                station.close()
        return {
            "status": status,
            "problems": problems,
            "rows": rows,
            "cycles": cycles,
            "error": error,
        }


def _status_or_none(station: Station) -> dict[str, Any] | None:
    try:
        return station_status(station)
    except Exception:  # the progress line is best effort; the summary is not
        log.exception("station status failed")
        return None


def _age_s(status: dict[str, Any] | None) -> int | None:
    contact = None if status is None else status["sync"]["last_contact"]
    if not contact:
        return None
    return max(0, int((datetime.now(UTC) - datetime.fromisoformat(contact)).total_seconds()))


async def _cloud_high_water(client: httpx.AsyncClient) -> int | None:
    try:
        response = await client.get("/api/v1/stations")
        response.raise_for_status()
        for station in response.json():
            if station.get("station_id") == STATION_ID:
                return int(station.get("high_water") or 0)
    except (httpx.HTTPError, ValueError):
        return None
    return None


def _threads_left(wait_s: float = 3.0) -> list[str]:
    """Threads other than this one still alive after the demo stopped everything."""
    deadline = time.monotonic() + wait_s
    current = threading.current_thread()

    def others() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t is not current and t.is_alive()]

    for thread in others():
        thread.join(max(0.0, deadline - time.monotonic()))
    return sorted(t.name for t in others())
