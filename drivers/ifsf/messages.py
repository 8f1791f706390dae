"""IFSF POS-FDC messages: typed views of what arrives, and the requests a POS sends.

Parsing is lenient where FDCs differ (namespace prefixes, attribute or child element for the
same value, `ProductNo1` or `Product1No`) and strict where a wrong guess would corrupt data
(numbers, timestamps; see `trx`). Builders emit only what a read-only observer needs: it
logs on and off, keeps the link alive and reads sales; it never locks, clears or authorises.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import MalformedMessage
from .xmlsafe import parse_xml

__all__ = [
    "HEARTBEAT_TYPES",
    "Device",
    "FdcMessage",
    "Message",
    "PosIdentity",
    "PosMessage",
    "ServiceRequest",
    "ServiceResponse",
    "build_get_available_fuel_sale_trxs",
    "build_get_fuel_sale_trx_details",
    "build_logoff",
    "build_logon",
    "build_pos_heartbeat",
    "build_pos_ready",
    "parse_message",
    "to_bytes",
]

HEARTBEAT_TYPES = frozenset({"FDC_Ready", "FDCHeartBeat", "FDCHeartbeat"})


@dataclass(frozen=True)
class Device:
    """One `<DeviceClass>`: its attributes, its simple child elements and nested devices."""

    type: str | None
    device_id: str | None
    attrs: Mapping[str, str] = field(default_factory=dict)
    fields: tuple[tuple[str, str], ...] = ()
    devices: tuple[Device, ...] = ()

    def value(self, *names: str) -> str | None:
        """The first of `names` present as an attribute or a child element, stripped."""
        for name in names:
            if name in self.attrs:
                return self.attrs[name].strip()
            for key, text in self.fields:
                if key == name:
                    return text
        return None

    def values(self, name: str) -> list[str]:
        found = [self.attrs[name].strip()] if name in self.attrs else []
        return found + [text for key, text in self.fields if key == name]

    def walk(self) -> list[Device]:
        """This device and every device nested in it, depth first."""
        out = [self]
        for child in self.devices:
            out.extend(child.walk())
        return out


@dataclass(frozen=True)
class ServiceRequest:
    request_type: str
    request_id: str | None
    application_sender: str | None
    workstation_id: str | None
    interface_version: str | None = None
    interface_version_tag: str | None = None  # "InterfaceVersion" (01.00) or "interfaceVersion"
    devices: tuple[Device, ...] = ()


@dataclass(frozen=True)
class ServiceResponse:
    request_type: str
    request_id: str | None
    overall_result: str | None
    application_sender: str | None = None
    workstation_id: str | None = None
    error_code: str | None = None
    fdc_timestamp: str | None = None
    devices: tuple[Device, ...] = ()

    @property
    def ok(self) -> bool:
        return (self.overall_result or "").strip().lower() == "success"


@dataclass(frozen=True)
class FdcMessage:
    """An unsolicited message from the FDC (FuelSaleTrx, FPStateChange, heartbeats…)."""

    message_type: str
    message_id: str | None = None
    fdc_timestamp: str | None = None
    devices: tuple[Device, ...] = ()

    @property
    def is_heartbeat(self) -> bool:
        return self.message_type in HEARTBEAT_TYPES


@dataclass(frozen=True)
class PosMessage:
    message_type: str
    message_id: str | None
    application_sender: str | None
    workstation_id: str | None


Message = ServiceRequest | ServiceResponse | FdcMessage | PosMessage


def _text(element: ET.Element | None) -> str | None:
    if element is None:
        return None
    return (element.text or "").strip()


def _device(element: ET.Element) -> Device:
    fields: list[tuple[str, str]] = []
    nested: list[Device] = []
    for child in element:
        if child.tag == "DeviceClass":
            nested.append(_device(child))
        else:
            fields.append((child.tag, (child.text or "").strip()))
    attrs = dict(element.attrib)
    return Device(
        type=attrs.get("Type"),
        device_id=(attrs.get("DeviceID") or "").strip() or None,
        attrs=attrs,
        fields=tuple(fields),
        devices=tuple(nested),
    )


def _devices(containers: list[ET.Element]) -> tuple[Device, ...]:
    return tuple(_device(dev) for box in containers for dev in box if dev.tag == "DeviceClass")


def _required(root: ET.Element, name: str) -> str:
    value = root.get(name, "").strip()
    if not value:
        raise MalformedMessage(f"<{root.tag}> without {name}")
    return value


def parse_message(data: bytes, *, max_bytes: int = 1_000_000) -> Message:
    """Parse one framed XML message; anything unusable raises `MalformedMessage`."""
    root = parse_xml(data, max_bytes=max_bytes)
    tag = root.tag
    if tag == "ServiceResponse":
        fdc = root.findall("FDCdata")
        error = next(
            (_text(box.find("ErrorCode")) for box in fdc if box.find("ErrorCode") is not None), None
        )
        stamp = next(
            (
                _text(box.find("FDCTimeStamp"))
                for box in fdc
                if box.find("FDCTimeStamp") is not None
            ),
            None,
        )
        return ServiceResponse(
            request_type=_required(root, "RequestType"),
            request_id=root.get("RequestID"),
            overall_result=root.get("OverallResult"),
            application_sender=root.get("ApplicationSender"),
            workstation_id=root.get("WorkstationID"),
            error_code=error,
            fdc_timestamp=stamp,
            devices=_devices(fdc),
        )
    if tag == "FDCMessage":
        fdc = root.findall("FDCdata")
        stamp = next(
            (
                _text(box.find("FDCTimeStamp"))
                for box in fdc
                if box.find("FDCTimeStamp") is not None
            ),
            None,
        )
        return FdcMessage(
            message_type=_required(root, "MessageType"),
            message_id=root.get("MessageID"),
            fdc_timestamp=stamp,
            devices=_devices(fdc),
        )
    if tag == "FDCHeartBeat":
        return FdcMessage(message_type="FDCHeartBeat", message_id=root.get("MessageID"))
    if tag == "ServiceRequest":
        pos = root.findall("POSdata")
        version_tag, version = None, None
        for box in pos:
            for name in ("InterfaceVersion", "interfaceVersion"):
                if box.find(name) is not None:
                    version_tag, version = name, _text(box.find(name))
        return ServiceRequest(
            request_type=_required(root, "RequestType"),
            request_id=root.get("RequestID"),
            application_sender=root.get("ApplicationSender"),
            workstation_id=root.get("WorkstationID"),
            interface_version=version,
            interface_version_tag=version_tag,
            devices=_devices(pos),
        )
    if tag == "POSMessage":
        return PosMessage(
            message_type=_required(root, "MessageType"),
            message_id=root.get("MessageID"),
            application_sender=root.get("ApplicationSender"),
            workstation_id=root.get("WorkstationID"),
        )
    raise MalformedMessage(f"unknown IFSF root element <{tag}>")


# --- building what a POS sends ------------------------------------------------------------


@dataclass(frozen=True)
class PosIdentity:
    """Who we are to the FDC: ApplicationSender (short, unique per POS) and WorkstationID."""

    application_sender: str
    workstation_id: str


def to_bytes(root: ET.Element) -> bytes:
    """UTF-8 XML with a declaration; ElementTree escapes text and attributes for us."""
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body


def _request(
    kind: str, ident: PosIdentity, request_id: int, timestamp: str
) -> tuple[ET.Element, ET.Element]:
    root = ET.Element(
        "ServiceRequest",
        {
            "RequestType": kind,
            "ApplicationSender": ident.application_sender,
            "WorkstationID": ident.workstation_id,
            "RequestID": str(request_id),
        },
    )
    pos = ET.SubElement(root, "POSdata")
    ET.SubElement(pos, "POSTimeStamp").text = timestamp
    return root, pos


def build_logon(
    ident: PosIdentity,
    request_id: int,
    timestamp: str,
    interface_version: str = "01.00",
    port: int | None = None,
) -> bytes:
    """LogOn; interface 00.07 spells the element `interfaceVersion` and names the ports."""
    root, pos = _request("LogOn", ident, request_id, timestamp)
    if interface_version == "00.07":
        if port is not None:
            ET.SubElement(pos, "ResponsePort").text = str(port)
            ET.SubElement(pos, "UnsolicitedPort").text = str(port)
        ET.SubElement(pos, "interfaceVersion").text = interface_version
    else:
        ET.SubElement(pos, "InterfaceVersion").text = interface_version
    return to_bytes(root)


def build_logoff(ident: PosIdentity, request_id: int, timestamp: str) -> bytes:
    return to_bytes(_request("LogOff", ident, request_id, timestamp)[0])


def build_pos_heartbeat(ident: PosIdentity, request_id: int, timestamp: str) -> bytes:
    """Interface 00.07 heartbeat: a ServiceRequest the FDC answers with FDCHeartBeat."""
    return to_bytes(_request("POSHeartBeat", ident, request_id, timestamp)[0])


def build_pos_ready(ident: PosIdentity, message_id: int, timestamp: str) -> bytes:
    """Interface 01.00 heartbeat: an unsolicited POSMessage, no answer expected."""
    root = ET.Element(
        "POSMessage",
        {
            "MessageType": "POS_Ready",
            "ApplicationSender": ident.application_sender,
            "WorkstationID": ident.workstation_id,
            "MessageID": str(message_id),
        },
    )
    ET.SubElement(ET.SubElement(root, "POSdata"), "POSTimeStamp").text = timestamp
    return to_bytes(root)


def build_get_available_fuel_sale_trxs(
    ident: PosIdentity, request_id: int, timestamp: str
) -> bytes:
    root, pos = _request("GetAvailableFuelSaleTrxs", ident, request_id, timestamp)
    ET.SubElement(pos, "DeviceClass", {"Type": "FP", "DeviceID": "*"})
    return to_bytes(root)


def build_get_fuel_sale_trx_details(
    ident: PosIdentity, request_id: int, timestamp: str, fuelling_point: int, seq: str
) -> bytes:
    root, pos = _request("GetFuelSaleTrxDetails", ident, request_id, timestamp)
    ET.SubElement(
        pos,
        "DeviceClass",
        {"Type": "FP", "DeviceID": str(fuelling_point), "TransactionSeqNo": seq},
    )
    return to_bytes(root)
