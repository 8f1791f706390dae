"""Member identity: mainland China mobile numbers and licence plates.

Members are looked up by whatever the cashier can read off the customer: a phone number or
the car's plate. Both are typed in many shapes (full-width digits from a Chinese IME, dots
in plates, +86 prefixes), so every entry point reduces them to one canonical string that can
be used as a lookup key on the station and in the cloud alike. Pure functions: no I/O, no
clock.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

import phonenumbers

__all__ = [
    "Identifier",
    "IdentityError",
    "mask_phone",
    "mask_plate",
    "normalize_phone",
    "normalize_plate",
    "parse_identifier",
]


class IdentityError(ValueError):
    """Bad phone or plate.

    `code` is a stable machine code the UI translates; str(err) is one English sentence.
    Messages never echo the input, so they are safe to log.
    """

    code: str

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def __reduce__(self) -> tuple[type[IdentityError], tuple[str, str]]:
        # The default reduce would call cls(message) and fail across process boundaries.
        return (type(self), (self.code, str(self)))


# --------------------------------------------------------------------------- phones

_PHONE_SEPARATORS = frozenset(" -")
_ASCII_DIGITS = frozenset("0123456789")
_MAINLAND_MOBILE = re.compile(r"1[3-9]\d{9}")
_E164_MAINLAND_MOBILE = re.compile(r"\+86(1[3-9]\d{9})")

_MSG_NOT_MOBILE = "Not a mainland mobile number: 11 digits starting with 1 expected."


def normalize_phone(raw: str) -> str:
    """Return E.164 ('+8613800138000') for a valid mainland mobile number.

    Raises IdentityError otherwise. Letters are refused up front because phonenumbers would
    silently translate them as keypad letters ('O' -> 6).
    """
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text:
        raise IdentityError("phone.empty", "Phone number is empty.")
    if any(ch.isalpha() for ch in text):
        raise IdentityError("phone.letters", "A phone number must not contain letters.")

    has_plus = text.startswith("+")
    body = text[1:] if has_plus else text
    if any(ch not in _ASCII_DIGITS and ch not in _PHONE_SEPARATORS for ch in body):
        raise IdentityError(
            "phone.characters", "A phone number may contain only digits, spaces and dashes."
        )
    digits = "".join(ch for ch in body if ch in _ASCII_DIGITS)
    if not digits:
        raise IdentityError("phone.empty", "Phone number is empty.")

    national = _national_digits(digits, has_plus=has_plus)
    if len(national) != 11:
        raise IdentityError("phone.length", _MSG_NOT_MOBILE)

    try:
        number = phonenumbers.parse(national, "CN")
    except phonenumbers.NumberParseException as exc:
        raise IdentityError("phone.invalid", _MSG_NOT_MOBILE) from exc
    if (
        not _MAINLAND_MOBILE.fullmatch(national)
        or number.country_code != 86
        or not phonenumbers.is_valid_number(number)
        or phonenumbers.region_code_for_number(number) != "CN"
        or phonenumbers.number_type(number) != phonenumbers.PhoneNumberType.MOBILE
    ):
        raise IdentityError("phone.invalid", _MSG_NOT_MOBILE)
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _national_digits(digits: str, *, has_plus: bool) -> str:
    """Strip the +86 / 0086 / 86 country prefix; any other country is refused."""
    if has_plus:
        if not digits.startswith("86"):
            raise IdentityError(
                "phone.country", "Only mainland China (+86) mobile numbers are accepted."
            )
        return digits[2:]
    if digits.startswith("0086"):
        return digits[4:]
    if digits.startswith("00"):
        # 00 is the international dialling prefix from the mainland: another country.
        raise IdentityError(
            "phone.country", "Only mainland China (+86) mobile numbers are accepted."
        )
    if len(digits) == 13 and digits.startswith("861"):
        return digits[2:]
    return digits


def mask_phone(e164: str) -> str:
    """'+8613800138000' -> '138****8000': enough for a cashier to confirm, safe for logs.

    Stored E.164 values are masked by shape alone, so a later phonenumbers metadata update
    can never make logging fail; anything else is normalized first.
    """
    match = _E164_MAINLAND_MOBILE.fullmatch(e164)
    national = match.group(1) if match else normalize_phone(e164)[3:]
    return f"{national[:3]}****{national[-4:]}"


# --------------------------------------------------------------------------- plates

_PROVINCES = frozenset("京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼")
_PLATE_SEPARATORS = frozenset("\u00b7\u30fb\u2022\u2027\uff65.-")
_AUTHORITY_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Serial alphabet: digits and letters except I and O (they read as 1 and 0).
_S = "[0-9A-HJ-NP-Z]"
_ORDINARY = re.compile(f"{_S}{{5}}")  # 京A12345, 京AF0236, 京AB123 (at most 2 letters)
_ORDINARY_MAX_LETTERS = 2  # GA 36-2018: an ordinary serial holds at most two letters
_HONG_KONG_MACAO = frozenset("港澳")
_HONG_KONG_MACAO_PREFIX = "粤Z"  # GA 36-2018: 港/澳 plates are issued in Guangdong, under Z
_SERIAL_FORMS = (
    _ORDINARY,
    re.compile(f"[DF]{_S}[0-9]{{4}}"),  # new-energy small car: 粤BD12345, 粤BDA1234
    re.compile("[0-9]{5}[DF]"),  # new-energy large vehicle: 粤B12345D
    re.compile(f"{_S}{{4}}[学警挂领港澳]"),  # suffix plates: 京A1234学, 粤Z1234港 (粤Z only)
)
_EMBASSY = re.compile("使[0-9]{6}")
_MSG_PLATE_FORMAT = (
    "A plate is a province, a letter and then 5 characters, 6 for new-energy plates "
    "(D or F first or last), or 4 followed by 学, 警, 挂, 领, or (粤Z only) 港 or 澳."
)


def _compact_plate(raw: str) -> str:
    """Fold width and case and drop spacing, so every way of typing a plate compares equal."""
    text = unicodedata.normalize("NFKC", raw).upper()
    return "".join(ch for ch in text if not ch.isspace() and ch not in _PLATE_SEPARATORS)


def normalize_plate(raw: str) -> str:
    """Return the canonical plate ('京A12345', '粤BD12345') or raise IdentityError."""
    plate = _compact_plate(raw)
    if not plate:
        raise IdentityError("plate.empty", "Licence plate is empty.")
    if plate[0] == "使":
        # Embassy plates carry no province, so the province rule does not apply.
        if _EMBASSY.fullmatch(plate):
            return plate
        raise IdentityError("plate.format", "An embassy plate is 使 followed by 6 digits.")
    if plate[0] not in _PROVINCES:
        raise IdentityError(
            "plate.province", "A plate must start with a province abbreviation such as 京 or 粤."
        )
    if len(plate) < 2:
        raise IdentityError("plate.format", _MSG_PLATE_FORMAT)
    if plate[1] not in _AUTHORITY_LETTERS:
        raise IdentityError(
            "plate.letter", "The second character of a plate must be a letter from A to Z."
        )
    serial = plate[2:]
    if "I" in serial or "O" in serial:
        raise IdentityError(
            "plate.io",
            "Plates never use the letters I or O after the province letter, "
            "as they look like 1 and 0.",
        )
    if not any(form.fullmatch(serial) for form in _SERIAL_FORMS):
        raise IdentityError("plate.format", _MSG_PLATE_FORMAT)
    if _ORDINARY.fullmatch(serial) and sum(ch.isalpha() for ch in serial) > _ORDINARY_MAX_LETTERS:
        raise IdentityError(
            "plate.format",
            "An ordinary plate's 5 characters after the letter hold at most 2 letters.",
        )
    if serial[-1] in _HONG_KONG_MACAO and not plate.startswith(_HONG_KONG_MACAO_PREFIX):
        raise IdentityError("plate.format", "Plates ending in 港 or 澳 are 粤Z plates.")
    return plate


def mask_plate(plate: str) -> str:
    """'京A12345' -> '京A***45': keeps region and last 2 so log lines stay useful but anonymous."""
    canonical = normalize_plate(plate)
    return f"{canonical[:2]}{'*' * (len(canonical) - 4)}{canonical[-2:]}"


# --------------------------------------------------------------------------- search box


@dataclass(frozen=True, slots=True)
class Identifier:
    """A normalized member key; `value` is E.164 for phones and the canonical plate."""

    kind: Literal["phone", "plate"]
    value: str


_DIGITS_ONLY = re.compile(r"\+?[0-9]+")


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return (
        0x3400 <= code <= 0x4DBF  # extension A
        or 0x4E00 <= code <= 0x9FFF  # unified ideographs
        or 0xF900 <= code <= 0xFAFF  # compatibility ideographs
        or 0x20000 <= code <= 0x3134F  # extensions B-G
    )


def _is_latin_letter(ch: str) -> bool:
    return ("A" <= ch <= "Z") or ("a" <= ch <= "z")


def parse_identifier(q: str) -> Identifier:
    """Decide whether the cashier's single search box holds a phone or a plate, and normalize.

    Digits (spaces, dashes and a leading '+' allowed) mean a phone; any CJK character or
    latin letter means a plate. Raises IdentityError with an 'identifier.*' code when the
    input is neither, or the phone/plate error when it is one but invalid.
    """
    text = unicodedata.normalize("NFKC", q).strip()
    compact = "".join(ch for ch in text if ch not in _PHONE_SEPARATORS)
    if not compact:
        raise IdentityError("identifier.empty", "Enter a mobile number or a licence plate.")
    if _DIGITS_ONLY.fullmatch(compact):
        return Identifier(kind="phone", value=normalize_phone(text))
    if any(_is_cjk(ch) or _is_latin_letter(ch) for ch in text):
        return Identifier(kind="plate", value=normalize_plate(text))
    raise IdentityError(
        "identifier.unrecognised", "Input is neither a mobile number nor a licence plate."
    )
