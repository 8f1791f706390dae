"""Receipts: the ESC/POS bytes of a fixed receipt against the golden file, the layout's
widths, receipts made from a real store, and printing to a fake network printer and a
serial line (a pseudo-terminal)."""

from __future__ import annotations

import os
import re
import socket
import uuid
from decimal import Decimal

import pytest
from pydantic import ValidationError

from edge_agent.errors import ServiceError
from edge_agent.receipts.escpos import COLUMNS, encode_receipt, encode_rows, text_width, wrap
from edge_agent.receipts.layout import Row
from edge_agent.receipts.printer import SerialPrinter, TcpPrinter, open_printer
from edge_agent.services.members import register_member
from edge_agent.services.points import redeem_points
from edge_agent.services.receipts import make_receipt, print_receipt
from edge_agent.services.sales import SaleInput, attach_member, record_sale
from edge_agent.services.station import Station
from edge_agent.services.till import sale_no
from edge_agent.settings import PrinterSettings
from tests.fake_printer import FakeTcpPrinter
from tests.fixtures.receipts import FIXED_RECEIPT, GOLDEN
from tests.support import FakeClock


def test_the_fixed_receipt_encodes_to_the_golden_bytes() -> None:
    job = encode_receipt(FIXED_RECEIPT)
    assert job == GOLDEN.read_bytes()
    assert job.startswith(b"\x1b@\x1c&")  # initialise, Chinese mode
    assert job.endswith(b"\x1bd\x04\x1dV\x01")  # feed four lines, partial cut
    text = job.decode("gb18030")
    for needed in ("中石化示范加油站", "92#汽油", "￥292.00", "周二会员日 ×2 = 120", "1520"):
        assert needed in text


def test_every_printed_line_fits_the_roll() -> None:
    job = encode_receipt(FIXED_RECEIPT)
    commands = re.compile(rb"\x1b@|\x1c&|\x1b[aEd].|\x1d[!V].", re.DOTALL)
    lines = commands.sub(b"", job).decode("gb18030").split("\n")
    assert lines[0] == "中石化示范加油站" and text_width(lines[0]) <= COLUMNS // 2  # title
    assert all(text_width(line) <= COLUMNS for line in lines)
    assert sum(text_width(line) == COLUMNS for line in lines) >= 15  # pairs fill the roll


def test_widths_count_double_byte_characters_twice() -> None:
    assert text_width("92#汽油") == 7
    assert text_width("￥7.50/升") == 9
    assert text_width("×") == 2  # GB18030 double byte: printed full width
    assert wrap("会员" * 30, 48) == ["会员" * 12, "会员" * 12, "会员" * 6]
    assert wrap("a会", 2) == ["a", "会"]  # never splits a character


def test_a_value_too_long_for_its_label_moves_to_the_next_line_right_aligned() -> None:
    job = encode_rows([Row("pair", "油品", "超" * 24)])
    lines = job.decode("gb18030").split("\n")
    assert lines[0].endswith("油品") and lines[1] == "超" * 24


def test_control_characters_never_reach_the_printer() -> None:
    job = encode_rows([Row("pair", "站\x1bd\x09", "ok\n")])
    body = job[len(b"\x1b@\x1c&") : -len(b"\x1bd\x04\x1dV\x01")]
    assert b"\x1b" not in body and body.count(b"\n") == 1


# ------------------------------------------------------------------ from the store


def _dart_sale(station: Station, litres: str, member: str | None = None) -> str:
    volume = Decimal(litres)
    return record_sale(
        station,
        SaleInput(
            source="dart",
            source_key=f"dart1:80:3:{uuid.uuid4()}",
            pump=3,
            nozzle=1,
            grade="92",
            litres=volume,
            amount=(volume * Decimal("7.50")).quantize(Decimal("0.01")),
            ended_at=station.now(),
            unit_price=Decimal("7.50"),
            member_id=member,
        ),
    ).sale.sale_id


@pytest.fixture
def gold(station: Station, clock: FakeClock) -> str:
    """A gold member (1,000 L in 90 days), on a Tuesday (the member day: double points)."""
    member = register_member(
        station, phone="13800138000", plates=["京A12345"], consent_channel="test", actor="c"
    ).member_id
    for _ in range(5):
        _dart_sale(station, "200.00", member)
    clock.advance(days=1)
    return member


def test_an_attach_receipt_shows_the_fill_the_discount_and_the_points_steps(
    station: Station, gold: str
) -> None:
    sale = _dart_sale(station, "40.00")
    attach_member(station, sale, gold, actor="cashier1")
    receipt = make_receipt(station, "sale", sale)
    assert receipt.fuel is not None
    assert (receipt.fuel.amount_fen, receipt.fuel.discount_fen, receipt.fuel.collect_fen) == (
        30000,
        800,
        29200,
    )
    assert receipt.fuel.grade == "92#汽油" and receipt.fuel.pump == 3
    assert receipt.points_earned == 120
    assert receipt.steps == FIXED_RECEIPT.steps
    assert (receipt.tier_name, receipt.number) == ("金卡", sale_no(sale))
    assert receipt.balance == 1000 + 120
    assert receipt.phone_masked == "138****8000" and receipt.header == "S001"
    shown = receipt.to_dict()
    assert shown["fuel"]["collect"] == "292.00" and shown["fuel"]["discount"] == "8.00"


def test_redemption_and_sign_up_receipts(station: Station, gold: str) -> None:
    redemption = redeem_points(station, gold, 500, actor="cashier1", redemption_id="R-0001-ABCDEF")
    receipt = make_receipt(station, "redemption", redemption.redemption_id)
    assert (receipt.redeemed_points, receipt.redeemed_fen, receipt.balance) == (500, 500, 500)
    assert receipt.kind == "redemption" and receipt.number == "ABCDEF"
    signup = make_receipt(station, "member", gold)
    assert (signup.kind, signup.points_earned, signup.fuel) == ("signup", None, None)
    assert b"\xbb\xe1\xd4\xb1\xd7\xa2\xb2\xe1" in encode_receipt(signup)  # 会员注册 in GB18030


@pytest.mark.parametrize(
    ("kind", "ref", "code"),
    [
        ("coupon", "x", "receipt.kind"),
        ("sale", "no-such-sale", "sale.not_found"),
        ("redemption", "no-such-redemption", "redemption.not_found"),
        ("member", "no-such-member", "member.not_found"),
    ],
)
def test_unknown_receipts_are_refused(station: Station, kind: str, ref: str, code: str) -> None:
    with pytest.raises(ServiceError) as refused:
        make_receipt(station, kind, ref)
    assert refused.value.code == code


def test_a_sale_without_a_member_has_no_member_receipt(station: Station) -> None:
    with pytest.raises(ServiceError) as refused:
        make_receipt(station, "sale", _dart_sale(station, "10.00"))
    assert refused.value.code == "receipt.no_member"


# ------------------------------------------------------------------ printing


def test_a_receipt_prints_to_a_network_printer_byte_for_byte(station: Station, gold: str) -> None:
    sale = _dart_sale(station, "40.00")
    attach_member(station, sale, gold, actor="cashier1")
    with FakeTcpPrinter() as fake:
        printer = open_printer(PrinterSettings(kind="tcp", host="127.0.0.1", port=fake.port))
        receipt, sent = print_receipt(station, printer, "sale", sale)
        print_receipt(station, printer, "member", gold)
        jobs = fake.wait_for(2)
    assert jobs[0] == encode_receipt(receipt) and len(jobs[0]) == sent
    assert len(jobs) == 2 and "会员注册凭条" in jobs[1].decode("gb18030")


def test_a_printer_that_cannot_be_reached_is_refused_in_time(station: Station, gold: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = int(closed.getsockname()[1])
    with pytest.raises(ServiceError) as refused:
        print_receipt(station, TcpPrinter("127.0.0.1", port, 1.0), "member", gold)
    assert refused.value.code == "printer.unreachable"
    with pytest.raises(ServiceError) as none:
        print_receipt(station, None, "member", gold)
    assert none.value.code == "printer.none"


def test_a_receipt_prints_on_a_serial_line(station: Station, gold: str) -> None:
    master, slave = os.openpty()
    try:
        printer = SerialPrinter(os.ttyname(slave), 19200, timeout_s=2)
        receipt, sent = print_receipt(station, printer, "member", gold)
        received = b""
        while len(received) < sent:
            received += os.read(master, 4096)
        assert received == encode_receipt(receipt)
    finally:
        os.close(master)
        os.close(slave)


def test_printer_settings_name_where_the_printer_is() -> None:
    assert open_printer(PrinterSettings()) is None
    for bad in (
        {"kind": "tcp"},
        {"kind": "serial"},
        {"kind": "usb"},
        {"kind": "tcp", "host": "h", "port": 0},
    ):
        with pytest.raises(ValidationError):
            PrinterSettings.model_validate(bad)
    serial_printer = open_printer(PrinterSettings(kind="serial", device="/dev/ttyUSB1"))
    assert isinstance(serial_printer, SerialPrinter) and serial_printer.baudrate == 9600
