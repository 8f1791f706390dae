"""A read-only IFSF POS-FDC client: it logs on to the FDC and turns finalised sales into events.

It never locks, clears or authorises anything (those belong to the till). On every
(re)connect it catches up through GetAvailableFuelSaleTrxs + GetFuelSaleTrxDetails, then
follows the unsolicited FuelSaleTrx messages. It also catches up every
`catch_up_interval_s`, and soon after any damaged frame, because that frame may have been a
sale. The periodic catch-up doubles as a liveness probe, so an FDC that answers requests but
sends no heartbeats is not taken for dead (keep it below `silence_timeout_s`).

A sale seen twice keeps its key and is handed over once per process (the application dedupes
by key across restarts). `on_sale` is awaited before the next sale is looked at, and an
exception from it ends `run` (the caller's supervisor restarts the driver).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from typing import Literal, TypeVar
from zoneinfo import ZoneInfo

from ..counters import LinkCounters
from ..errors import DriverError, LinkClosed, MalformedMessage, ProtocolError
from ..events import Clock, PumpStatus, RetryDelay, SaleSink, StatusSink
from .connection import FdcConnection, RequestTimeout, Signal
from .framer import IfsfFramer
from .header import HeaderKind, check_header_kind
from .messages import (
    Device,
    FdcMessage,
    PosIdentity,
    build_get_available_fuel_sale_trxs,
    build_get_fuel_sale_trx_details,
    build_logoff,
    build_logon,
    build_pos_heartbeat,
    build_pos_ready,
)
from .trx import (
    FuelSaleTrx,
    available_transactions,
    fuel_sale_trx_from_device,
    parse_timestamp,
    sale_key,
    to_fuel_sale,
)

__all__ = ["FDC_STATES", "FdcClient", "RequestTimeout"]

FDC_STATES = {
    "FDC_READY": "idle",
    "FDC_CALLING": "calling",
    "FDC_AUTHORISED": "authorized",
    "FDC_STARTED": "authorized",
    "FDC_SUSPENDED_STARTED": "authorized",
    "FDC_FUELLING": "filling",
    "FDC_SUSPENDED_FUELLING": "filling",
    "FDC_OFFLINE": "offline",
    "FDC_CLOSED": "offline",
    "FDC_OUTOFORDER": "error",
    "FDC_ERRORSTATE": "error",
    "FDC_DISABLED": "error",
}
"""DeviceState of an FPStateChange -> the pump board's state."""

_K = TypeVar("_K")
_V = TypeVar("_V")
_REMEMBER = 20_000  # sale keys remembered per process, to hand each sale over once
_DAMAGE_DELAY_S = 0.3  # a damaged frame triggers a catch-up this soon (batching a burst)


class FdcClient:
    """Observe one FDC over TCP; `run` until cancelled, then log off."""

    def __init__(
        self,
        *,
        name: str,
        host: str,
        port: int,
        header: Literal["plain", "md5", "md5-noid"] = "plain",
        passphrase: str = "",
        products: Mapping[int, str],
        zone: ZoneInfo,
        interface_version: Literal["01.00", "00.07"] = "01.00",
        application_sender: str = "loyalpump",
        workstation_id: str = "LP1",
        heartbeat_s: float = 15,
        silence_timeout_s: float = 40,
        connect_timeout_s: float = 5,
        reconnect_delay: RetryDelay,
        counters: LinkCounters | None = None,
        clock: Clock,
        logger: logging.Logger | None = None,
        request_timeout_s: float = 10,
        catch_up_interval_s: float = 30,
        max_message_bytes: int = 1_000_000,
    ) -> None:
        if not name:
            raise ValueError("an FDC link needs a name (it is part of every sale key)")
        if interface_version not in ("01.00", "00.07"):
            raise ValueError("interface_version must be 01.00 or 00.07")
        periods = (heartbeat_s, silence_timeout_s, connect_timeout_s, request_timeout_s)
        if min(*periods, catch_up_interval_s) <= 0:
            raise ValueError("every interval and timeout must be positive")
        self.name = name
        self.host = host
        self.port = port
        self.header: HeaderKind = check_header_kind(header)
        self.interface_version = interface_version
        self.counters = counters if counters is not None else LinkCounters()
        self.logged_on = False
        self._passphrase = passphrase
        self._products = dict(products)
        self._zone = zone
        self._ident = PosIdentity(application_sender, workstation_id)
        self._heartbeat_s = heartbeat_s
        self._silence_s = silence_timeout_s
        self._connect_s = connect_timeout_s
        self._request_s = request_timeout_s
        self._catch_up_s = catch_up_interval_s
        self._reconnect_delay = reconnect_delay
        self._max_bytes = max_message_bytes
        self._clock = clock
        self._log = logger or logging.getLogger(f"drivers.ifsf.{name}")
        self._ids = itertools.count(1)
        self._emitted: OrderedDict[str, None] = OrderedDict()
        self._known: OrderedDict[tuple[int, str], str] = OrderedDict()
        self._points: set[int] = set()

    async def run(self, on_sale: SaleSink, on_status: StatusSink | None = None) -> None:
        """Connect, log on, catch up, follow; reconnect after `reconnect_delay`; until cancelled.

        `reconnect_delay(n)` is the wait after the n-th failure in a row (a session that
        logged on starts the count afresh); the daemon passes `cloud_sync.core.backoff.schedule`.
        """
        failures = 0
        for attempt in itertools.count():
            if attempt:
                self.counters.bump("reconnects")
            leftover: list[FdcMessage] = []
            try:
                await self._session(on_sale, on_status, leftover)
            except DriverError as exc:
                self._log.warning("FDC %s:%s: %s; reconnecting", self.host, self.port, exc)
            was_on, self.logged_on = self.logged_on, False
            failures = 1 if was_on else failures + 1
            for message in leftover:  # arrived intact before the link failed
                await self._handle(message, on_sale, on_status)
            if on_status is not None and was_on:
                for point in sorted(self._points):
                    await on_status(PumpStatus("ifsf", point, "offline", None, self._clock()))
            await asyncio.sleep(self._reconnect_delay(failures))

    async def _session(
        self, on_sale: SaleSink, on_status: StatusSink | None, leftover: list[FdcMessage]
    ) -> None:
        link = await FdcConnection.open(
            self.host,
            self.port,
            IfsfFramer(self.header, self._passphrase, self._max_bytes),
            connect_s=self._connect_s,
            counters=self.counters,
            logger=self._log,
            silence_s=self._silence_s,
            request_s=self._request_s,
            stamp=self._stamp,
            ids=self._ids,
        )
        try:
            await self._log_on(link)
            if self.interface_version == "00.07":
                link.start_heartbeat(
                    self._heartbeat_s, functools.partial(build_pos_heartbeat, self._ident)
                )
            else:
                link.start_heartbeat(
                    self._heartbeat_s, functools.partial(build_pos_ready, self._ident)
                )
            await self._catch_up(link, on_sale, full=True)
            await self._follow(link, on_sale, on_status)
        except asyncio.CancelledError:
            if self.logged_on:
                with contextlib.suppress(DriverError, TimeoutError):
                    async with asyncio.timeout(min(1.0, self._request_s)):
                        await link.request("LogOff", functools.partial(build_logoff, self._ident))
            raise
        finally:
            leftover.extend(await link.close())

    async def _log_on(self, link: FdcConnection) -> None:
        port = self.port if self.interface_version == "00.07" else None
        response = await link.request(
            "LogOn",
            lambda rid, stamp: build_logon(self._ident, rid, stamp, self.interface_version, port),
        )
        if not response.ok:
            raise ProtocolError(f"LogOn refused: {response.overall_result} {response.error_code}")
        self.logged_on = True
        self._log.info("logged on to FDC %s:%s (%s header)", self.host, self.port, self.header)

    async def _follow(
        self, link: FdcConnection, on_sale: SaleSink, on_status: StatusSink | None
    ) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self._catch_up_s
        while True:
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel
                # that races its result, and a driver that ignores its cancel hangs shutdown.
                async with asyncio.timeout(max(0.0, due - loop.time())):
                    event = await link.events.get()
            except TimeoutError:
                complete = await self._catch_up(link, on_sale, full=False)
                due = loop.time() + (self._catch_up_s if complete else self._request_s)
                continue
            if event is Signal.CLOSED:
                raise link.failure or LinkClosed("connection closed")
            if event is Signal.DAMAGED:
                due = min(due, loop.time() + _DAMAGE_DELAY_S)
            elif isinstance(event, FdcMessage):
                await self._handle(event, on_sale, on_status)

    async def _catch_up(self, link: FdcConnection, on_sale: SaleSink, *, full: bool) -> bool:
        """Fetch the sales the FDC still holds; False when something went unanswered.

        `full` (after a connect) also re-reads transactions already seen, because a sequence
        number may have wrapped onto a new sale while we were away; otherwise only new
        (fuelling point, number) pairs are read.
        """
        try:
            listing = await link.request(
                "GetAvailableFuelSaleTrxs",
                functools.partial(build_get_available_fuel_sale_trxs, self._ident),
            )
        except RequestTimeout:
            return False
        if not listing.ok:  # typically "no transactions"
            return True
        refs = available_transactions(listing)
        wanted = [ref for ref in refs if ref not in self._known]
        if full:
            wanted += [ref for ref in refs if ref in self._known]
        complete = True
        for point, seq in wanted:
            try:
                answer = await link.request(
                    "GetFuelSaleTrxDetails",
                    functools.partial(self._details, point=point, seq=seq),
                )
            except RequestTimeout:
                complete = False
                continue
            if answer.ok:
                await self._sales_in(answer.devices, answer.fdc_timestamp, on_sale, "catch-up")
        return complete

    def _details(self, request_id: int, stamp: str, *, point: int, seq: str) -> bytes:
        return build_get_fuel_sale_trx_details(self._ident, request_id, stamp, point, seq)

    async def _handle(
        self, message: FdcMessage, on_sale: SaleSink, on_status: StatusSink | None
    ) -> None:
        if message.message_type == "FuelSaleTrx":
            await self._sales_in(message.devices, message.fdc_timestamp, on_sale, "unsolicited")
        elif message.message_type == "FPStateChange" and on_status is not None:
            for device in message.devices:
                state = FDC_STATES.get((device.value("DeviceState") or "").upper())
                point = device.device_id or ""
                if state is None or not point.isdigit() or len(point) > 6:
                    continue
                nozzle = device.value("NozzleNo") or ""
                self._points.add(int(point))
                await on_status(
                    PumpStatus(
                        "ifsf",
                        int(point),
                        state,
                        int(nozzle) if nozzle.isdigit() and len(nozzle) < 6 else None,
                        self._clock(),
                    )
                )

    async def _sales_in(
        self, devices: tuple[Device, ...], stamp: str | None, on_sale: SaleSink, via: str
    ) -> None:
        for top in devices:
            for device in top.walk():
                if device.value("TransactionSeqNo") is None:
                    continue
                try:
                    trx = fuel_sale_trx_from_device(device)
                    await self._emit(trx, stamp, on_sale, via)
                except MalformedMessage as exc:
                    self.counters.bump("malformed")
                    self._log.warning("unusable FuelSaleTrx (%s): %s", via, exc)

    async def _emit(self, trx: FuelSaleTrx, stamp: str | None, on_sale: SaleSink, via: str) -> None:
        reason = trx.incomplete_reason()
        if reason is not None:
            self._log.debug(
                "FP %s trx %s not a sale: %s", trx.fuelling_point, trx.transaction_seq_no, reason
            )
            return
        key = sale_key(self.name, trx)
        _remember(self._known, (trx.fuelling_point, trx.transaction_seq_no), key)
        if key in self._emitted:
            return
        sale = to_fuel_sale(
            trx,
            name=self.name,
            products=self._products,
            zone=self._zone,
            fallback_end=self._fallback_end(stamp),
            via=via,
        )
        await on_sale(sale)
        _remember(self._emitted, key, None)
        self._points.add(trx.fuelling_point)
        self.counters.bump("sales")

    def _fallback_end(self, stamp: str | None) -> datetime:
        if stamp:
            with contextlib.suppress(MalformedMessage):
                return parse_timestamp(stamp, self._zone)
        return self._clock()

    def _stamp(self) -> str:
        return self._clock().astimezone(self._zone).strftime("%Y-%m-%dT%H:%M:%S")


def _remember(memory: OrderedDict[_K, _V], key: _K, value: _V) -> None:
    memory[key] = value
    memory.move_to_end(key)
    while len(memory) > _REMEMBER:
        memory.popitem(last=False)
