"""One TCP connection to an FDC: frames out, typed messages in, answers matched to requests.

This is the I/O edge of the client. It knows nothing of sales: unsolicited messages go to
`events` in arrival order, damaged traffic is counted and signalled (a lost frame may have
been a sale, so the client catches up), and silence beyond `silence_s` closes the link.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Callable, Iterator

from ..counters import LinkCounters
from ..errors import (
    CrcError,
    DriverError,
    FramingError,
    LinkClosed,
    LinkError,
    MalformedMessage,
    OversizedFrame,
)
from .framer import IfsfFramer
from .messages import FdcMessage, ServiceResponse, parse_message

__all__ = ["FdcConnection", "RequestTimeout", "Signal"]

Build = Callable[[int, str], bytes]
"""Makes a request's XML from a request id and a POSTimeStamp."""


class RequestTimeout(LinkError):
    """The FDC did not answer a request in time."""


class Signal(enum.Enum):
    CLOSED = "closed"  # the connection is gone; `failure` says why
    DAMAGED = "damaged"  # a frame was lost or unreadable


class FdcConnection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        framer: IfsfFramer,
        *,
        counters: LinkCounters,
        logger: logging.Logger,
        silence_s: float,
        request_s: float,
        stamp: Callable[[], str],
        ids: Iterator[int],
    ) -> None:
        self.framer = framer
        self.events: asyncio.Queue[FdcMessage | Signal] = asyncio.Queue()
        self.failure: DriverError | None = None
        self._reader = reader
        self._writer = writer
        self._counters = counters
        self._log = logger
        self._silence_s = silence_s
        self._request_s = request_s
        self._stamp = stamp
        self._ids = ids
        self._pending: dict[str, tuple[str, asyncio.Future[ServiceResponse]]] = {}
        self._write_lock = asyncio.Lock()
        self._tasks = [asyncio.create_task(self._read(), name="ifsf-read")]

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        framer: IfsfFramer,
        *,
        connect_s: float,
        counters: LinkCounters,
        logger: logging.Logger,
        silence_s: float,
        request_s: float,
        stamp: Callable[[], str],
        ids: Iterator[int],
    ) -> FdcConnection:
        try:
            async with asyncio.timeout(connect_s):
                reader, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as exc:
            raise LinkError(f"cannot connect to {host}:{port}: {exc or 'timed out'}") from None
        return cls(
            reader,
            writer,
            framer,
            counters=counters,
            logger=logger,
            silence_s=silence_s,
            request_s=request_s,
            stamp=stamp,
            ids=ids,
        )

    async def request(self, kind: str, build: Build) -> ServiceResponse:
        """Send a ServiceRequest and wait for its answer (RequestTimeout, or the link's error)."""
        request_id = next(self._ids)
        future: asyncio.Future[ServiceResponse] = asyncio.get_running_loop().create_future()
        self._pending[str(request_id)] = (kind, future)
        try:
            if self.failure is not None:
                raise self.failure
            await self.send(build(request_id, self._stamp()))
            async with asyncio.timeout(self._request_s):
                return await future
        except TimeoutError:
            self._counters.bump("timeouts")
            raise RequestTimeout(f"no answer to {kind} within {self._request_s:g} s") from None
        finally:
            self._pending.pop(str(request_id), None)

    async def send(self, xml: bytes) -> None:
        frame = self.framer.encode(xml)
        try:
            async with self._write_lock:
                self._writer.write(frame)
                await self._writer.drain()
        except OSError as exc:
            raise LinkError(f"send failed: {exc}") from exc

    def start_heartbeat(self, every_s: float, build: Build) -> None:
        """Send `build(id, stamp)` every `every_s`; its answer only proves the link lives."""

        async def beat() -> None:
            try:
                while True:
                    await asyncio.sleep(every_s)
                    await self.send(build(next(self._ids), self._stamp()))
            except DriverError as exc:
                self._fail(LinkError(f"heartbeat failed: {exc}"))

        self._tasks.append(asyncio.create_task(beat(), name="ifsf-beat"))

    async def close(self) -> list[FdcMessage]:
        """Stop reading and writing; return the messages that arrived but were not taken."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await self._writer.wait_closed()
        leftover = []
        while not self.events.empty():
            event = self.events.get_nowait()
            if isinstance(event, FdcMessage):
                leftover.append(event)
        return leftover

    def _fail(self, error: DriverError) -> None:
        if self.failure is None:
            self.failure = error
            self.events.put_nowait(Signal.CLOSED)
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(error)

    def _resolve(self, response: ServiceResponse) -> None:
        entry = self._pending.get(response.request_id or "")
        if entry is None or entry[0] != response.request_type:
            # some FDCs do not echo RequestID: take the oldest request of that type
            entry = next((e for e in self._pending.values() if e[0] == response.request_type), None)
        if entry is None or entry[1].done():
            self._log.debug("unexpected %s answer", response.request_type)
            return
        entry[1].set_result(response)

    async def _read(self) -> None:
        try:
            while True:
                try:
                    async with asyncio.timeout(self._silence_s):
                        data = await self._reader.read(65536)
                except TimeoutError:
                    self._counters.bump("timeouts")
                    raise LinkError(f"no traffic from the FDC for {self._silence_s:g} s") from None
                if not data:
                    raise LinkClosed("the FDC closed the connection")
                for item in self.framer.feed(data):
                    if isinstance(item, bytes):
                        self._counters.bump("frames")
                        self._take(item)
                    else:
                        self._damaged(item)
        except DriverError as exc:
            self._fail(exc)
        except OSError as exc:
            self._fail(LinkError(str(exc) or repr(exc)))
        finally:
            self._fail(LinkClosed("connection closed"))

    def _take(self, xml: bytes) -> None:
        try:
            message = parse_message(xml, max_bytes=len(xml))
        except MalformedMessage as exc:
            self._counters.bump("malformed")
            self._damaged(exc)
            return
        if isinstance(message, ServiceResponse):
            self._resolve(message)
        elif isinstance(message, FdcMessage) and not message.is_heartbeat:
            self.events.put_nowait(message)

    def _damaged(self, error: DriverError) -> None:
        if isinstance(error, CrcError):
            self._counters.bump("crc_errors")
        elif isinstance(error, FramingError):
            self._counters.bump("framing_errors")
            if isinstance(error, OversizedFrame):
                self._counters.bump("resyncs")
        self._log.info("damaged traffic from the FDC: %s", error)
        self.events.put_nowait(Signal.DAMAGED)
