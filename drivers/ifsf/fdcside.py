"""What an FDC sends: service responses, unsolicited sales, state changes and heartbeats.

Used by the simulator and by tests; a POS never builds these. Shapes follow IFSF Part 3-27
as seen in public clients' sample XML (xingxx78/SmartScreen unit tests).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from .messages import to_bytes

__all__ = [
    "BILLION_LAUGHS",
    "EXTERNAL_ENTITY",
    "SaleRecord",
    "build_fdc_heartbeat",
    "build_fp_state_change",
    "build_fuel_sale_trx",
    "build_service_response",
    "fp_device",
    "sale_device",
]

BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">'
        % (level, (b"&lol%d;" % (level - 1) if level > 1 else b"&lol;") * 10)
        for level in range(1, 10)
    )
    + b']>\n<FDCMessage MessageType="FuelSaleTrx"><FDCdata><FDCTimeStamp>&lol9;'
    b"</FDCTimeStamp></FDCdata></FDCMessage>"
)
"""The classic entity-expansion bomb: a few hundred bytes that expand to ~3 GB."""

EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
    b'<FDCMessage MessageType="FuelSaleTrx"><FDCdata><FDCTimeStamp>&x;</FDCTimeStamp>'
    b"</FDCdata></FDCMessage>"
)


@dataclass(frozen=True)
class SaleRecord:
    """A finalised transaction as the FDC stores it; numbers are exact decimal strings."""

    fuelling_point: int
    nozzle: int
    product_no: int
    product_name: str
    volume: str
    amount: str
    unit_price: str
    seq: str
    start_timestamp: str
    end_timestamp: str
    state: str = "Payable"


def fp_device(parent: ET.Element, fuelling_point: int | str, **attrs: str) -> ET.Element:
    return ET.SubElement(
        parent, "DeviceClass", {"Type": "FP", "DeviceID": str(fuelling_point), **attrs}
    )


def sale_device(parent: ET.Element, sale: SaleRecord, *, product_tag: str = "ProductNo1") -> None:
    device = fp_device(
        parent,
        sale.fuelling_point,
        PumpNo=str(sale.fuelling_point),
        NozzleNo=str(sale.nozzle),
        TransactionSeqNo=sale.seq,
    )
    for tag, text in (
        ("State", sale.state),
        ("ReleaseToken", ""),
        ("Amount", sale.amount),
        ("Volume", sale.volume),
        ("UnitPrice", sale.unit_price),
        (product_tag, str(sale.product_no)),
        ("ProductName", sale.product_name),
        ("StartTimeStamp", sale.start_timestamp),
        ("EndTimeStamp", sale.end_timestamp),
        ("ErrorCode", "ERRCD_OK"),
    ):
        ET.SubElement(device, tag).text = text


def build_service_response(
    request_type: str,
    request_id: str | None,
    *,
    overall_result: str = "Success",
    fdc_timestamp: str,
    application_sender: str = "",
    workstation_id: str = "",
    error_code: str | None = None,
    interface_version: str | None = None,
    sales: Sequence[SaleRecord] = (),
    listed: Sequence[tuple[int, str]] = (),
) -> bytes:
    """A ServiceResponse echoing the request; `sales` in full, `listed` as (fp, seq) only."""
    root = ET.Element(
        "ServiceResponse",
        {
            "RequestType": request_type,
            "ApplicationSender": application_sender,
            "WorkstationID": workstation_id,
            "RequestID": request_id or "",
            "OverallResult": overall_result,
        },
    )
    data = ET.SubElement(root, "FDCdata")
    ET.SubElement(data, "FDCTimeStamp").text = fdc_timestamp
    if interface_version is not None:
        ET.SubElement(data, "InterfaceVersion").text = interface_version
    for sale in sales:
        sale_device(data, sale)
    for point, seq in listed:
        device = fp_device(data, point, TransactionSeqNo=seq)
        ET.SubElement(device, "ErrorCode").text = "ERRCD_OK"
    if error_code is not None:
        ET.SubElement(data, "ErrorCode").text = error_code
    return to_bytes(root)


def _fdc_message(kind: str, message_id: int, fdc_timestamp: str) -> tuple[ET.Element, ET.Element]:
    root = ET.Element(
        "FDCMessage",
        {
            "MessageType": kind,
            "ApplicationSender": "FDC",
            "WorkstationID": "FDC1",
            "MessageID": str(message_id),
        },
    )
    data = ET.SubElement(root, "FDCdata")
    ET.SubElement(data, "FDCTimeStamp").text = fdc_timestamp
    return root, data


def build_fuel_sale_trx(
    sale: SaleRecord, message_id: int, fdc_timestamp: str, *, product_tag: str = "ProductNo1"
) -> bytes:
    root, data = _fdc_message("FuelSaleTrx", message_id, fdc_timestamp)
    sale_device(data, sale, product_tag=product_tag)
    return to_bytes(root)


def build_fp_state_change(
    fuelling_point: int, state: str, nozzle: int | None, message_id: int, fdc_timestamp: str
) -> bytes:
    root, data = _fdc_message("FPStateChange", message_id, fdc_timestamp)
    device = fp_device(data, fuelling_point, PumpNo=str(fuelling_point))
    ET.SubElement(device, "DeviceState").text = state
    if nozzle is not None:
        ET.SubElement(device, "NozzleNo").text = str(nozzle)
    ET.SubElement(device, "ErrorCode").text = "ERRCD_OK"
    return to_bytes(root)


def build_fdc_heartbeat(interface_version: str, message_id: int, fdc_timestamp: str) -> bytes:
    """`FDC_Ready` (interface 01.00) or `FDCHeartBeat` (00.07), as an FDCMessage."""
    kind = "FDCHeartBeat" if interface_version == "00.07" else "FDC_Ready"
    return to_bytes(_fdc_message(kind, message_id, fdc_timestamp)[0])
