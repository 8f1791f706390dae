"""Shared by the IFSF tests: literal messages from public material, a sale collector, helpers.

Literal XML below is quoted from public IFSF client code, as data for our parser:
- xingxx78/SmartScreen, waynelib/src/test/.../FdcMessageSerializeAndDeserializeUnitTest.java
  (FuelSaleTrx, FPStateChange, AuthoriseFuelPoint response, LogOn request samples);
- xingxx78/SmartScreen, waynelib/src/test/.../Md5UnitTest.java (a 00.07 LogOn whose
  MD5 with the passphrase "DresserFusion}123" is C17A8B6F561942B5794F86963C2BDC53).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from cloud_sync.core.backoff import schedule
from drivers.events import FuelSale, PumpStatus
from drivers.ifsf.client import FdcClient
from drivers.ifsf.fdcside import SaleRecord, build_fuel_sale_trx, build_service_response
from drivers.ifsf.framer import IfsfFramer
from drivers.ifsf.messages import ServiceRequest, parse_message
from drivers.ifsf.simulator import FdcSimulator

SHANGHAI = ZoneInfo("Asia/Shanghai")
PRODUCTS = {1: "92", 2: "95", 3: "0"}
T = TypeVar("T")

SMARTSCREEN_FUEL_SALE_TRX = (
    '<FDCMessage MessageType="FuelSaleTrx" ApplicationSender="CD001" '
    'WorkstationID="CD-01" MessageID="073322" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:noNamespaceSchemaLocation="FDC_FuelSaleTrx_Unsolicited.xsd"> <FDCdata>    '
    "<FDCTimeStamp>2009-11-20T17:30:50</FDCTimeStamp>     "
    '<DeviceClass Type="FP" DeviceID="23" PumpNo="1" NozzleNo="1" '
    'TransactionSeqNo="120301" >       <State>Locked</State>       '
    '<ReleaseToken></ReleaseToken>       <FuelMode ModeNo="2"></FuelMode>       '
    "<Amount>76.96</Amount>       <Volume>38.521</Volume>       <UnitPrice>1.999</UnitPrice>"
    "<VolumeProduct1>38.52</VolumeProduct1>       <VolumeProduct2></VolumeProduct2>   "
    "<ProductNo1>1000</ProductNo1>       <ProductNo2></ProductNo2>      "
    "<BlendRatio>100</BlendRatio>       "
    "<LockingApplicationSender>POSsell1</LockingApplicationSender>"
    "<AuthorisationApplicationSender>POSsell1</AuthorisationApplicationSender>   "
    "<DSPFields>Field1 Field2 …Fieldn CheckSum</DSPFields>   "
    '<CRCMode>ProcedureNo="1"</CRCMode>       <ErrorCode>ERRCD_OK</ErrorCode> '
    "</DeviceClass>   </FDCdata>  </FDCMessage>  "
).encode()

SMARTSCREEN_FP_STATE_CHANGE = (
    b'<FDCMessage MessageType="FPStateChange" ApplicationSender="CD001" '
    b'WorkstationID="CD-01" MessageID="073322" '
    b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    b'xsi:noNamespaceSchemaLocation="FDC_FPStateChange_Unsolicited.xsd">    <FDCdata>'
    b"<FDCTimeStamp> 2009-11-20T17:30:50 </FDCTimeStamp>    "
    b'<DeviceClass Type="FP" DeviceID="23" PumpNo="1">       '
    b"<DeviceState>FDC_READY</DeviceState>      "
    b"<LockingApplicationSender> POSsell1</LockingApplicationSender>"
    b'<Nozzle  NozzleNo="1">         <LogicalNozzle>NozzleUp</LogicalNozzle>'
    b"         <LogicalState>Unlocked</LogicalState>"
    b"<TankLogicalState>Unlocked</TankLogicalState>        <ErrorCode>ERRCD_OK</ErrorCode>"
    b"       </Nozzle>"
    b"<ErrorCode>ERRCD_OK</ErrorCode>     </DeviceClass>   </FDCdata> </FDCMessage>"
)

SMARTSCREEN_AUTHORISE_RESPONSE = (
    b'<ServiceResponse RequestType="AuthoriseFuelPoint" ApplicationSender="POSsell1" '
    b'WorkstationID="POS01" RequestID="01254" OverallResult="Success" '
    b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    b'xsi:noNamespaceSchemaLocation="FDC_AuthoriseFuelPoint_Response.xsd">   <FDCdata>  '
    b'<FDCTimeStamp>2009-11-20T17:30:50</FDCTimeStamp>     <DeviceClass Type="FP" DeviceID="1" >  '
    b"<ErrorCode>ERRCD_OK</ErrorCode>     </DeviceClass>   </FDCdata> </ServiceResponse> "
)

SMARTSCREEN_LOGON_DEFAULT_NS = (
    b'<ServiceRequest RequestType="LogOn" ApplicationSender="hello" '
    b'WorkstationID="" RequestID="1983" xmlns="http://www.w3.org/2001/XMLSchema-instance">'
    b"<POSdata>"
    b"<POSTimeStamp>2009-11-20T17:30:50</POSTimeStamp>"
    b"<interfaceVersion>1004</interfaceVersion>"
    b"</POSdata>"
    b"</ServiceRequest>"
)

MD5_SAMPLE_LOGON = (
    b'<?xml version="1.0"?>\r\n<ServiceRequest xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
    b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" RequestType="LogOn" '
    b'ApplicationSender="101" WorkstationID="101" RequestID="1">\r\n  <POSdata>\r\n'
    b"    <POSTimeStamp>2016-04-24T20:48:52</POSTimeStamp>\r\n    <POSName />\r\n"
    b"    <ResponsePort>4710</ResponsePort>\r\n    <UnsolicitedPort>4710</UnsolicitedPort>\r\n"
    b"    <interfaceVersion>00.07</interfaceVersion>\r\n  </POSdata>\r\n</ServiceRequest>"
)
MD5_SAMPLE_PASSPHRASE = "DresserFusion}123"
MD5_SAMPLE_DIGEST = "C17A8B6F561942B5794F86963C2BDC53"


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """Run one async test body with a hard ceiling, so a hang fails instead of stalling CI."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def now() -> datetime:
    return datetime.now(SHANGHAI)


@dataclass
class Collector:
    """The application side: records sales by key, the way the store dedupes them."""

    by_key: dict[str, FuelSale] = field(default_factory=dict)
    deliveries: int = 0
    conflicts: list[tuple[FuelSale, FuelSale]] = field(default_factory=list)
    statuses: list[PumpStatus] = field(default_factory=list)

    async def on_sale(self, sale: FuelSale) -> None:
        self.deliveries += 1
        old = self.by_key.setdefault(sale.sale_key, sale)
        if _identity(old) != _identity(sale):
            self.conflicts.append((old, sale))

    async def on_status(self, status: PumpStatus) -> None:
        self.statuses.append(status)


def _identity(sale: FuelSale) -> tuple[object, ...]:
    return (
        sale.fuelling_point,
        sale.nozzle,
        sale.grade,
        sale.volume,
        sale.amount,
        sale.unit_price,
        sale.ended_at,
    )


def fast_client(sim: FdcSimulator, *, name: str = "fdc", **overrides: Any) -> FdcClient:
    """A client with test-sized timers, matching the simulator's header and passphrase."""
    options: dict[str, Any] = {
        "name": name,
        "host": "127.0.0.1",
        "port": sim.port,
        "header": sim.header,
        "passphrase": sim.passphrase,
        "products": PRODUCTS,
        "zone": SHANGHAI,
        "clock": now,
        "heartbeat_s": 0.2,
        "silence_timeout_s": 1.0,
        "connect_timeout_s": 1.0,
        "request_timeout_s": 0.5,
        "reconnect_delay": schedule(base_s=0.1, cap_s=0.2),
        "catch_up_interval_s": 1.0,
    }
    options.update(overrides)
    return FdcClient(**options)


async def wait_until(condition: Any, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class ScriptedFdc:
    """A bare FDC for conversations the simulator does not play."""

    def __init__(
        self, *, logon: str = "Success", echo_ids: bool = True, pushes: tuple[bytes, ...] = ()
    ):
        self.logon, self.echo_ids, self.pushes = logon, echo_ids, pushes
        self.port = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = IfsfFramer("plain")
        try:
            while data := await reader.read(65536):
                for item in framer.feed(data):
                    request = parse_message(item) if isinstance(item, bytes) else None
                    if not isinstance(request, ServiceRequest):
                        continue
                    kind = request.request_type
                    result = self.logon if kind == "LogOn" else "Success"
                    rid = request.request_id if self.echo_ids else "999"
                    writer.write(
                        framer.encode(
                            build_service_response(
                                kind,
                                rid,
                                overall_result=result,
                                fdc_timestamp="2026-11-23T10:00:00",
                            )
                        )
                    )
                    if kind == "GetAvailableFuelSaleTrxs":
                        for push in self.pushes:
                            writer.write(framer.encode(push))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


def scripted_client(fdc: ScriptedFdc) -> FdcClient:
    return FdcClient(
        name="fdc",
        host="127.0.0.1",
        port=fdc.port,
        products={1: "92"},
        zone=SHANGHAI,
        clock=lambda: datetime(2026, 11, 23, 12, 0, tzinfo=SHANGHAI),
        heartbeat_s=0.2,
        silence_timeout_s=1,
        request_timeout_s=0.5,
        reconnect_delay=schedule(base_s=0.05, cap_s=0.1),
    )


def pushed(
    state: str,
    *,
    seq: str,
    volume: str = "10.00",
    amount: str = "75.00",
    end: str = "2026-11-23T10:15:30",
) -> bytes:
    sale = SaleRecord(
        1, 1, 1, "92#汽油", volume, amount, "7.50", seq, "2026-11-23T10:14:00", end, state
    )
    return build_fuel_sale_trx(sale, 1, "2026-11-23T10:15:31")
