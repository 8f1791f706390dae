"""`loyalpump sim …`: the dispenser simulators, for testing a station PC before the pumps.

Each completed simulated sale is printed as one line and, with `--ground-truth FILE`,
appended to FILE as JSON (flushed), so a test or a field engineer can compare what the
station recorded with what the pumps really sold. SIGUSR1 closes the forecourt: no new
sale starts, the simulator keeps answering, and prints `closed` once no sale is in
progress, so a test can drain and then compare.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Annotated, TextIO

import typer

from cloud_sync.core.output import fail

__all__ = ["sim_app"]

sim_app = typer.Typer(help="Dispenser simulators (DART pumps, IFSF FDC).", no_args_is_help=True)

SalesOption = Annotated[
    int | None, typer.Option("--sales", min=0, help="Stop after N sales (default: run for ever).")
]
IntervalOption = Annotated[
    float, typer.Option("--interval", min=0.0, help="Seconds between sales.")
]
NoiseOption = Annotated[
    float, typer.Option("--noise", min=0.0, max=1.0, help="Share of corrupted traffic (0-1).")
]
SeedOption = Annotated[int, typer.Option("--seed", help="Random seed for reproducible runs.")]
TruthOption = Annotated[
    Path | None, typer.Option("--ground-truth", help="Append every completed sale as JSON here.")
]


def _stop_on_signals() -> tuple[threading.Event, threading.Event]:
    """SIGTERM/SIGINT stop the simulator; SIGUSR1 closes the forecourt: no new sale starts,
    and the simulator keeps answering so the station can collect every sale made."""
    stop = threading.Event()
    closing = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    def close(signum: int, frame: FrameType | None) -> None:
        closing.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGUSR1, close)
    return stop, closing


def _reporter(truth: Path | None) -> tuple[TextIO | None, Callable[[dict[str, str]], None]]:
    sink = None if truth is None else truth.open("a", encoding="utf-8")
    lock = threading.Lock()

    def report(sale: dict[str, str]) -> None:
        line = json.dumps(sale, ensure_ascii=False, sort_keys=True)
        with lock:
            print(f"sale {line}", flush=True)
            if sink is not None:
                sink.write(line + "\n")
                sink.flush()

    return sink, report


def _announce_closed() -> None:
    print("closed", flush=True)


@sim_app.command("dart")
def sim_dart(
    pumps: Annotated[int, typer.Option("--pumps", min=1, max=32, help="Number of pumps.")] = 2,
    pty: Annotated[bool, typer.Option("--pty", help="Create a pseudo-terminal.")] = False,
    port: Annotated[str | None, typer.Option("--port", help="Serial device or URL.")] = None,
    baudrate: Annotated[int, typer.Option("--baudrate")] = 9600,
    bus: Annotated[
        bool, typer.Option("--bus", help="Play a whole controller+pumps conversation (sniffer).")
    ] = False,
    sales: SalesOption = None,
    interval: IntervalOption = 1.0,
    noise: NoiseOption = 0.0,
    seed: SeedOption = 1,
    ground_truth: TruthOption = None,
) -> None:
    """DART pumps on a serial line; with --pty it prints the device path to use."""
    from drivers.dart import simulator as dart_simulator  # noqa: PLC0415 - lazy: fast --help
    from drivers.links import open_serial  # noqa: PLC0415

    if pty == (port is not None):
        fail("give exactly one of --pty or --port")
    if pty:
        link, path = dart_simulator.open_pty()
        print(f"pty {path}", flush=True)
    else:
        assert port is not None
        link = open_serial(port, baudrate)
    stop, closing = _stop_on_signals()
    sink, report = _reporter(ground_truth)
    try:
        dart_simulator.serve(
            link,
            pumps=pumps,
            mode="bus" if bus else "pumps",
            sales=sales,
            interval_s=interval,
            noise=noise,
            seed=seed,
            stop=stop,
            on_sale_completed=report,
            closing=closing,
            on_closed=_announce_closed,
        )
    finally:
        link.close()
        if sink is not None:
            sink.close()


@sim_app.command("fdc")
def sim_fdc(
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 4710,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    pumps: Annotated[int, typer.Option("--pumps", min=1, max=64)] = 4,
    header: Annotated[str, typer.Option("--header", help="plain | md5 | md5-noid")] = "plain",
    passphrase: Annotated[str, typer.Option("--passphrase")] = "",
    sales: SalesOption = None,
    interval: IntervalOption = 1.0,
    noise: NoiseOption = 0.0,
    seed: SeedOption = 1,
    ground_truth: TruthOption = None,
) -> None:
    """An IFSF FDC on TCP (loopback by default)."""
    from drivers.ifsf import simulator as fdc_simulator  # noqa: PLC0415 - lazy: fast --help

    if header not in ("plain", "md5", "md5-noid"):
        fail("--header must be plain, md5 or md5-noid")
    stop, closing = _stop_on_signals()
    sink, report = _reporter(ground_truth)

    def listening(bound: int) -> None:
        print(f"fdc listening on {host}:{bound}", file=sys.stderr, flush=True)

    try:
        fdc_simulator.serve(
            host,
            port,
            pumps=pumps,
            sales=sales,
            interval_s=interval,
            noise=noise,
            seed=seed,
            header=header,
            passphrase=passphrase,
            stop=stop,
            on_sale_completed=report,
            on_listening=listening,
            closing=closing,
            on_closed=_announce_closed,
        )
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    finally:
        if sink is not None:
            sink.close()
