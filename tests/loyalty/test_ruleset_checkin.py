"""The rule set's `checkin` section: what it accepts, what it refuses (with JSON paths), and
the streak bonus rule the member app books."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud_sync.core.ruleset import CheckinRule, RuleSetError, StreakBonus
from cloud_sync.core.ruleset.parser import parse_ruleset, parse_ruleset_json

RULESETS = Path(__file__).resolve().parents[2] / "config" / "rulesets"
SECTION = {"points": 5, "streak": [{"days": 7, "bonus": 20}], "daily_cap": 1}


def with_checkin(section: object) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((RULESETS / "sample.json").read_text(encoding="utf-8"))
    doc["checkin"] = copy.deepcopy(section)
    return doc


def faults(section: object) -> dict[str, str]:
    with pytest.raises(RuleSetError) as info:
        parse_ruleset(with_checkin(section))
    return {f.path: f.message for f in info.value.faults}


def test_the_contract_section_parses() -> None:
    rule = parse_ruleset(with_checkin(SECTION)).checkin
    assert rule == CheckinRule(points=5, streak=(StreakBonus(7, 20),), daily_cap=1)


def test_absent_or_null_means_check_in_is_off() -> None:
    doc = with_checkin(None)
    assert parse_ruleset(doc).checkin is None
    del doc["checkin"]
    assert parse_ruleset(doc).checkin is None


def test_streak_is_optional_and_may_be_empty() -> None:
    assert parse_ruleset(with_checkin({"points": 0, "daily_cap": 1})).checkin == CheckinRule(
        0, (), 1
    )
    assert parse_ruleset(with_checkin({"points": 3, "streak": [], "daily_cap": 1})).checkin


def test_the_field_examples_carry_a_checkin_section() -> None:
    rule = parse_ruleset_json((RULESETS / "field-examples.json").read_bytes()).checkin
    assert rule is not None and rule.points == 5
    assert [s.days for s in rule.streak] == [7, 30]


@pytest.mark.parametrize(
    ("section", "path", "words"),
    [
        ({"points": -1, "daily_cap": 1}, "$.checkin.points", "at least 0"),
        ({"points": 1001, "daily_cap": 1}, "$.checkin.points", "at most 1000"),
        ({"points": "5", "daily_cap": 1}, "$.checkin.points", "integer"),
        ({"points": 5, "daily_cap": 2}, "$.checkin.daily_cap", "must be 1"),
        ({"points": 5, "daily_cap": 0}, "$.checkin.daily_cap", "at least 1"),
        ({"points": 5}, "$.checkin.daily_cap", "required"),
        ({"daily_cap": 1}, "$.checkin.points", "required"),
        ({"points": 5, "daily_cap": 1, "cap": 1}, "$.checkin.cap", "unknown key"),
        ({"points": 5, "daily_cap": 1, "streak": {}}, "$.checkin.streak", "list"),
        (
            {"points": 5, "daily_cap": 1, "streak": [{"days": 1, "bonus": 5}]},
            "$.checkin.streak[0].days",
            "at least 2",
        ),
        (
            {"points": 5, "daily_cap": 1, "streak": [{"days": 367, "bonus": 5}]},
            "$.checkin.streak[0].days",
            "at most 366",
        ),
        (
            {"points": 5, "daily_cap": 1, "streak": [{"days": 7, "bonus": 10_001}]},
            "$.checkin.streak[0].bonus",
            "at most 10000",
        ),
        (
            {"points": 5, "daily_cap": 1, "streak": [{"days": 7, "bonus": -1}]},
            "$.checkin.streak[0].bonus",
            "at least 0",
        ),
        (
            {"points": 5, "daily_cap": 1, "streak": [{"days": 7}]},
            "$.checkin.streak[0].bonus",
            "required",
        ),
        (
            {"points": 5, "daily_cap": 1, "streak": [{"days": 7, "bonus": 1, "every": 2}]},
            "$.checkin.streak[0].every",
            "unknown key",
        ),
        (
            {
                "points": 5,
                "daily_cap": 1,
                "streak": [{"days": 7, "bonus": 20}, {"days": 7, "bonus": 50}],
            },
            "$.checkin.streak[1].days",
            "more than the entry before (7)",
        ),
        (
            {
                "points": 5,
                "daily_cap": 1,
                "streak": [{"days": 30, "bonus": 20}, {"days": 7, "bonus": 50}],
            },
            "$.checkin.streak[1].days",
            "more than the entry before (30)",
        ),
        ([], "$.checkin", "JSON object"),
    ],
)
def test_bad_sections_are_refused_at_their_path(section: object, path: str, words: str) -> None:
    found = faults(section)
    assert path in found, found
    assert words in found[path]


def test_too_many_streak_entries_are_refused() -> None:
    streak = [{"days": d, "bonus": 1} for d in range(2, 23)]
    found = faults({"points": 1, "daily_cap": 1, "streak": streak})
    assert "at most 20" in found["$.checkin.streak"]


def test_a_fault_in_checkin_is_reported_after_the_contract_sections() -> None:
    doc = with_checkin({"points": 5000, "daily_cap": 1})
    doc["rounding"] = "up"
    with pytest.raises(RuleSetError) as info:
        parse_ruleset(doc)
    assert [f.path for f in info.value.faults] == ["$.rounding", "$.checkin.points"]


def test_the_bonus_pays_on_every_multiple_of_each_entry() -> None:
    rule = CheckinRule(5, (StreakBonus(7, 20), StreakBonus(30, 100)), 1)
    paid = {day: rule.bonus_for(day) for day in range(1, 211) if rule.bonus_for(day)}
    assert paid[7] == paid[14] == paid[28] == 20
    assert paid[30] == 100
    assert paid[210] == 120  # both on the same day
    assert set(paid) == {d for d in range(1, 211) if d % 7 == 0 or d % 30 == 0}
    with pytest.raises(ValueError, match="at least 1"):
        rule.bonus_for(0)


@given(
    st.lists(st.integers(2, 366), min_size=1, max_size=5, unique=True).map(sorted),
    st.integers(1, 2000),
)
def test_a_bonus_is_paid_exactly_when_an_entry_divides_the_streak(
    days: list[int], streak: int
) -> None:
    rule = CheckinRule(1, tuple(StreakBonus(d, 10**i) for i, d in enumerate(days)), 1)
    expected = sum(10**i for i, d in enumerate(days) if streak % d == 0)
    assert rule.bonus_for(streak) == expected
