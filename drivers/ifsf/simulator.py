"""An IFSF FDC simulator on TCP, for tests and for a field engineer checking a station PC.

`FdcSimulator` accepts POS log-ons (checking the header variant and passphrase: a client
that frames wrongly is disconnected), answers heartbeats in both interface styles, pushes
a FuelSaleTrx for every scripted or random (seeded) sale, and answers
GetAvailableFuelSaleTrxs / GetFuelSaleTrxDetails from a buffer of recent transactions.
Sales go on while no client is connected, so a client's catch-up is exercised. Sequence
numbers wrap at `seq_modulus`; a new transaction evicts a buffered one with the same
(fuelling point, number), as a real FDC would overwrite it. `noise` is the share of
outgoing frames that get damaged: decoys before the real frame (garbage, a truncated copy,
malformed XML, a DOCTYPE/entity bomb, an absurd length header), a real frame lost to a
bad MD5 (or, with plain headers, cut short), or a dropped connection. Every completed
sale is appended to `sales` (ground truth) and handed to `on_sale_completed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from ..errors import FramingError, MalformedMessage
from ..events import Clock
from .fdcside import (
    SaleRecord,
    build_fdc_heartbeat,
    build_fp_state_change,
    build_fuel_sale_trx,
    build_service_response,
)
from .framer import IfsfFramer
from .header import HeaderKind, check_header_kind
from .messages import PosMessage, ServiceRequest, parse_message
from .simsales import DEFAULT_PRODUCTS, NOISE_KINDS, SaleBook, SimProduct, damage

__all__ = ["DEFAULT_PRODUCTS", "NOISE_KINDS", "FdcSimulator", "SimProduct", "serve"]

TILL_REQUESTS = frozenset(
    {"LockFuelSaleTrx", "UnlockFuelSaleTrx", "ClearFuelSaleTrx", "AuthoriseFuelPoint"}
)


class FdcSimulator:
    """A simulated FDC; `await start()`, then script sales or `run_sales`; `await close()`."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        pumps: int = 4,
        header: str = "plain",
        passphrase: str = "",
        seed: int = 1,
        noise: float = 0.0,
        noise_kinds: Sequence[str] = NOISE_KINDS,
        seq_modulus: int = 10_000,
        buffer_size: int = 1000,
        heartbeat_s: float = 5.0,
        zone: ZoneInfo | None = None,
        timestamps: Literal["naive", "offset", "mixed"] = "naive",
        products: Sequence[SimProduct] = DEFAULT_PRODUCTS,
        state_changes: bool = True,
        till: float = 0.0,
        on_sale_completed: Callable[[dict[str, str]], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not 0.0 <= noise <= 1.0:
            raise ValueError("noise must be between 0 and 1")
        unknown = set(noise_kinds) - set(NOISE_KINDS)
        if unknown or not noise_kinds:
            raise ValueError(f"noise kinds must be among {', '.join(NOISE_KINDS)}")
        self.host = host
        self.header: HeaderKind = check_header_kind(header)
        self.passphrase = passphrase
        self.noise = noise
        self.noise_kinds = tuple(noise_kinds)
        self.heartbeat_s = heartbeat_s
        self.state_changes = state_changes
        self.silent = False  # True: accept bytes but send nothing (a hung FDC)
        self.zone = zone or ZoneInfo("Asia/Shanghai")
        self.book = SaleBook(
            pumps=pumps,
            products=products,
            seed=seed,
            seq_modulus=seq_modulus,
            buffer_size=buffer_size,
            zone=self.zone,
            timestamps=timestamps,
            till=till,
            clock=clock or (lambda: datetime.now(self.zone)),
        )
        self.requests: Counter[str] = Counter()  # every RequestType / MessageType received
        self.logons = 0
        self.rejected_clients = 0
        self._on_sale = on_sale_completed
        self._port = port
        self._server: asyncio.Server | None = None
        self._sessions: set[_Session] = set()
        self._message_ids = 0

    @property
    def sales(self) -> list[dict[str, str]]:
        """Ground truth: every sale completed so far, as decimal strings."""
        return self.book.truth

    @property
    def port(self) -> int:
        return self._port

    @property
    def connected(self) -> int:
        """Clients currently logged on."""
        return sum(1 for session in self._sessions if session.logged_on)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self._port)
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            session.abort()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def __aenter__(self) -> FdcSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def drop_connections(self) -> None:
        for session in list(self._sessions):
            session.abort()

    def complete_sale(
        self,
        *,
        fuelling_point: int | None = None,
        nozzle: int | None = None,
        product_no: int | None = None,
        volume: str | None = None,
    ) -> dict[str, str]:
        """Finish one sale now (random where not given) and push it to logged-on clients."""
        record, truth = self.book.new_sale(fuelling_point, nozzle, product_no, volume)
        stamp = self._stamp()
        for session in self._logged_on():
            if self.state_changes:
                session.send(
                    build_fp_state_change(
                        record.fuelling_point, "FDC_FUELLING", record.nozzle, self._next_id(), stamp
                    )
                )
            session.send(build_fuel_sale_trx(record, self._next_id(), stamp))
            if self.state_changes:
                session.send(
                    build_fp_state_change(
                        record.fuelling_point, "FDC_READY", None, self._next_id(), stamp
                    )
                )
        if self._on_sale is not None:
            self._on_sale(dict(truth))
        for later in self.book.till_follow_ups(record):
            for session in self._logged_on():
                session.send(build_fuel_sale_trx(later, self._next_id(), stamp))
        return truth

    async def run_sales(self, count: int | None, interval_s: float) -> None:
        """Random sales every `interval_s` seconds; `count` None runs until cancelled."""
        done = 0
        while count is None or done < count:
            await asyncio.sleep(interval_s)
            self.complete_sale()
            done += 1

    # --- internals ------------------------------------------------------------------------

    def _logged_on(self) -> list[_Session]:
        return [session for session in self._sessions if session.logged_on]

    def _next_id(self) -> int:
        self._message_ids += 1
        return self._message_ids

    def _stamp(self) -> str:
        return self.book.clock().astimezone(self.zone).strftime("%Y-%m-%dT%H:%M:%S")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(self, reader, writer)
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)

    def answer(self, session: _Session, request: ServiceRequest) -> bytes:
        """The FDC's answer to one ServiceRequest."""
        kind = request.request_type
        result, error, version = "Success", None, None
        listed: list[tuple[int, str]] = []
        found: list[SaleRecord] = []
        if kind == "LogOn":
            old_style = request.interface_version_tag == "interfaceVersion"
            session.version = (
                "00.07" if old_style or request.interface_version == "00.07" else "01.00"
            )
            session.logged_on = True
            self.logons += 1
            version = session.version
        elif not session.logged_on:
            result, error = "Failure", "ERRCD_NOPERM"
        elif kind == "GetAvailableFuelSaleTrxs":
            listed = self.book.listing()
        elif kind == "GetFuelSaleTrxDetails":
            for device in request.devices:
                record = self.book.find(device.device_id, device.value("TransactionSeqNo"))
                if record is not None:
                    found.append(record)
            if not found:
                result, error = "Failure", "ERRCD_BADVAL"
        elif kind not in ("LogOff", "POSHeartBeat") and kind not in TILL_REQUESTS:
            result, error = "Failure", "ERRCD_NOTSUPP"
        return build_service_response(
            kind,
            request.request_id,
            overall_result=result,
            fdc_timestamp=self._stamp(),
            application_sender=request.application_sender or "",
            workstation_id=request.workstation_id or "",
            error_code=error,
            interface_version=version,
            sales=found,
            listed=listed,
        )


class _Session:
    """One client connection as the FDC sees it."""

    def __init__(
        self, sim: FdcSimulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.sim = sim
        self.reader = reader
        self.writer = writer
        self.framer = IfsfFramer(sim.header, sim.passphrase)
        self.out: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.version = "01.00"
        self.logged_on = False

    def send(self, xml: bytes) -> None:
        self.out.put_nowait(xml)

    def abort(self) -> None:
        self.logged_on = False
        self.writer.transport.abort()

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._write()), asyncio.create_task(self._beat())]
        good = False
        try:
            while not self.writer.transport.is_closing():
                data = await self.reader.read(65536)
                if not data:
                    break
                for item in self.framer.feed(data):
                    if isinstance(item, FramingError):
                        if not good:  # wrong header variant or passphrase: hang up
                            self.sim.rejected_clients += 1
                            return
                        continue
                    good = True
                    self._handle(item)
        except OSError:
            pass
        finally:
            self.logged_on = False
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.writer.transport.abort()

    def _handle(self, xml: bytes) -> None:
        try:
            message = parse_message(xml)
        except MalformedMessage:
            return
        if isinstance(message, ServiceRequest):
            self.sim.requests[message.request_type] += 1
            self.send(self.sim.answer(self, message))
            if message.request_type == "LogOff":
                self.logged_on = False
                self.out.put_nowait(None)
        elif isinstance(message, PosMessage):
            self.sim.requests[message.message_type] += 1
            self.send(build_fdc_heartbeat(self.version, self.sim._next_id(), self.sim._stamp()))

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.sim.heartbeat_s)
            if self.logged_on:
                self.send(build_fdc_heartbeat(self.version, self.sim._next_id(), self.sim._stamp()))

    async def _write(self) -> None:
        sim = self.sim
        while True:
            xml = await self.out.get()
            if xml is None:
                await self.writer.drain()
                self.writer.close()
                return
            if sim.silent:
                continue
            frame = self.framer.encode(xml)
            if sim.noise and sim.book.noise_rng.random() < sim.noise:
                kind = sim.book.noise_rng.choice(sim.noise_kinds)
                if kind == "drop":
                    self.abort()
                    return
                frame = damage(kind, xml, frame, self.framer, sim.book.noise_rng)
            self.writer.write(frame)
            try:
                await self.writer.drain()
            except OSError:
                return


def serve(
    host: str,
    port: int,
    *,
    pumps: int,
    sales: int | None,
    interval_s: float,
    noise: float,
    seed: int,
    header: str,
    passphrase: str,
    stop: threading.Event,
    on_sale_completed: Callable[[dict[str, str]], None] | None,
    on_listening: Callable[[int], None] | None = None,
    closing: threading.Event | None = None,
    on_closed: Callable[[], None] | None = None,
) -> None:
    """Run a simulated FDC until `stop` is set (blocking; for `loyalpump sim fdc`).

    After `sales` sales (None: for ever), or once `closing` is set, it makes no new sale
    but keeps answering, so clients can still catch up (`on_closed` is called then, once).
    `on_listening` gets the bound port once the FDC accepts connections (useful with port 0).
    """

    async def main() -> None:
        sim = FdcSimulator(
            host=host,
            port=port,
            pumps=pumps,
            header=header,
            passphrase=passphrase,
            seed=seed,
            noise=noise,
            on_sale_completed=on_sale_completed,
        )
        await sim.start()
        if on_listening is not None:
            on_listening(sim.port)
        producer = asyncio.create_task(sim.run_sales(sales, interval_s))
        try:
            closed = False
            while not stop.is_set():
                if closing is not None and closing.is_set() and not closed:
                    producer.cancel()
                    await asyncio.gather(producer, return_exceptions=True)
                    closed = True  # a sale is made at once, so none is left in progress
                    if on_closed is not None:
                        on_closed()
                await asyncio.sleep(0.05)
        finally:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
            await sim.close()

    asyncio.run(main())
