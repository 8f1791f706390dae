"""The DART framer on literal frames from public captures, split and damaged every way."""

from __future__ import annotations

import pytest

from drivers.dart.crc import crc_bytes
from drivers.dart.framer import ControlCode, DartFramer, Frame, encode, is_repeat, next_tx
from drivers.errors import CrcError, FramingError, OversizedFrame, TruncatedFrame

# moduslightstech-lgtm/intelipump, tests/fixtures/dart/captured_frames.json (merged-bus capture
# of a Wayne pump): DC2 + DC3 + DC1 5 + DC101, whose CRC high byte is 0xFA and goes out escaped.
ESCAPED_CRC = bytes.fromhex(
    "50 3E 02 08 00 00 00 00 00 00 00 00 03 04 00 99 07 07 01 01 05"
    " 65 10 01 13 36 38 49 66 13 36 38 49 66 00 00 00 00 00 39 10 FA 03 FA"
)
# A public sniffer write-up of a Wayne 3490D site (ASIS PCC485 captures, "0xFA as data
# byte" section): DC2 whose amount ends in 0xFA... escaped inside the CRC.
ESCAPED_DATA = bytes.fromhex("52 3D 02 08 00 00 06 41 00 06 73 05 02 10 FA 03 FA")
# alejomonroy/Full-Colombia-Wayne, Protocolo_Wayne.h: a filling pump's block
# (DC1 4, DC3, DC2 4.28 L / 34.77, DC3 again).
FILLING = bytes.fromhex(
    "51 31 01 01 04 03 04 00 81 23 11 02 08 00 00 04 28 00 00 34 77 03 04 00 81 23 11 83 55 03 FA"
)
# the same source: CD1 authorize from the master
AUTHORIZE = bytes.fromhex("51 36 01 01 06 22 16 03 FA")
POLL = bytes.fromhex("50 20 FA")
EOT = bytes.fromhex("50 70 FA")
ACK = bytes.fromhex("51 CA FA")  # intelipump captured_frames.json: ACK with TX# A
NAK = bytes.fromhex("50 5C FA")  # same capture: NAK with TX# C
PUBLIC = [ESCAPED_CRC, ESCAPED_DATA, FILLING, AUTHORIZE, POLL, EOT, ACK, NAK]


def only_frame(data: bytes) -> Frame:
    out = DartFramer().feed(data)
    assert len(out) == 1, out
    assert isinstance(out[0], Frame), out
    return out[0]


def test_escaped_crc_byte_is_restored() -> None:
    frame = only_frame(ESCAPED_CRC)
    assert (frame.address, frame.control, frame.tx) == (0x50, ControlCode.DATA, 0xE)
    assert [trans for trans, _ in frame.transactions] == [0x02, 0x03, 0x01, 0x65]
    assert frame.transactions[3][1] == bytes.fromhex("01 1336384966 1336384966 0000000000")
    assert encode(frame) == ESCAPED_CRC  # re-encoding escapes the 0xFA again


def test_multi_transaction_block() -> None:
    frame = only_frame(FILLING)
    assert frame.transactions == (
        (0x01, b"\x04"),
        (0x03, bytes.fromhex("00812311")),
        (0x02, bytes.fromhex("0000042800003477")),
        (0x03, bytes.fromhex("00812311")),
    )


@pytest.mark.parametrize(
    ("wire", "control", "tx"),
    [
        (POLL, ControlCode.POLL, 0),
        (EOT, ControlCode.EOT, 0),
        (ACK, ControlCode.ACK, 0xA),
        (NAK, ControlCode.NAK, 0xC),
        (AUTHORIZE, ControlCode.DATA, 6),
    ],
)
def test_control_codes_and_tx_numbers(wire: bytes, control: ControlCode, tx: int) -> None:
    frame = only_frame(wire)
    assert (frame.control, frame.tx) == (control, tx)


@pytest.mark.parametrize("wire", PUBLIC)
def test_public_frames_round_trip(wire: bytes) -> None:
    assert encode(only_frame(wire)) == wire


def test_encode_escapes_every_fa_in_data() -> None:
    frame = Frame.data(0x5A, 3, ((0x02, bytes([0xFA, 0x10, 0xFA, 0x00])),))
    wire = encode(frame)
    assert wire.count(b"\xfa") == wire.count(b"\x10\xfa") + 1  # only the last one is bare
    assert only_frame(wire) == frame


def test_split_at_every_byte_boundary() -> None:
    stream = b"".join(PUBLIC)
    expected = [only_frame(wire) for wire in PUBLIC]
    for cut in range(len(stream) + 1):
        framer = DartFramer()
        assert framer.feed(stream[:cut]) + framer.feed(stream[cut:]) == expected


def test_one_byte_at_a_time() -> None:
    framer = DartFramer()
    out = [item for byte in b"".join(PUBLIC) for item in framer.feed(bytes([byte]))]
    assert out == [only_frame(wire) for wire in PUBLIC]


def test_garbage_then_good_frame() -> None:
    out = DartFramer().feed(bytes.fromhex("BC FE 00 13") + FILLING)
    assert isinstance(out[0], FramingError) and not isinstance(out[0], CrcError)
    assert out[1:] == [only_frame(FILLING)]


def test_bad_crc_then_good_frame() -> None:
    broken = bytearray(AUTHORIZE)
    broken[-4] ^= 0x01  # CRC low byte
    out = DartFramer().feed(bytes(broken) + FILLING)
    assert isinstance(out[0], CrcError)
    assert out[1:] == [only_frame(FILLING)]


def test_flipped_data_bit_is_a_crc_error() -> None:
    broken = bytearray(FILLING)
    broken[4] ^= 0x02
    out = DartFramer().feed(bytes(broken) + POLL)
    assert [type(item) for item in out] == [CrcError, Frame]


@pytest.mark.parametrize("cut", [1, 2, 5, 17, len(FILLING) - 2])
@pytest.mark.parametrize("good", [POLL, AUTHORIZE, ESCAPED_CRC])
def test_truncated_frame_then_good_frame(cut: int, good: bytes) -> None:
    out = DartFramer().feed(FILLING[:cut] + good)
    assert isinstance(out[0], TruncatedFrame)
    assert out[1:] == [only_frame(good)]


def test_oversized_noise_then_good_frame() -> None:
    noise = bytes([0x50, 0x31]) + bytes(range(0x00, 0x40)) * 10  # no 0xFA: never ends
    out = DartFramer(max_frame_bytes=256).feed(noise + AUTHORIZE + POLL)
    assert isinstance(out[0], OversizedFrame)
    assert sum(isinstance(item, OversizedFrame) for item in out) == 1
    assert [item for item in out if isinstance(item, Frame)] == [
        only_frame(AUTHORIZE),
        only_frame(POLL),
    ]


def test_stray_end_bytes_and_bad_short_frames() -> None:
    out = DartFramer().feed(bytes.fromhex("FA FA 50 FA 50 33 FA 10 FA") + EOT)
    assert all(isinstance(item, FramingError) for item in out[:-1])
    assert out[-1] == only_frame(EOT)


def test_transactions_that_do_not_add_up() -> None:
    frame = Frame.data(0x50, 1, ((0x01, b"\x05"),))
    wire = bytearray(encode(frame))
    wire[3] = 5  # LNG claims five bytes; recompute the CRC so only the layout is wrong
    wire[5:7] = crc_bytes(bytes(wire[:5]))
    out = DartFramer().feed(bytes(wire) + POLL)
    assert isinstance(out[0], FramingError) and "add up" in str(out[0])
    assert out[1] == only_frame(POLL)


def test_tx_numbers() -> None:
    assert next_tx(None) == 0
    assert [next_tx(n) for n in (0, 1, 14, 15)] == [1, 2, 15, 1]
    assert is_repeat(5, 5) and not is_repeat(0, 0) and not is_repeat(6, 5)
    assert not is_repeat(3, None)


def test_frame_refuses_impossible_values() -> None:
    with pytest.raises(ValueError, match="address"):
        Frame.poll(0x10)
    with pytest.raises(ValueError, match="TX#"):
        Frame.ack(0x50, 16)
    with pytest.raises(ValueError, match="carry no"):
        Frame(0x50, ControlCode.POLL, 0, ((1, b"\x00"),))
