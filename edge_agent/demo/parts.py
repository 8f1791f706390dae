"""The demo's moving parts besides the station: the cloud ledger and the two simulators.

Each runs in a thread of its own, starts with `start()` (returning once it is usable) and
stops with `stop()`, which joins the thread; so the demo is one process with nothing left
behind when it ends.
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from cloud_sync.cloud.server.keyfiles import load_or_create_signing_key
from cloud_sync.cloud.server.rules import publish_ruleset
from cloud_sync.cloud.server.run import open_ledger, serve
from drivers.dart import simulator as dart_simulator
from drivers.ifsf import simulator as fdc_simulator

from .seed import cloud_settings

__all__ = ["DartBus", "DemoCloud", "DemoError", "FdcBus"]

_JOIN_S = 10.0


class DemoError(RuntimeError):
    """A part of the demo could not start; the message says which and why."""


class DemoCloud:
    """The chain's ledger on SQLite in `data_dir`, serving HTTP on a free loopback port."""

    def __init__(self, data_dir: Path) -> None:
        self.admin_token = secrets.token_urlsafe(24)  # 32 characters, for this run only
        self.settings = cloud_settings(data_dir, self.admin_token)
        self.url = ""
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="demo-cloud", daemon=True)

    def prepare(self, station_id: str, ruleset: bytes, now: datetime) -> tuple[str, int]:
        """HQ's part before opening: enrol the station (its token) and publish the rules."""
        ledger = open_ledger(self.settings)
        try:
            token = ledger.add_station(station_id, "Demo station", now)
            signing_key = load_or_create_signing_key(self.settings.data_dir)
            published = publish_ruleset(ledger, signing_key, ruleset, now)
        finally:
            ledger.close()
        return token, published.version

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise DemoError(f"the cloud ledger did not start: {self._error or 'timed out'}")

    def stop(self) -> bool:
        """Stop serving and close the ledger; True when the thread ended in time."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(_JOIN_S)
        return not self._thread.is_alive()

    def report(self) -> dict[str, Any]:
        """The ledger's totals, its broken invariants and this chain's stations (stopped)."""
        ledger = open_ledger(self.settings, create=False)
        try:
            return {
                "totals": ledger.totals(),
                "problems": ledger.ledger_problems(),
                "stations": ledger.stations(),
            }
        finally:
            ledger.close()

    def _serve(self) -> None:
        def ready(base_url: str) -> None:
            self.url = base_url
            self._ready.set()

        try:
            serve(self.settings, ready=ready, stop=self._stop)
        except BaseException as exc:  # reported by start() or stop(); the thread just ends
            self._error = exc


class DartBus:
    """Simulated DART pumps answering a master on the master side of a pseudo-terminal."""

    def __init__(self, *, pumps: int, interval_s: float, seed: int) -> None:
        self._link, self.device = dart_simulator.open_pty()
        self.pumps = pumps
        self.dispensed = 0  # sales the simulator completed (its ground truth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=dart_simulator.serve,
            args=(self._link,),
            kwargs={
                "pumps": pumps,
                "mode": "pumps",
                "sales": None,
                "interval_s": interval_s,
                "noise": 0.0,
                "seed": seed,
                "stop": self._stop,
                "on_sale_completed": self._completed,
            },
            name="demo-dart-sim",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> bool:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(_JOIN_S)
        self._link.close()
        return not self._thread.is_alive()

    def _completed(self, sale: dict[str, str]) -> None:
        self.dispensed += 1


class FdcBus:
    """A simulated IFSF FDC on a free loopback port, pushing a sale every `interval_s`."""

    def __init__(self, *, pumps: int, interval_s: float, seed: int) -> None:
        self.pumps = pumps
        self.port = 0
        self.dispensed = 0  # sales the simulator completed (its ground truth)
        self._listening = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._interval_s = interval_s
        self._seed = seed
        self._thread = threading.Thread(target=self._serve, name="demo-fdc-sim", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        if not self._listening.wait(timeout):
            raise DemoError(f"the FDC simulator did not start: {self._error or 'timed out'}")

    def stop(self) -> bool:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(_JOIN_S)
        return not self._thread.is_alive()

    def _serve(self) -> None:
        def listening(port: int) -> None:
            self.port = port
            self._listening.set()

        try:
            fdc_simulator.serve(
                "127.0.0.1",
                0,
                pumps=self.pumps,
                sales=None,
                interval_s=self._interval_s,
                noise=0.0,
                seed=self._seed,
                header="plain",
                passphrase="",
                stop=self._stop,
                on_sale_completed=self._completed,
                on_listening=listening,
            )
        except BaseException as exc:  # reported by start(); the thread just ends
            self._error = exc

    def _completed(self, sale: dict[str, str]) -> None:
        self.dispensed += 1
