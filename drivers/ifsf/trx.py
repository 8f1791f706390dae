"""Fuel sale transactions as the FDC reports them, and the `FuelSale` the application gets.

Which sales count: an FDC reports a transaction once it is finalised, in State `Payable`;
a till may then `Lock` it and finally `Clear` it (paid). All three mean the fuelling is over
and its volume and amount are final, so all three count (case-insensitive). Any other State
(absent, `Undefined`, vendor states for a running fuelling) is not a sale yet and is never
emitted. A finalised transaction that dispensed nothing (volume and amount both zero) is
not a sale either.

Identity: `ifsf:{name}:{fp}:{TransactionSeqNo}:{EndTimeStamp}`, both as the FDC wrote them
(stripped), so the unsolicited message and the catch-up answer give the same key while a
wrapped sequence number does not collide with an older sale. An FDC that omits
EndTimeStamp gets `~{volume}:{amount}` in its place (stable across both paths, and a wrap
collision would also need the same volume and amount); its end time is then the message's
FDCTimeStamp, or the driver's clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from ..errors import MalformedMessage
from ..events import FuelSale
from .messages import Device, ServiceResponse

__all__ = [
    "COMPLETE_STATES",
    "FuelSaleTrx",
    "available_transactions",
    "fuel_sale_trx_from_device",
    "parse_decimal",
    "parse_timestamp",
    "sale_key",
    "to_fuel_sale",
]

COMPLETE_STATES = frozenset({"payable", "locked", "cleared"})

_DECIMAL = re.compile(r"\d{1,12}(?:\.\d{0,6})?|\.\d{1,6}")
_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})")
_ISO = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)


def parse_decimal(text: str | None, what: str) -> Decimal | None:
    """An exact non-negative decimal string ("38.521"); None when absent or empty."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    if not _DECIMAL.fullmatch(value):
        raise MalformedMessage(f"{what} is not a decimal number: {value[:40]!r}")
    try:
        return Decimal(value)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already guarantees it
        raise MalformedMessage(f"{what} is not a decimal number: {value[:40]!r}") from exc


def parse_timestamp(text: str, zone: ZoneInfo) -> datetime:
    """An FDC timestamp as an aware datetime; naive ones are read in the station's zone.

    Accepts `2026-11-23T10:15:30`, a space instead of T, fractional seconds, `Z` or an
    offset, and the compact `20261123101530`. An ambiguous local time (clocks going back)
    takes its first occurrence.
    """
    value = text.strip()
    compact = _COMPACT.fullmatch(value)
    if compact:
        value = "{}-{}-{}T{}:{}:{}".format(*compact.groups())
    elif not _ISO.fullmatch(value):
        raise MalformedMessage(f"not an FDC timestamp: {value[:40]!r}")
    value = value.replace(",", ".")
    if value[-1] in "zZ":
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise MalformedMessage(f"not an FDC timestamp: {value[:40]!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment


def _int(text: str | None, what: str) -> int | None:
    if text is None or not text.strip():
        return None
    value = text.strip()
    if not value.isdigit() or len(value) > 9:
        raise MalformedMessage(f"{what} is not a number: {value[:40]!r}")
    return int(value)


@dataclass(frozen=True)
class FuelSaleTrx:
    """One FuelSaleTrx DeviceClass, values exactly as given (numbers as Decimal)."""

    fuelling_point: int
    transaction_seq_no: str
    pump_no: int | None = None
    nozzle: int | None = None
    state: str | None = None
    amount: Decimal | None = None
    volume: Decimal | None = None
    unit_price: Decimal | None = None
    product_no: str | None = None
    product_name: str | None = None
    start_timestamp: str | None = None
    end_timestamp: str | None = None
    error_code: str | None = None

    def incomplete_reason(self) -> str | None:
        """Why this is not (yet) a sale to emit; None when it is one."""
        if (self.state or "").lower() not in COMPLETE_STATES:
            return f"state {self.state!r} is not finalised"
        if self.amount is None or self.volume is None:
            return "no amount or no volume"
        if self.amount == 0 and self.volume == 0:
            return "nothing was dispensed"
        return None


def fuel_sale_trx_from_device(device: Device) -> FuelSaleTrx:
    """Read a sale from a `DeviceClass Type="FP"`; bad numbers raise `MalformedMessage`."""
    point = _int(device.device_id, "DeviceID")
    pump_no = _int(device.value("PumpNo"), "PumpNo")
    if point is None:
        point = pump_no
    seq = device.value("TransactionSeqNo")
    if point is None or not seq:
        raise MalformedMessage("FuelSaleTrx without DeviceID or TransactionSeqNo")
    return FuelSaleTrx(
        fuelling_point=point,
        transaction_seq_no=seq,
        pump_no=pump_no,
        nozzle=_optional_int(device.value("NozzleNo")),
        state=device.value("State"),
        amount=parse_decimal(device.value("Amount"), "Amount"),
        volume=parse_decimal(device.value("Volume"), "Volume"),
        unit_price=parse_decimal(device.value("UnitPrice"), "UnitPrice"),
        product_no=device.value("ProductNo1", "Product1No", "ProductNo") or None,
        product_name=device.value("ProductName") or None,
        start_timestamp=device.value("StartTimeStamp") or None,
        end_timestamp=device.value("EndTimeStamp") or None,
        error_code=device.value("ErrorCode") or None,
    )


def _optional_int(text: str | None) -> int | None:
    """A number the sale can do without (a nozzle, a listed device): None when unreadable."""
    try:
        return _int(text, "number")
    except MalformedMessage:
        return None


def available_transactions(response: ServiceResponse) -> list[tuple[int, str]]:
    """(fuelling point, TransactionSeqNo) pairs listed by GetAvailableFuelSaleTrxs."""
    found: list[tuple[int, str]] = []
    for top in response.devices:
        for device in top.walk():
            point = _optional_int(device.device_id) if device.device_id != "*" else None
            if point is None:
                continue  # not a fuelling point number: skip it, never fail the listing
            for seq in device.values("TransactionSeqNo"):
                if seq and (point, seq) not in found:
                    found.append((point, seq))
    return found


def sale_key(name: str, trx: FuelSaleTrx) -> str:
    end = trx.end_timestamp
    if end is None:
        end = f"~{trx.volume}:{trx.amount}"
    return f"ifsf:{name}:{trx.fuelling_point}:{trx.transaction_seq_no}:{end}"


def to_fuel_sale(
    trx: FuelSaleTrx,
    *,
    name: str,
    products: Mapping[int, str],
    zone: ZoneInfo,
    fallback_end: datetime,
    via: str,
) -> FuelSale:
    """The application's view of a complete transaction (check `incomplete_reason` first)."""
    if trx.incomplete_reason() is not None or trx.amount is None or trx.volume is None:
        raise ValueError(f"not a complete sale: {trx.incomplete_reason()}")
    details = {"fdc": name, "transaction_seq_no": trx.transaction_seq_no, "via": via}
    details["state"] = trx.state or ""
    grade = None
    if trx.product_no is not None:
        details["product_no"] = trx.product_no
        number = trx.product_no.strip()
        grade = products.get(int(number)) if number.isdigit() and len(number) < 10 else None
        if grade is None:
            details["grade_unmapped"] = f"product {trx.product_no} is not in the products map"
    else:
        details["grade_unmapped"] = "the FDC sent no product number"
    for key, value in (
        ("product_name", trx.product_name),
        ("pump_no", None if trx.pump_no is None else str(trx.pump_no)),
        ("end_timestamp", trx.end_timestamp),
        ("start_timestamp", trx.start_timestamp),
        ("error_code", trx.error_code),
    ):
        if value is not None:
            details[key] = value
    ended_at = fallback_end
    if trx.end_timestamp is None:
        details["end_time_source"] = "no EndTimeStamp; message or driver time used"
    else:
        try:
            ended_at = parse_timestamp(trx.end_timestamp, zone)
        except MalformedMessage:
            # A sale is never lost over its clock: keep the raw text (it is in the key).
            details["end_time_source"] = "unreadable EndTimeStamp; message or driver time used"
    started_at = None
    if trx.start_timestamp is not None:
        try:
            started_at = parse_timestamp(trx.start_timestamp, zone)
        except MalformedMessage:
            details["start_time_unreadable"] = trx.start_timestamp
    return FuelSale(
        sale_key=sale_key(name, trx),
        source="ifsf",
        fuelling_point=trx.fuelling_point,
        nozzle=trx.nozzle,
        grade=grade,
        volume=trx.volume,
        amount=trx.amount,
        unit_price=trx.unit_price,
        ended_at=ended_at,
        started_at=started_at,
        details=details,
    )
