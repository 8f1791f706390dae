"""IFSF messages: public sample XML parsed, requests built, sales read, hostile XML refused.

Literal samples are from xingxx78/SmartScreen's unit tests (see ifsf_support).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from drivers.errors import MalformedMessage
from drivers.ifsf.fdcside import (
    BILLION_LAUGHS,
    EXTERNAL_ENTITY,
    SaleRecord,
    build_fuel_sale_trx,
    build_service_response,
)
from drivers.ifsf.messages import (
    Device,
    FdcMessage,
    PosIdentity,
    PosMessage,
    ServiceRequest,
    ServiceResponse,
    build_get_available_fuel_sale_trxs,
    build_get_fuel_sale_trx_details,
    build_logoff,
    build_logon,
    build_pos_heartbeat,
    build_pos_ready,
    parse_message,
)
from drivers.ifsf.trx import (
    FuelSaleTrx,
    available_transactions,
    fuel_sale_trx_from_device,
    parse_decimal,
    parse_timestamp,
    sale_key,
    to_fuel_sale,
)
from drivers.ifsf.xmlsafe import parse_xml
from tests.drivers.ifsf.ifsf_support import (
    MD5_SAMPLE_LOGON,
    SHANGHAI,
    SMARTSCREEN_AUTHORISE_RESPONSE,
    SMARTSCREEN_FP_STATE_CHANGE,
    SMARTSCREEN_FUEL_SALE_TRX,
    SMARTSCREEN_LOGON_DEFAULT_NS,
)

IDENT = PosIdentity("loyalpump", "LP1")
SALE = SaleRecord(
    fuelling_point=3,
    nozzle=2,
    product_no=2,
    product_name="95#汽油",
    volume="31.17",
    amount="249.98",
    unit_price="8.02",
    seq="9999",
    start_timestamp="2026-11-23T10:13:02",
    end_timestamp="2026-11-23T10:15:30",
)


def only_sale(data: bytes) -> FuelSaleTrx:
    message = parse_message(data)
    assert isinstance(message, FdcMessage | ServiceResponse)
    (device,) = message.devices
    return fuel_sale_trx_from_device(device)


def test_smartscreen_fuel_sale_trx() -> None:
    message = parse_message(SMARTSCREEN_FUEL_SALE_TRX)
    assert isinstance(message, FdcMessage)
    assert message.message_type == "FuelSaleTrx"
    assert message.fdc_timestamp == "2009-11-20T17:30:50"
    trx = only_sale(SMARTSCREEN_FUEL_SALE_TRX)
    assert trx == FuelSaleTrx(
        fuelling_point=23,
        transaction_seq_no="120301",
        pump_no=1,
        nozzle=1,
        state="Locked",
        amount=Decimal("76.96"),
        volume=Decimal("38.521"),
        unit_price=Decimal("1.999"),
        product_no="1000",
        error_code="ERRCD_OK",
    )
    assert trx.incomplete_reason() is None  # Locked: finalised, a till holds it


def test_a_sale_without_end_timestamp_keys_on_its_quantities() -> None:
    trx = only_sale(SMARTSCREEN_FUEL_SALE_TRX)
    fallback = datetime(2009, 11, 20, 17, 30, 50, tzinfo=SHANGHAI)
    sale = to_fuel_sale(
        trx, name="fdc", products={1000: "92"}, zone=SHANGHAI, fallback_end=fallback, via="test"
    )
    assert sale.sale_key == "ifsf:fdc:23:120301:~38.521:76.96"
    assert sale.grade == "92"
    assert sale.ended_at == fallback
    assert "end_time_source" in sale.details


def test_smartscreen_state_change_and_response() -> None:
    change = parse_message(SMARTSCREEN_FP_STATE_CHANGE)
    assert isinstance(change, FdcMessage)
    assert change.fdc_timestamp == "2009-11-20T17:30:50"  # the sample pads it with spaces
    assert change.devices[0].value("DeviceState") == "FDC_READY"
    answer = parse_message(SMARTSCREEN_AUTHORISE_RESPONSE)
    assert isinstance(answer, ServiceResponse)
    assert (answer.request_type, answer.request_id, answer.ok) == (
        "AuthoriseFuelPoint",
        "01254",
        True,
    )
    assert answer.devices[0].value("ErrorCode") == "ERRCD_OK"


def test_logon_samples_with_namespaces_and_old_spelling() -> None:
    for data in (SMARTSCREEN_LOGON_DEFAULT_NS, MD5_SAMPLE_LOGON):
        request = parse_message(data)
        assert isinstance(request, ServiceRequest)
        assert request.request_type == "LogOn"
        assert request.interface_version_tag == "interfaceVersion"
    old = parse_message(MD5_SAMPLE_LOGON)
    assert isinstance(old, ServiceRequest)
    assert old.interface_version == "00.07"


def test_requests_we_build_parse_back() -> None:
    stamp = "2026-11-23T10:00:00"
    logon = parse_message(build_logon(IDENT, 1, stamp))
    assert isinstance(logon, ServiceRequest)
    assert (logon.request_type, logon.interface_version, logon.interface_version_tag) == (
        "LogOn",
        "01.00",
        "InterfaceVersion",
    )
    old = build_logon(IDENT, 2, stamp, "00.07", port=4710)
    assert b"<interfaceVersion>00.07</interfaceVersion>" in old
    assert b"<UnsolicitedPort>4710</UnsolicitedPort>" in old
    ready = parse_message(build_pos_ready(IDENT, 3, stamp))
    assert isinstance(ready, PosMessage)
    assert ready.message_type == "POS_Ready"
    for data, kind in (
        (build_logoff(IDENT, 4, stamp), "LogOff"),
        (build_pos_heartbeat(IDENT, 5, stamp), "POSHeartBeat"),
        (build_get_available_fuel_sale_trxs(IDENT, 6, stamp), "GetAvailableFuelSaleTrxs"),
        (build_get_fuel_sale_trx_details(IDENT, 7, stamp, 3, "0042"), "GetFuelSaleTrxDetails"),
    ):
        request = parse_message(data)
        assert isinstance(request, ServiceRequest)
        assert request.request_type == kind
    available = parse_message(build_get_available_fuel_sale_trxs(IDENT, 6, stamp))
    assert isinstance(available, ServiceRequest)
    assert available.devices[0].attrs == {"Type": "FP", "DeviceID": "*"}
    details = parse_message(build_get_fuel_sale_trx_details(IDENT, 7, stamp, 3, "0042"))
    assert isinstance(details, ServiceRequest)
    assert details.devices[0].value("TransactionSeqNo") == "0042"


def test_builders_escape_what_they_are_given() -> None:
    odd = PosIdentity('a<&"b', "é")
    request = parse_message(build_logon(odd, 1, "2026-11-23T10:00:00"))
    assert isinstance(request, ServiceRequest)
    assert (request.application_sender, request.workstation_id) == ('a<&"b', "é")


def test_unsolicited_and_catch_up_give_the_same_key() -> None:
    pushed = only_sale(build_fuel_sale_trx(SALE, 1, "2026-11-23T10:15:31"))
    fetched = only_sale(
        build_service_response(
            "GetFuelSaleTrxDetails", "9", fdc_timestamp="2026-11-23T11:00:00", sales=[SALE]
        )
    )
    assert pushed == fetched
    assert sale_key("fdc", pushed) == "ifsf:fdc:3:9999:2026-11-23T10:15:30"
    wrapped = only_sale(
        build_fuel_sale_trx(
            SaleRecord(**{**SALE.__dict__, "end_timestamp": "2026-11-24T08:00:00"}), 2, "x"
        )
    )
    assert sale_key("fdc", wrapped) != sale_key("fdc", pushed)


def test_to_fuel_sale_exact() -> None:
    trx = only_sale(build_fuel_sale_trx(SALE, 1, "2026-11-23T10:15:31"))
    sale = to_fuel_sale(
        trx,
        name="fdc",
        products={2: "95"},
        zone=SHANGHAI,
        fallback_end=datetime(2000, 1, 1, tzinfo=SHANGHAI),
        via="unsolicited",
    )
    assert (sale.source, sale.fuelling_point, sale.nozzle, sale.grade) == ("ifsf", 3, 2, "95")
    assert (sale.volume, sale.amount, sale.unit_price) == (
        Decimal("31.17"),
        Decimal("249.98"),
        Decimal("8.02"),
    )
    assert str(sale.amount) == "249.98"
    assert sale.ended_at == datetime(2026, 11, 23, 10, 15, 30, tzinfo=SHANGHAI)
    assert sale.ended_at.utcoffset() == timedelta(hours=8)
    assert sale.started_at == datetime(2026, 11, 23, 10, 13, 2, tzinfo=SHANGHAI)
    assert sale.details["product_name"] == "95#汽油"
    unmapped = to_fuel_sale(
        trx, name="fdc", products={}, zone=SHANGHAI, fallback_end=sale.ended_at, via="x"
    )
    assert unmapped.grade is None
    assert "grade_unmapped" in unmapped.details


def test_product1no_spelling() -> None:
    data = build_fuel_sale_trx(SALE, 1, "x", product_tag="Product1No")
    assert only_sale(data).product_no == "2"


@pytest.mark.parametrize(
    ("state", "counts"),
    [
        ("Payable", True),
        ("Locked", True),
        ("Cleared", True),
        ("PAYABLE", True),
        ("Undefined", False),
        ("Fuelling", False),
        (None, False),
    ],
)
def test_which_states_count(state: str | None, counts: bool) -> None:
    trx = FuelSaleTrx(3, "1", state=state, amount=Decimal(1), volume=Decimal(1))
    assert (trx.incomplete_reason() is None) is counts


def test_empty_or_partial_sales_do_not_count() -> None:
    assert FuelSaleTrx(
        3, "1", state="Payable", amount=Decimal(0), volume=Decimal(0)
    ).incomplete_reason()
    assert FuelSaleTrx(3, "1", state="Payable", amount=Decimal(5)).incomplete_reason()
    with pytest.raises(ValueError, match="not a complete sale"):
        to_fuel_sale(
            FuelSaleTrx(3, "1", state="Undefined", amount=Decimal(1), volume=Decimal(1)),
            name="fdc",
            products={},
            zone=SHANGHAI,
            fallback_end=datetime(2000, 1, 1, tzinfo=SHANGHAI),
            via="x",
        )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23T10:15:30", datetime(2026, 11, 23, 10, 15, 30, tzinfo=SHANGHAI)),
        (" 2026-11-23T10:15:30 ", datetime(2026, 11, 23, 10, 15, 30, tzinfo=SHANGHAI)),
        ("2026-11-23 10:15:30", datetime(2026, 11, 23, 10, 15, 30, tzinfo=SHANGHAI)),
        ("2026-11-23T10:15:30.250", datetime(2026, 11, 23, 10, 15, 30, 250000, tzinfo=SHANGHAI)),
        ("2026-11-23T02:15:30Z", datetime(2026, 11, 23, 2, 15, 30, tzinfo=UTC)),
        ("2026-11-23T10:15:30+08:00", datetime(2026, 11, 23, 2, 15, 30, tzinfo=UTC)),
        ("2026-11-23T11:15:30+0900", datetime(2026, 11, 23, 2, 15, 30, tzinfo=UTC)),
        ("20261123101530", datetime(2026, 11, 23, 10, 15, 30, tzinfo=SHANGHAI)),
    ],
)
def test_timestamps(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text, SHANGHAI)
    assert parsed == expected
    assert parsed.tzinfo is not None


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-40T10:15:30", "2026-11-23", "10:15"])
def test_bad_timestamps(text: str) -> None:
    with pytest.raises(MalformedMessage):
        parse_timestamp(text, SHANGHAI)


def test_decimals_are_exact_and_strict() -> None:
    assert parse_decimal(" 38.521 ", "Volume") == Decimal("38.521")
    assert parse_decimal("", "Volume") is None
    for bad in ("1e3", "NaN", "-1", "1,5", "Infinity", "0x10", "1.2.3"):
        with pytest.raises(MalformedMessage):
            parse_decimal(bad, "Amount")


def test_available_transactions_listing_shapes() -> None:
    listing = parse_message(
        build_service_response(
            "GetAvailableFuelSaleTrxs", "1", fdc_timestamp="x", listed=[(1, "7"), (2, "8")]
        )
    )
    assert isinstance(listing, ServiceResponse)
    assert available_transactions(listing) == [(1, "7"), (2, "8")]
    nested = ServiceResponse(
        "GetAvailableFuelSaleTrxs",
        "1",
        "Success",
        devices=(
            Device(
                "FP",
                "*",
                devices=(
                    Device(
                        "FP", "4", fields=(("TransactionSeqNo", "11"), ("TransactionSeqNo", "12"))
                    ),
                ),
            ),
        ),
    )
    assert available_transactions(nested) == [(4, "11"), (4, "12")]


@pytest.mark.parametrize(
    "data",
    [
        BILLION_LAUGHS,
        EXTERNAL_ENTITY,
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "http://example.invalid/x">%p;]><r/>',
        b"<!doctype r><r/>",
        b"<?xml version='1.0'?>\n<! DOCTYPE r SYSTEM 'http://example.invalid/r.dtd'><r/>",
        BILLION_LAUGHS.decode().encode("utf-16"),
    ],
)
def test_hostile_xml_is_refused_quickly(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused before a single element or character of text is built: no entity expands."""
    built: list[str] = []

    class Spy(ET.TreeBuilder):
        def start(self, tag: str, attrs: dict[str, str]) -> ET.Element:
            built.append(tag)
            return super().start(tag, attrs)

        def data(self, data: str) -> None:
            built.append(data)
            super().data(data)

    monkeypatch.setattr(ET, "TreeBuilder", Spy)
    with pytest.raises(MalformedMessage):
        parse_message(data)
    assert built == []


def test_size_depth_and_count_caps() -> None:
    with pytest.raises(MalformedMessage, match="exceeds"):
        parse_message(b"<a>" + b"x" * 2000 + b"</a>", max_bytes=1000)
    with pytest.raises(MalformedMessage, match="deeper"):
        parse_xml(b"<a>" * 40 + b"</a>" * 40)
    with pytest.raises(MalformedMessage, match="more than"):
        parse_xml(b"<a>" + b"<b/>" * 30_000 + b"</a>")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"<",
        b"<Unknown/>",
        b"<ServiceResponse/>",
        b'<FDCMessage MessageType=""/>',
        b"\xff\xfe<a/>",
        b"<a>\xc3\x28</a>",
        b"<a></b>",
    ],
)
def test_malformed_is_a_typed_error(data: bytes) -> None:
    with pytest.raises(MalformedMessage):
        parse_message(data)


def test_declared_utf16_with_utf8_bytes_is_read_as_utf8() -> None:
    """C# StringWriter declares utf-16 while the bytes on the wire are UTF-8."""
    data = (
        '<?xml version="1.0" encoding="utf-16"?><FDCMessage MessageType="FDC_Ready">'
        "<FDCdata><FDCTimeStamp>时间</FDCTimeStamp></FDCdata></FDCMessage>"
    )
    message = parse_message(data.encode())
    assert isinstance(message, FdcMessage)
    assert message.is_heartbeat
    assert message.fdc_timestamp == "时间"


def test_fdc_heartbeat_root() -> None:
    message = parse_message(ET.tostring(ET.Element("FDCHeartBeat")))
    assert isinstance(message, FdcMessage)
    assert message.is_heartbeat


def test_bad_numbers_in_a_sale_are_malformed() -> None:
    data = build_fuel_sale_trx(SaleRecord(**{**SALE.__dict__, "amount": "12,50"}), 1, "x")
    with pytest.raises(MalformedMessage, match="Amount"):
        only_sale(data)
