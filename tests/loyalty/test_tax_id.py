"""The unified social credit code (GB 32100-2015): published codes pass, the standard's own
worked example fails where it says, and any single changed character is caught."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud_sync.core.tax_id import USCC_ALPHABET, TaxIdError, normalize_uscc, uscc_check_char

# Codes printed on the companies' own licences and annual reports.
PUBLISHED = [
    "9144030071526726XG",  # 腾讯科技（深圳）有限公司
    "914403001922038216",  # 华为技术有限公司
    "91110000710926094P",  # 中国石油化工股份有限公司
    "91110000710925462X",  # 中国石油天然气股份有限公司
    "91110108551385082Q",  # 小米科技有限责任公司
    "91110000802100433B",  # 百度在线网络技术（北京）有限公司
]


@pytest.mark.parametrize("code", PUBLISHED)
def test_published_codes_pass(code: str) -> None:
    assert normalize_uscc(code) == code


def test_the_standards_worked_example() -> None:
    # GB 32100-2015's example: the first 17 of 91350100M000100Y4Z give the check "3".
    assert uscc_check_char("91350100M000100Y4") == "3"
    assert normalize_uscc("91350100M000100Y43") == "91350100M000100Y43"
    with pytest.raises(TaxIdError, match="other than I O Z S V"):
        normalize_uscc("91350100M000100Y4Z")  # Z is no code character at all
    with pytest.raises(TaxIdError, match="check character"):
        normalize_uscc("91350100M000100Y44")


def test_spaces_dashes_and_lower_case_are_tidied() -> None:
    assert normalize_uscc(" 9144 0300-7152 6726xg ") == "9144030071526726XG"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "18 characters, not 0"),
        ("9144030071526726X", "18 characters, not 17"),
        ("9144030071526726XGA", "18 characters, not 19"),
        ("9144030071526726XO", "other than I O Z S V"),  # O is never used
        ("91440300715267261I", "other than I O Z S V"),
        ("9144A30071526726XG", "digits in places 3 to 8"),
        ("9144030071526726X好", "other than I O Z S V"),
        ("9144030071526726XH", "check character"),
    ],
)
def test_malformed_codes_are_refused_with_a_reason(text: str, words: str) -> None:
    with pytest.raises(TaxIdError, match=words):
        normalize_uscc(text)


@given(
    st.sampled_from(PUBLISHED),
    st.integers(0, 17),
    st.sampled_from(USCC_ALPHABET),
)
def test_any_single_changed_character_fails(code: str, place: int, char: str) -> None:
    changed = code[:place] + char + code[place + 1 :]
    if changed == code:
        return
    with pytest.raises(TaxIdError):
        normalize_uscc(changed)


@given(st.sampled_from(PUBLISHED), st.integers(0, 15))
def test_swapping_two_neighbours_of_the_first_17_fails(code: str, place: int) -> None:
    swapped = code[:place] + code[place + 1] + code[place] + code[place + 2 :]
    if swapped == code:
        return
    with pytest.raises(TaxIdError):
        normalize_uscc(swapped)


@given(st.text(alphabet=USCC_ALPHABET, min_size=17, max_size=17))
def test_every_17_characters_have_exactly_one_check_character(first17: str) -> None:
    passing = [c for c in USCC_ALPHABET if uscc_check_char(first17) == c]
    assert passing == [uscc_check_char(first17)]
