"""The unified social credit code (统一社会信用代码, GB 32100-2015): a company's taxpayer id
on a 数电发票.

18 characters from 0-9 and the capital letters without I, O, Z, S, V: the registration
authority (1), the organisation kind (1), the administrative division (6 digits), the
organisation code (9), and a check character. The check character is
`31 - (Σ value(cᵢ) × 3^(i-1) mod 31) mod 31` over the first 17, written back in the same
alphabet (a result of 31 is 0). A single mistyped character, or two neighbours of the first
17 swapped, always fails it (31 is prime). Pure: no I/O.
"""

from __future__ import annotations

import re

__all__ = ["USCC_ALPHABET", "TaxIdError", "normalize_uscc", "uscc_check_char"]

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_VALUE = {char: value for value, char in enumerate(USCC_ALPHABET)}
_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
_SHAPE = re.compile(r"[0-9A-HJ-NP-RTUWXY]{2}[0-9]{6}[0-9A-HJ-NP-RTUWXY]{10}")


class TaxIdError(ValueError):
    """Not a unified social credit code; `str()` says why, in words a member understands."""


def uscc_check_char(first17: str) -> str:
    """The check character of the first 17 characters of a code."""
    if len(first17) != 17 or any(char not in _VALUE for char in first17):
        raise TaxIdError("the first 17 characters are digits and letters other than I O Z S V")
    total = sum(_VALUE[char] * weight for char, weight in zip(first17, _WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def normalize_uscc(text: str) -> str:
    """The code as issued (upper case, no spaces or dashes), or TaxIdError."""
    code = re.sub(r"[\s-]", "", text).upper()
    if len(code) != 18:
        raise TaxIdError(f"a unified social credit code has 18 characters, not {len(code)}")
    if not _SHAPE.fullmatch(code):
        raise TaxIdError(
            "a unified social credit code uses digits and capital letters other than "
            "I O Z S V, with digits in places 3 to 8"
        )
    if uscc_check_char(code[:17]) != code[17]:
        raise TaxIdError("the code's check character does not match: a character is mistyped")
    return code
