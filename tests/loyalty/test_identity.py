"""Tests for member identity: phone and plate normalization, masking, search-box parsing."""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable

import phonenumbers
import pytest
from hypothesis import given, reject
from hypothesis import strategies as st

from cloud_sync.core.identity import (
    Identifier,
    IdentityError,
    mask_phone,
    mask_plate,
    normalize_phone,
    normalize_plate,
    parse_identifier,
)


def fullwidth(text: str) -> str:
    """ASCII -> full-width forms, as a Chinese IME in full-width mode produces them."""
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


# --------------------------------------------------------------------------- phones

# Real-looking mainland mobile numbers, one or more per allocated prefix. Each was checked
# with phonenumbers 9.0.43 (valid, region CN, type MOBILE) before being kept, and
# test_valid_phone_samples_agree_with_phonenumbers re-checks them against the installed
# metadata. Dropped because the library marks the whole prefix invalid: 146, 148, 149, 194.
# 174 is only valid in the 1740 0-5 block (satellite), so its sample lives there.
VALID_PHONES = [
    # China Mobile / Unicom / Telecom 13x
    "13012345678",
    "13123456789",
    "13287654321",
    "13311112222",
    "13423456781",
    "13598765432",
    "13612340000",
    "13755556666",
    "13800138000",
    "13901234567",
    # data-card / IoT-era 14x
    "14512345678",
    "14798765432",
    # 15x (154 is unallocated)
    "15012345678",
    "15123456789",
    "15234567890",
    "15345678901",
    "15567890123",
    "15678901234",
    "15789012345",
    "15890123456",
    "15901234567",
    # 16x
    "16212345678",
    "16512345678",
    "16698765432",
    "16723456789",
    # 17x (virtual operators and 4G)
    "17012345678",
    "17123456789",
    "17234567890",
    "17345678901",
    "17400123456",
    "17556789012",
    "17667890123",
    "17778901234",
    "17889012345",
    # 18x
    "18012345678",
    "18123456789",
    "18234567890",
    "18345678901",
    "18456789012",
    "18567890123",
    "18678901234",
    "18789012345",
    "18890123456",
    "18901234567",
    # 19x (194 is unallocated)
    "19012345678",
    "19123456789",
    "19234567890",
    "19345678901",
    "19567890123",
    "19678901234",
    "19789012345",
    "19890123456",
    "19901234567",
]

PHONE_VARIANTS: dict[str, Callable[[str], str]] = {
    "bare": lambda n: n,
    "plus86": lambda n: f"+86{n}",
    "plus86_spaced": lambda n: f"+86 {n[:3]} {n[3:7]} {n[7:]}",
    "0086": lambda n: f"0086{n}",
    "0086_dashed": lambda n: f"0086-{n[:3]}-{n[3:7]}-{n[7:]}",
    "86": lambda n: f"86{n}",
    "86_spaced": lambda n: f"86 {n}",
    "spaced_344": lambda n: f"{n[:3]} {n[3:7]} {n[7:]}",
    "dashed_344": lambda n: f"{n[:3]}-{n[3:7]}-{n[7:]}",
    "fullwidth": fullwidth,
    "fullwidth_plus86": lambda n: fullwidth(f"+86{n}"),
    "ideographic_space": lambda n: f"{n[:3]}\u3000{n[3:7]}\u3000{n[7:]}",
    "surrounding_ws": lambda n: f"  \t{n}\n ",
}


@pytest.mark.parametrize("number", VALID_PHONES)
def test_valid_phone_samples_agree_with_phonenumbers(number: str) -> None:
    parsed = phonenumbers.parse(number, "CN")
    assert phonenumbers.is_valid_number(parsed)
    assert phonenumbers.region_code_for_number(parsed) == "CN"
    assert phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.MOBILE


def test_enough_valid_phone_samples() -> None:
    assert len(VALID_PHONES) >= 40
    assert len(set(VALID_PHONES)) == len(VALID_PHONES)


@pytest.mark.parametrize("variant", PHONE_VARIANTS)
@pytest.mark.parametrize("number", VALID_PHONES)
def test_normalize_phone_valid(number: str, variant: str) -> None:
    raw = PHONE_VARIANTS[variant](number)
    assert normalize_phone(raw) == f"+86{number}"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13800138000", "+8613800138000"),
        ("+86 138 0013 8000", "+8613800138000"),
        ("+86-138-0013-8000", "+8613800138000"),
        ("+ 86 13800138000", "+8613800138000"),
        ("0086 138 0013 8000", "+8613800138000"),
        ("86 138-0013-8000", "+8613800138000"),
        ("１３８００１３８０００", "+8613800138000"),
        ("＋８６ １３８ ００１３ ８０００", "+8613800138000"),
        ("１３８－００１３－８０００", "+8613800138000"),
        ("+8613800138000", "+8613800138000"),
    ],
)
def test_normalize_phone_examples(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


INVALID_PHONES = [
    # letters are refused before phonenumbers can map them to keypad digits
    ("138OO138000", "phone.letters"),
    ("1380013800O", "phone.letters"),
    ("138oo138000", "phone.letters"),
    ("abc", "phone.letters"),
    ("tel:13800138000", "phone.letters"),
    ("手机13800138000", "phone.letters"),
    ("１３８ＯＯ１３８０００", "phone.letters"),
    # empty
    ("", "phone.empty"),
    ("   ", "phone.empty"),
    ("\u3000", "phone.empty"),
    ("- -", "phone.empty"),
    ("+", "phone.empty"),
    # wrong number of national digits
    ("1380013800", "phone.length"),
    ("138001380000", "phone.length"),
    ("138", "phone.length"),
    ("+86 1380013800", "phone.length"),
    ("0086 138001380001", "phone.length"),
    ("86138001380000", "phone.length"),
    ("4008123123", "phone.length"),
    ("075512345678", "phone.length"),
    # eleven digits but not a mainland mobile
    ("01012345678", "phone.invalid"),
    ("02088886666", "phone.invalid"),
    ("12012345678", "phone.invalid"),
    ("11012345678", "phone.invalid"),
    ("10086100860", "phone.invalid"),
    ("14012345678", "phone.invalid"),
    ("15412345678", "phone.invalid"),
    ("19412345678", "phone.invalid"),
    ("14612345678", "phone.invalid"),
    ("17412345678", "phone.invalid"),
    # other countries
    ("+1 2025550123", "phone.country"),
    ("+12025550123", "phone.country"),
    ("+852 9123 4567", "phone.country"),
    ("+44 7911 123456", "phone.country"),
    ("001 202 555 0123", "phone.country"),
    ("+8", "phone.country"),
    # punctuation other than spaces and dashes
    ("138.0013.8000", "phone.characters"),
    ("(138)00138000", "phone.characters"),
    ("138/0013/8000", "phone.characters"),
    ("138_0013_8000", "phone.characters"),
    ("13800138000#", "phone.characters"),
    ("+86+13800138000", "phone.characters"),
    ("138\t0013\t8000", "phone.characters"),
    ("138,0013,8000", "phone.characters"),
    ("\u0661\u0663\u0668\u0660\u0660\u0661\u0663\u0668\u0660\u0660\u0660", "phone.characters"),
]


@pytest.mark.parametrize(("raw", "code"), INVALID_PHONES)
def test_normalize_phone_invalid(raw: str, code: str) -> None:
    with pytest.raises(IdentityError) as info:
        normalize_phone(raw)
    assert info.value.code == code


def test_enough_invalid_phone_samples() -> None:
    assert len(INVALID_PHONES) >= 25


def test_phone_error_message_is_a_sentence_without_the_input() -> None:
    with pytest.raises(IdentityError) as info:
        normalize_phone("12012345678")
    message = str(info.value)
    assert message == "Not a mainland mobile number: 11 digits starting with 1 expected."
    assert "12012345678" not in message


# --------------------------------------------------------------------------- plates

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"

# (raw, canonical). Together these use every province and every accepted form.
VALID_PLATES = [
    # ordinary 7-character
    ("京A12345", "京A12345"),
    ("京AF0236", "京AF0236"),
    ("津C8K2M9", "津C8K2M9"),
    ("沪B2Y8X7", "沪B2Y8X7"),
    ("渝A5U6V7", "渝A5U6V7"),
    ("冀F00001", "冀F00001"),
    ("豫A88888", "豫A88888"),
    ("云A2B3C4", "云A2B3C4"),
    ("辽B12345", "辽B12345"),
    ("黑AZ9999", "黑AZ9999"),
    ("湘AHJ123", "湘AHJ123"),  # two letters: the most an ordinary serial holds (GA 36-2018)
    ("皖A12C3D", "皖A12C3D"),
    ("鲁B6N3P2", "鲁B6N3P2"),
    ("新A12345", "新A12345"),
    ("苏E9X8W7", "苏E9X8W7"),
    ("浙A0Q1R2", "浙A0Q1R2"),
    # new-energy small car: D/F, one serial character, 4 digits
    ("粤BD12345", "粤BD12345"),
    ("粤BDA1234", "粤BDA1234"),
    ("沪AF12345", "沪AF12345"),
    ("赣ADK0123", "赣ADK0123"),
    ("鄂AF88888", "鄂AF88888"),
    ("桂BDZ0001", "桂BDZ0001"),
    # new-energy large vehicle: 5 digits then D/F
    ("粤B12345D", "粤B12345D"),
    ("甘A54321F", "甘A54321F"),
    ("晋A00001D", "晋A00001D"),
    # suffix plates
    ("京A1234学", "京A1234学"),
    ("粤Z1234港", "粤Z1234港"),
    ("粤Z5678澳", "粤Z5678澳"),
    ("沪A0001领", "沪A0001领"),
    ("京A1234警", "京A1234警"),
    ("鲁B1234挂", "鲁B1234挂"),
    ("蒙A2345挂", "蒙A2345挂"),
    ("陕A7X9Y学", "陕A7X9Y学"),
    ("吉A0123警", "吉A0123警"),
    # embassy: no province
    ("使014578", "使014578"),
    ("使 014-578", "使014578"),
    # normalization variants
    ("京a·12345", "京A12345"),
    ("京Ａ１２３４５", "京A12345"),
    (" 京 A 12345 ", "京A12345"),
    ("闽D・12345", "闽D12345"),
    ("贵A•12345", "贵A12345"),
    ("青A‧12345", "青A12345"),
    ("藏A･12345", "藏A12345"),
    ("川A.12345", "川A12345"),
    ("宁A-12345", "宁A12345"),
    ("琼B\u300012345", "琼B12345"),
    ("粤b·d12345", "粤BD12345"),
    ("粤Ｂ１２３４５Ｄ", "粤B12345D"),
    ("京ａ·１２３４学", "京A1234学"),
    ("\t浙 a-f 0236\n", "浙AF0236"),
    ("渝a 12345", "渝A12345"),
]


def test_valid_plates_cover_every_province() -> None:
    used = {canonical[0] for _, canonical in VALID_PLATES}
    assert set(PROVINCES) <= used
    assert len(PROVINCES) == 31
    assert len(VALID_PLATES) >= 30


@pytest.mark.parametrize(("raw", "expected"), VALID_PLATES)
def test_normalize_plate_valid(raw: str, expected: str) -> None:
    assert normalize_plate(raw) == expected


@pytest.mark.parametrize("province", PROVINCES)
def test_every_province_accepts_every_form(province: str) -> None:
    for serial in ("A12345", "AD12345", "A12345F", "A1234学"):
        assert normalize_plate(province + serial) == province + serial


INVALID_PLATES = [
    # empty
    ("", "plate.empty"),
    ("   ", "plate.empty"),
    ("·-.", "plate.empty"),
    # province
    ("XA12345", "plate.province"),
    ("A12345", "plate.province"),
    ("港A12345", "plate.province"),
    ("台A12345", "plate.province"),
    ("12345", "plate.province"),
    ("北A12345", "plate.province"),
    # authority letter
    ("京112345", "plate.letter"),
    ("京京12345", "plate.letter"),
    ("粤·12345D", "plate.letter"),
    # I and O never appear in the serial
    ("京A1234O", "plate.io"),
    ("京AI2345", "plate.io"),
    ("京ao1234", "plate.io"),
    ("粤BDO1234", "plate.io"),
    ("粤BD1I234", "plate.io"),
    ("京A12I4学", "plate.io"),
    ("京AＯ1234", "plate.io"),
    # too short / too long
    ("京", "plate.format"),
    ("京A", "plate.format"),
    ("京A1234", "plate.format"),
    ("京A123456", "plate.format"),
    ("京A1234567", "plate.format"),
    ("粤BDA12345", "plate.format"),
    # bad new-energy patterns
    ("粤BD1234A", "plate.format"),
    ("粤BA12345", "plate.format"),
    ("粤BE12345", "plate.format"),
    ("粤B1234AD", "plate.format"),
    ("粤B12345E", "plate.format"),
    ("粤BDAB123", "plate.format"),
    ("粤BFDD123", "plate.format"),
    # an ordinary serial holds at most two letters (GA 36-2018)
    ("湘AHJKLM", "plate.format"),
    ("皖ABCDEF", "plate.format"),
    ("京AAB1C2", "plate.format"),
    ("京AB1C2D", "plate.format"),
    ("京A12XYZ", "plate.format"),
    # 港 and 澳 exist only on 粤Z plates
    ("京A1234港", "plate.format"),
    ("粤B1234港", "plate.format"),
    ("粤A5678澳", "plate.format"),
    ("沪Z1234澳", "plate.format"),
    # bad suffix plates
    ("京A12345学", "plate.format"),
    ("京A123学", "plate.format"),
    ("京A1234甲", "plate.format"),
    ("京A学1234", "plate.format"),
    # other junk
    ("京A12#45", "plate.format"),
    ("京A12_45", "plate.format"),
    # embassy
    ("使01457", "plate.format"),
    ("使0145789", "plate.format"),
    ("使A14578", "plate.format"),
]


@pytest.mark.parametrize(("raw", "code"), INVALID_PLATES)
def test_normalize_plate_invalid(raw: str, code: str) -> None:
    with pytest.raises(IdentityError) as info:
        normalize_plate(raw)
    assert info.value.code == code


def test_enough_invalid_plate_samples() -> None:
    assert len(INVALID_PLATES) >= 25


def test_plate_io_message_explains_why() -> None:
    with pytest.raises(IdentityError) as info:
        normalize_plate("京A1234O")
    assert "1 and 0" in str(info.value)


# --------------------------------------------------------------------------- masking


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+8613800138000", "138****8000"),
        ("+8619901234567", "199****4567"),
        ("+8614512345678", "145****5678"),
        ("13800138000", "138****8000"),
        ("+86 138-0013-8000", "138****8000"),
        ("１３８００１３８０００", "138****8000"),
    ],
)
def test_mask_phone(value: str, expected: str) -> None:
    assert mask_phone(value) == expected


@pytest.mark.parametrize("value", ["", "12012345678", "+12025550123", "138OO138000"])
def test_mask_phone_rejects_non_mobiles(value: str) -> None:
    with pytest.raises(IdentityError):
        mask_phone(value)


@pytest.mark.parametrize(
    ("plate", "expected"),
    [
        ("京A12345", "京A***45"),
        ("粤BD12345", "粤B****45"),
        ("粤B12345D", "粤B****5D"),
        ("京A1234学", "京A***4学"),
        ("京a·12345", "京A***45"),
        ("使014578", "使0***78"),
    ],
)
def test_mask_plate(plate: str, expected: str) -> None:
    assert mask_plate(plate) == expected


def test_mask_plate_rejects_invalid_plate() -> None:
    with pytest.raises(IdentityError) as info:
        mask_plate("京A1234O")
    assert info.value.code == "plate.io"


# --------------------------------------------------------------------------- search box


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("13800138000", Identifier("phone", "+8613800138000")),
        (" 138 0013 8000 ", Identifier("phone", "+8613800138000")),
        ("138-0013-8000", Identifier("phone", "+8613800138000")),
        ("+8613800138000", Identifier("phone", "+8613800138000")),
        ("0086 13800138000", Identifier("phone", "+8613800138000")),
        ("8613800138000", Identifier("phone", "+8613800138000")),
        ("１３８００１３８０００", Identifier("phone", "+8613800138000")),
        ("＋８６１３８００１３８０００", Identifier("phone", "+8613800138000")),
        ("京A12345", Identifier("plate", "京A12345")),
        ("京a·12345", Identifier("plate", "京A12345")),
        ("粤BD12345", Identifier("plate", "粤BD12345")),
        ("粤B12345D", Identifier("plate", "粤B12345D")),
        ("京A1234学", Identifier("plate", "京A1234学")),
        ("使014578", Identifier("plate", "使014578")),
        ("京Ａ１２３４５", Identifier("plate", "京A12345")),
    ],
)
def test_parse_identifier(query: str, expected: Identifier) -> None:
    assert parse_identifier(query) == expected


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", "identifier.empty"),
        ("   ", "identifier.empty"),
        ("\u3000", "identifier.empty"),
        ("- -", "identifier.empty"),
        ("+", "identifier.unrecognised"),
        ("#", "identifier.unrecognised"),
        ("???", "identifier.unrecognised"),
        ("@138", "identifier.unrecognised"),
        ("138.0013.8000", "identifier.unrecognised"),
        # digits route to the phone rules
        ("1380013800", "phone.length"),
        ("02088886666", "phone.invalid"),
        ("+1 2025550123", "phone.country"),
        # letters or CJK route to the plate rules, even when the cashier meant a phone
        ("138OO138000", "plate.province"),
        ("京A1234O", "plate.io"),
        ("京A123", "plate.format"),
        ("XA12345", "plate.province"),
    ],
)
def test_parse_identifier_errors(query: str, code: str) -> None:
    with pytest.raises(IdentityError) as info:
        parse_identifier(query)
    assert info.value.code == code


def test_identifier_is_frozen() -> None:
    ident = parse_identifier("京A12345")
    with pytest.raises(AttributeError):
        ident.value = "京B12345"  # type: ignore[misc]


# --------------------------------------------------------------------------- error type


def test_identity_error_is_value_error_with_code() -> None:
    err = IdentityError("plate.empty", "Licence plate is empty.")
    assert isinstance(err, ValueError)
    assert err.code == "plate.empty"
    assert str(err) == "Licence plate is empty."


def test_identity_error_pickles() -> None:
    err = IdentityError("phone.length", "Wrong length.")
    clone = pickle.loads(pickle.dumps(err))
    assert isinstance(clone, IdentityError)
    assert (clone.code, str(clone)) == ("phone.length", "Wrong length.")


# --------------------------------------------------------------------------- properties

KNOWN_CODES = {
    "phone.empty",
    "phone.letters",
    "phone.characters",
    "phone.length",
    "phone.country",
    "phone.invalid",
    "plate.empty",
    "plate.province",
    "plate.letter",
    "plate.io",
    "plate.format",
    "identifier.empty",
    "identifier.unrecognised",
}
_SERIAL_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
_serial_char = st.sampled_from(_SERIAL_ALPHABET)
_digit = st.sampled_from("0123456789")


def _chars(alphabet: st.SearchStrategy[str], n: int) -> st.SearchStrategy[str]:
    return st.lists(alphabet, min_size=n, max_size=n).map("".join)


_SERIAL_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_serial_letter = st.sampled_from(_SERIAL_LETTERS)
_authority_letter = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


@st.composite
def ordinary_serials(draw: st.DrawFn, letters: int) -> str:
    """Five characters of the serial alphabet with exactly `letters` letters, anywhere."""
    at = set(draw(st.permutations(range(5)))[:letters])
    return "".join(draw(_serial_letter) if i in at else draw(_digit) for i in range(5))


_serials = st.one_of(
    st.integers(0, 2).flatmap(ordinary_serials),
    st.tuples(st.sampled_from("DF"), _serial_char, _chars(_digit, 4)).map("".join),
    st.tuples(_chars(_digit, 5), st.sampled_from("DF")).map("".join),
    st.tuples(_chars(_serial_char, 4), st.sampled_from("学警挂领")).map("".join),
)
canonical_plates = st.one_of(
    st.tuples(st.sampled_from(PROVINCES), _authority_letter, _serials).map("".join),
    st.tuples(_chars(_serial_char, 4), st.sampled_from("港澳")).map(lambda t: "粤Z" + "".join(t)),
    _chars(_digit, 6).map(lambda s: "使" + s),
)


@st.composite
def decorated(draw: st.DrawFn, canonical: str) -> str:
    """Re-type a canonical plate the way a cashier might: case, width, separators."""
    out = []
    for ch in canonical:
        typed = ch.lower() if draw(st.booleans()) else ch
        if draw(st.booleans()):
            typed = fullwidth(typed)
        out.append(typed)
        out.append(draw(st.sampled_from(["", "", " ", "·", "・", "-", ".", "\u3000"])))
    return draw(st.sampled_from(["", " ", "\t"])) + "".join(out)


@given(canonical_plates.flatmap(lambda c: st.tuples(st.just(c), decorated(c))))
def test_plate_decorations_normalize_to_canonical(pair: tuple[str, str]) -> None:
    canonical, raw = pair
    assert normalize_plate(raw) == canonical
    assert normalize_plate(canonical) == canonical


@given(st.text(max_size=12))
def test_normalize_plate_is_idempotent_on_its_output(raw: str) -> None:
    try:
        plate = normalize_plate(raw)
    except IdentityError:
        return
    assert normalize_plate(plate) == plate


@given(st.text(max_size=16))
def test_arbitrary_text_only_ever_raises_identity_error(raw: str) -> None:
    codes = set()
    for fn in (normalize_phone, normalize_plate, parse_identifier):
        try:
            fn(raw)
        except IdentityError as err:
            codes.add(err.code)
    assert codes <= KNOWN_CODES


_PREFIXES = sorted({n[:3] for n in VALID_PHONES} - {"174"})
_phone_layouts = st.sampled_from(sorted(PHONE_VARIANTS))


@given(st.sampled_from(_PREFIXES), _chars(_digit, 8), _phone_layouts)
def test_normalize_phone_is_idempotent(prefix: str, tail: str, layout: str) -> None:
    raw = PHONE_VARIANTS[layout](prefix + tail)
    try:
        e164 = normalize_phone(raw)
    except IdentityError:
        reject()
    assert normalize_phone(e164) == e164
    assert e164 == f"+86{prefix}{tail}"
    assert parse_identifier(raw) == Identifier("phone", e164)


@given(st.sampled_from(_PREFIXES), _chars(_digit, 8))
def test_mask_phone_shape(prefix: str, tail: str) -> None:
    try:
        e164 = normalize_phone(prefix + tail)
    except IdentityError:
        reject()
    masked = mask_phone(e164)
    assert re.fullmatch(r"1[3-9][0-9]\*{4}[0-9]{4}", masked)
    assert masked[:3] == prefix
    assert masked[-4:] == tail[-4:]


# --------------------------------------------------------------------------- GA 36-2018


@given(st.sampled_from(PROVINCES), _authority_letter, st.integers(0, 5).flatmap(ordinary_serials))
def test_an_ordinary_serial_holds_at_most_two_letters(
    province: str, letter: str, serial: str
) -> None:
    letters = sum(ch.isalpha() for ch in serial)
    plate = province + letter + serial
    if letters <= 2:
        assert normalize_plate(plate) == plate
        return
    with pytest.raises(IdentityError) as info:
        normalize_plate(plate)
    assert info.value.code == "plate.format"
    assert "at most 2 letters" in str(info.value)


@given(
    st.sampled_from(PROVINCES),
    _authority_letter,
    _chars(_serial_char, 4),
    st.sampled_from("港澳"),
)
def test_hong_kong_and_macao_plates_are_yue_z_only(
    province: str, letter: str, serial: str, suffix: str
) -> None:
    plate = province + letter + serial + suffix
    if province + letter == "粤Z":
        assert normalize_plate(plate) == plate
        return
    with pytest.raises(IdentityError) as info:
        normalize_plate(plate)
    assert info.value.code == "plate.format"
    assert "粤Z" in str(info.value)


@given(st.sampled_from(PROVINCES), _authority_letter, _chars(_serial_char, 4))
def test_the_other_suffixes_stay_open_to_every_province(
    province: str, letter: str, serial: str
) -> None:
    for suffix in "学警挂领":
        assert normalize_plate(province + letter + serial + suffix) == (
            province + letter + serial + suffix
        )


@pytest.mark.parametrize(
    "plate",
    ["粤BD12345", "粤BDA1234", "桂BDZ0001", "粤B12345D", "甘A54321F", "粤Z1234学", "粤Z12AB港"],
)
def test_new_energy_and_suffix_plates_are_not_counted_as_ordinary(plate: str) -> None:
    """New-energy serials are six characters and suffix serials end in a character, so the
    two-letter limit of the ordinary five-character serial never applies to them."""
    assert normalize_plate(plate) == plate


def test_the_new_rules_explain_themselves_without_echoing_the_plate() -> None:
    for plate in ("京AAB1C2", "京A1234港"):
        with pytest.raises(IdentityError) as info:
            normalize_plate(plate)
        assert plate not in str(info.value)
        assert plate[2:6] not in str(info.value)
