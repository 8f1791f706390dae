"""Rule-set parsing, validation, selection, expiry dates and redemption values."""

from __future__ import annotations

import ast
import copy
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cloud_sync.core.ruleset import (
    Fault,
    RedemptionRefused,
    RuleSet,
    RuleSetError,
    canonical_json,
    points_expire_at,
    redemption_value_fen,
    ruleset_in_force,
)
from cloud_sync.core.ruleset import model as ruleset_module
from cloud_sync.core.ruleset.parser import parse_ruleset, parse_ruleset_json

RULESETS = Path(__file__).resolve().parents[2] / "config" / "rulesets"
SHANGHAI = ZoneInfo("Asia/Shanghai")
CST = timezone(timedelta(hours=8))


def sample_doc() -> dict[str, Any]:
    """The contract's sample as plain JSON (decimals as strings), fresh for each test."""
    doc: dict[str, Any] = json.loads((RULESETS / "sample.json").read_text(encoding="utf-8"))
    return copy.deepcopy(doc)


def faults_of(document: object) -> list[Fault]:
    with pytest.raises(RuleSetError) as info:
        parse_ruleset(document)
    return list(info.value.faults)


def paths_of(document: object) -> set[str]:
    return {f.path for f in faults_of(document)}


# --------------------------------------------------------------------------- samples


def test_sample_is_the_contract_document_in_force_from_2026() -> None:
    rs = parse_ruleset_json((RULESETS / "sample.json").read_bytes())
    assert rs.version == 3
    assert rs.name == "2026 winter"
    assert rs.effective_from == datetime(2026, 1, 1, tzinfo=CST)
    assert rs.timezone == "Asia/Shanghai"
    assert [g.name for g in rs.grades.values()] == ["92#汽油", "95#汽油", "0#柴油"]
    assert rs.earn["0"].points_per_litre == Decimal("0.5")
    assert rs.earn["92"].points_per_yuan is None
    assert [t.code for t in rs.tiers] == ["standard", "silver", "gold"]
    assert rs.tiers[0].qualify is None
    gold = rs.tier("gold")
    assert gold.multiplier == Decimal("1.5")
    assert gold.discount_per_litre == Decimal("0.20")
    assert gold.qualify is not None
    assert gold.qualify.litres == Decimal(1000)
    assert gold.qualify.window_days == 90
    assert rs.new_member_tier is not None
    assert (rs.new_member_tier.code, rs.new_member_tier.days) == ("silver", 30)
    assert [b.name for b in rs.bonuses] == ["周二会员日", "元旦"]
    assert rs.bonuses[0].weekdays == frozenset({2})
    assert rs.bonuses[1].dates == frozenset({date(2027, 1, 1)})
    assert (rs.redeem.points_per_yuan, rs.redeem.min_points) == (100, 100)
    assert rs.rounding == "floor"
    assert rs.expiry_months == 12
    assert rs.tier_rank("standard") == 0
    assert rs.tier_rank("gold") == 2


def test_field_examples_match_domain() -> None:
    rs = parse_ruleset_json((RULESETS / "field-examples.json").read_text(encoding="utf-8"))
    assert rs.version == 1
    assert rs.effective_from == datetime(2020, 1, 1, tzinfo=CST)
    assert rs.earn["92"].points_per_litre == Decimal(1)
    assert rs.earn["95"].points_per_litre == Decimal(1)
    assert rs.earn["0"].points_per_litre == Decimal("0.5")
    assert [(t.code, t.multiplier, t.discount_per_litre) for t in rs.tiers] == [
        ("standard", Decimal(1), Decimal(0)),
        ("silver", Decimal(1), Decimal("0.10")),
        ("gold", Decimal("1.5"), Decimal("0.20")),
    ]
    assert [t.qualify.litres for t in rs.tiers if t.qualify] == [Decimal(300), Decimal(1000)]
    assert [b.weekdays for b in rs.bonuses] == [frozenset({2})]
    assert rs.bonuses[0].multiplier == Decimal(2)
    assert rs.new_member_tier is None
    assert rs.rounding == "floor"
    assert rs.expiry_months == 12


def test_numbers_parse_as_exact_decimals() -> None:
    text = (RULESETS / "sample.json").read_text(encoding="utf-8")
    text = text.replace('"multiplier": "1.5"', '"multiplier": 1.5')
    rs = parse_ruleset_json(text)
    assert rs.tier("gold").multiplier == Decimal("1.5")
    assert isinstance(rs.document["tiers"][2]["multiplier"], Decimal)


def test_integers_accepted_as_decimals() -> None:
    doc = sample_doc()
    doc["earn"][0]["points_per_litre"] = 2
    assert parse_ruleset(doc).earn["92"].points_per_litre == Decimal(2)


def test_binary_float_refused() -> None:
    doc = sample_doc()
    doc["tiers"][2]["multiplier"] = 1.5
    [fault] = faults_of(doc)
    assert fault.path == "$.tiers[2].multiplier"
    assert "float" in fault.message


def test_document_is_a_detached_copy() -> None:
    doc = sample_doc()
    rs = parse_ruleset(doc)
    doc["name"] = "changed"
    doc["tiers"][0]["name"] = "changed"
    assert rs.document["name"] == "2026 winter"
    assert rs.document["tiers"][0]["name"] == "普通会员"


def test_canonical_json_is_stable_and_reparses() -> None:
    rs = parse_ruleset_json((RULESETS / "sample.json").read_text(encoding="utf-8"))
    raw = canonical_json(rs.document)
    assert raw == canonical_json(parse_ruleset(sample_doc()).document)
    assert b" " not in raw.replace(b"2026 winter", b"")
    assert parse_ruleset_json(raw) == rs


def test_canonical_json_writes_decimals_as_numbers() -> None:
    assert canonical_json({"b": Decimal("1.50"), "a": [1, True, None, "x"]}) == (
        b'{"a":[1,true,null,"x"],"b":1.50}'
    )


def test_tier_lookup_errors() -> None:
    rs = parse_ruleset(sample_doc())
    with pytest.raises(KeyError, match="platinum"):
        rs.tier("platinum")
    with pytest.raises(KeyError, match="platinum"):
        rs.tier_rank("platinum")


def test_optional_sections_may_be_absent() -> None:
    doc = sample_doc()
    for key in ("new_member_tier", "bonuses", "expiry"):
        del doc[key]
    del doc["tiers"][0]["discount_per_litre"]
    rs = parse_ruleset(doc)
    assert rs.new_member_tier is None
    assert rs.bonuses == ()
    assert rs.expiry_months is None
    assert rs.tiers[0].discount_per_litre == Decimal(0)


def test_per_yuan_earning_and_extended_bonus_conditions() -> None:
    doc = sample_doc()
    doc["grades"]["CNG"] = {"name": "天然气"}
    doc["earn"].append({"grade": "CNG", "points_per_yuan": "0.1"})
    doc["bonuses"].append(
        {"name": "夜间", "start_time": "22:00", "end_time": "06:00", "multiplier": "1.2"}
    )
    doc["bonuses"].append({"name": "满300", "min_amount": "300", "multiplier": "1.5"})
    rs = parse_ruleset(doc)
    assert rs.earn["CNG"].points_per_yuan == Decimal("0.1")
    assert rs.earn["CNG"].points_per_litre is None
    night = rs.bonuses[2]
    assert night.applies(datetime(2026, 3, 3, 23, 0, tzinfo=SHANGHAI), Decimal(1))
    assert night.applies(datetime(2026, 3, 3, 5, 59, tzinfo=SHANGHAI), Decimal(1))
    assert not night.applies(datetime(2026, 3, 3, 6, 0, tzinfo=SHANGHAI), Decimal(1))
    big = rs.bonuses[3]
    assert big.applies(datetime(2026, 3, 3, 12, tzinfo=SHANGHAI), Decimal("300.00"))
    assert not big.applies(datetime(2026, 3, 3, 12, tzinfo=SHANGHAI), Decimal("299.99"))


# --------------------------------------------------------------------------- validation


def test_error_lists_every_fault_with_its_path() -> None:
    doc = sample_doc()
    doc["timezone"] = "Asia/Shangai"
    doc["earn"][2]["points_per_litre"] = "-0.5"
    doc["tiers"][1]["qualify"]["window_days"] = 0
    doc["tiers"][2]["multplier"] = doc["tiers"][2].pop("multiplier")
    doc["rounding"] = "ceil"
    doc["bonuses"][0]["weekdays"] = [2, 8]
    faults = faults_of(doc)
    assert [f.path for f in faults] == [
        "$.timezone",
        "$.earn[2].points_per_litre",
        "$.tiers[1].qualify.window_days",
        "$.tiers[2].multplier",
        "$.tiers[2].multiplier",
        "$.bonuses[0].weekdays[1]",
        "$.rounding",
    ]
    by_path = {f.path: f.message for f in faults}
    assert by_path["$.earn[2].points_per_litre"] == "must not be negative"
    assert by_path["$.tiers[2].multplier"] == "unknown key; did you mean 'multiplier'?"
    assert by_path["$.tiers[2].multiplier"] == "is required"


def test_error_message_joins_faults() -> None:
    doc = sample_doc()
    doc["version"] = 0
    del doc["name"]
    with pytest.raises(RuleSetError) as info:
        parse_ruleset(doc)
    assert str(info.value) == (
        "invalid rule set: $.version: must be at least 1; $.name: is required"
    )
    assert info.value.as_dicts() == [
        {"path": "$.version", "message": "must be at least 1"},
        {"path": "$.name", "message": "is required"},
    ]
    assert isinstance(info.value, ValueError)


def test_top_level_must_be_object() -> None:
    assert faults_of([1, 2]) == [Fault("$", "must be a JSON object")]


def test_empty_object_lists_every_required_key() -> None:
    assert paths_of({}) == {
        "$.version",
        "$.name",
        "$.effective_from",
        "$.timezone",
        "$.grades",
        "$.earn",
        "$.tiers",
        "$.redeem",
        "$.rounding",
    }


def test_scalar_faults() -> None:
    doc = sample_doc()
    doc["version"] = True
    doc["name"] = "  "
    doc["effective_from"] = "2026-01-01T00:00:00"
    doc["redeem"] = {"points_per_yuan": 0, "min_points": -1}
    doc["expiry"] = {"months": "12"}
    assert paths_of(doc) == {
        "$.version",
        "$.name",
        "$.effective_from",
        "$.redeem.points_per_yuan",
        "$.redeem.min_points",
        "$.expiry.months",
    }


def test_effective_from_accepts_z_and_refuses_garbage() -> None:
    doc = sample_doc()
    doc["effective_from"] = "2026-01-01T00:00:00Z"
    assert parse_ruleset(doc).effective_from == datetime(2026, 1, 1, tzinfo=UTC)
    doc["effective_from"] = "next monday"
    assert paths_of(doc) == {"$.effective_from"}


def test_grade_faults_use_bracket_paths() -> None:
    doc = sample_doc()
    doc["grades"]["92"] = {"name": "", "colour": "red"}
    doc["earn"].append({"grade": "98", "points_per_litre": "1"})
    doc["earn"].append({"grade": "95", "points_per_litre": "2"})
    faults = faults_of(doc)
    assert [f.path for f in faults] == [
        "$.grades['92'].colour",
        "$.grades['92'].name",
        "$.earn[3].grade",
        "$.earn[4].grade",
    ]
    assert "unknown grade '98'" in faults[2].message
    assert "already" in faults[3].message


def test_grades_must_not_be_empty() -> None:
    doc = sample_doc()
    doc["grades"] = {}
    doc["earn"] = []
    assert paths_of(doc) == {"$.grades"}


def test_earn_needs_exactly_one_rate() -> None:
    doc = sample_doc()
    doc["earn"][0] = {"grade": "92"}
    doc["earn"][1] = {"grade": "95", "points_per_litre": "1", "points_per_yuan": "1"}
    assert paths_of(doc) == {"$.earn[0]", "$.earn[1]"}


def test_decimal_strings_must_be_plain_decimals() -> None:
    doc = sample_doc()
    doc["earn"][0]["points_per_litre"] = "1e3"
    doc["earn"][1]["points_per_litre"] = "NaN"
    doc["earn"][2]["points_per_litre"] = "0.1234567"
    doc["tiers"][1]["multiplier"] = "0"
    doc["tiers"][2]["multiplier"] = "150"
    assert paths_of(doc) == {
        "$.earn[0].points_per_litre",
        "$.earn[1].points_per_litre",
        "$.earn[2].points_per_litre",
        "$.tiers[1].multiplier",
        "$.tiers[2].multiplier",
    }


def _tier_structure(doc: dict[str, Any]) -> None:
    doc["tiers"][0]["qualify"] = {"litres": "1", "window_days": 90}
    del doc["tiers"][1]["qualify"]
    doc["tiers"][2]["code"] = "standard"
    doc["tiers"][2]["qualify"] = {"window_days": 90}


def _no_tiers(doc: dict[str, Any]) -> None:
    doc["tiers"] = []
    del doc["new_member_tier"]


def _qualify_out_of_bounds(doc: dict[str, Any]) -> None:
    doc["tiers"][1]["qualify"] = {"visits": 0, "window_days": 4000}
    doc["tiers"][2]["qualify"] = {"litres": "0", "amount": "-1", "window_days": 90}


def _unknown_new_member_tier(doc: dict[str, Any]) -> None:
    doc["new_member_tier"] = {"code": "vip", "days": 0}


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            _tier_structure,
            {"$.tiers[0].qualify", "$.tiers[1].qualify", "$.tiers[2].code", "$.tiers[2].qualify"},
            id="tier structure",
        ),
        pytest.param(_no_tiers, {"$.tiers"}, id="tiers must not be empty"),
        pytest.param(
            _qualify_out_of_bounds,
            {
                "$.tiers[1].qualify.visits",
                "$.tiers[1].qualify.window_days",
                "$.tiers[2].qualify.litres",
                "$.tiers[2].qualify.amount",
            },
            id="qualify bounds",
        ),
        pytest.param(
            _unknown_new_member_tier,
            {"$.new_member_tier.code", "$.new_member_tier.days"},
            id="new member tier",
        ),
    ],
)
def test_tier_faults_name_their_paths(
    mutate: Callable[[dict[str, Any]], None], expected: set[str]
) -> None:
    doc = sample_doc()
    mutate(doc)
    assert paths_of(doc) == expected


def test_thresholds_must_not_decrease() -> None:
    doc = sample_doc()
    doc["tiers"][2]["qualify"] = {"litres": "200", "visits": 10, "window_days": 90}
    faults = faults_of(doc)
    assert [f.path for f in faults] == ["$.tiers[2].qualify.litres"]
    assert "below 300" in faults[0].message


def test_equal_thresholds_and_shorter_windows_are_allowed() -> None:
    doc = sample_doc()
    doc["tiers"][2]["qualify"] = {"litres": "300", "window_days": 90}
    parse_ruleset(doc)
    # 250 L in 30 days is harder than 300 L in 90 days: not a mistake.
    doc["tiers"][2]["qualify"] = {"litres": "250", "window_days": 30}
    parse_ruleset(doc)
    # ... but 250 L over a LONGER window is easier, so it is refused.
    doc["tiers"][2]["qualify"] = {"litres": "250", "window_days": 180}
    assert paths_of(doc) == {"$.tiers[2].qualify.litres"}


def test_bonus_faults() -> None:
    doc = sample_doc()
    doc["bonuses"] = [
        {"name": "always", "multiplier": "2"},
        {"name": "bad dates", "dates": ["2027-02-30", "2027/01/01"], "multiplier": "2"},
        {"name": "half window", "start_time": "22:00", "multiplier": "2"},
        {"name": "empty window", "start_time": "08:00", "end_time": "08:00", "multiplier": "2"},
        {"name": "bad time", "start_time": "25:00", "end_time": "8am", "multiplier": "2"},
        {"name": "no days", "weekdays": [], "multiplier": "0"},
        {"name": "bool day", "weekdays": [True], "multiplier": "2"},
        {"name": "penalty", "weekdays": [1], "multiplier": "0.5"},
    ]
    assert [f.path for f in faults_of(doc)] == [
        "$.bonuses[0]",
        "$.bonuses[1].dates[0]",
        "$.bonuses[1].dates[1]",
        "$.bonuses[2].end_time",
        "$.bonuses[3].end_time",
        "$.bonuses[4].start_time",
        "$.bonuses[4].end_time",
        "$.bonuses[5].multiplier",
        "$.bonuses[5].weekdays",
        "$.bonuses[6].weekdays[0]",
        "$.bonuses[7].multiplier",
    ]


def test_wrong_container_types() -> None:
    doc = sample_doc()
    doc["earn"] = {"92": "1"}
    doc["tiers"] = "gold"
    doc["bonuses"] = {}
    doc["redeem"] = 100
    doc["grades"] = ["92"]
    del doc["new_member_tier"]
    assert paths_of(doc) == {"$.earn", "$.tiers", "$.bonuses", "$.redeem", "$.grades"}


def test_json_syntax_error_reports_line_and_column() -> None:
    with pytest.raises(RuleSetError) as info:
        parse_ruleset_json('{\n  "version": 3,\n  "name": }')
    [fault] = info.value.faults
    assert fault.path == "$"
    assert "line 3 column 11" in fault.message


def test_json_duplicate_keys_are_faults() -> None:
    text = (RULESETS / "sample.json").read_text(encoding="utf-8")
    text = text.replace('"rounding": "floor"', '"rounding": "floor", "rounding": "half_up"')
    assert [f.path for f in faults_of_json(text)] == ["$.rounding"]


def test_json_nan_and_bad_bytes_refused() -> None:
    assert [f.path for f in faults_of_json('{"version": NaN}')] == ["$"]
    assert [f.path for f in faults_of_json(b"\xff\xfe{}")] == ["$"]


def faults_of_json(text: str | bytes) -> list[Fault]:
    with pytest.raises(RuleSetError) as info:
        parse_ruleset_json(text)
    return list(info.value.faults)


# --------------------------------------------------------------------------- in force


def make(version: int, effective_from: str) -> RuleSet:
    doc = sample_doc()
    doc["version"] = version
    doc["effective_from"] = effective_from
    return parse_ruleset(doc)


def test_ruleset_in_force_picks_latest_not_after() -> None:
    v1 = make(1, "2026-01-01T00:00:00+08:00")
    v2 = make(2, "2026-06-01T00:00:00+08:00")
    v3 = make(3, "2026-12-01T00:00:00+08:00")
    sets = [v3, v1, v2]
    assert ruleset_in_force(sets, datetime(2025, 12, 31, 15, 59, 59, tzinfo=UTC)) is None
    assert ruleset_in_force(sets, datetime(2025, 12, 31, 16, 0, tzinfo=UTC)) is v1
    assert ruleset_in_force(sets, datetime(2026, 11, 30, 23, 59, tzinfo=SHANGHAI)) is v2
    assert ruleset_in_force(sets, datetime(2026, 12, 1, tzinfo=SHANGHAI)) is v3
    assert ruleset_in_force([], datetime(2026, 12, 1, tzinfo=UTC)) is None


def test_equal_effective_from_picks_higher_version() -> None:
    v4 = make(4, "2026-06-01T00:00:00+08:00")
    v5 = make(5, "2026-05-31T16:00:00+00:00")  # the same instant
    at = datetime(2026, 7, 1, tzinfo=UTC)
    assert ruleset_in_force([v5, v4], at) is v5
    assert ruleset_in_force([v4, v5], at) is v5


def test_ruleset_in_force_needs_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ruleset_in_force([make(1, "2026-01-01T00:00:00+08:00")], datetime(2026, 7, 1))


# --------------------------------------------------------------------------- expiry


def with_expiry(months: int | None) -> RuleSet:
    doc = sample_doc()
    if months is None:
        del doc["expiry"]
    else:
        doc["expiry"] = {"months": months}
    return parse_ruleset(doc)


def test_expiry_clamps_to_month_end() -> None:
    rs = with_expiry(1)
    expires = points_expire_at(rs, datetime(2026, 1, 31, 10, 30, tzinfo=SHANGHAI))
    assert expires == datetime(2026, 2, 28, 10, 30, tzinfo=SHANGHAI)
    assert expires is not None
    assert expires.tzinfo == SHANGHAI


def test_expiry_twelve_months_and_leap_day() -> None:
    rs = with_expiry(12)
    assert points_expire_at(rs, datetime(2026, 3, 15, 8, 0, tzinfo=SHANGHAI)) == datetime(
        2027, 3, 15, 8, 0, tzinfo=SHANGHAI
    )
    assert points_expire_at(rs, datetime(2024, 2, 29, 8, 0, tzinfo=SHANGHAI)) == datetime(
        2025, 2, 28, 8, 0, tzinfo=SHANGHAI
    )
    assert points_expire_at(with_expiry(13), datetime(2026, 12, 31, tzinfo=SHANGHAI)) == (
        datetime(2028, 1, 31, tzinfo=SHANGHAI)
    )


def test_expiry_counts_months_in_the_rule_set_zone() -> None:
    rs = with_expiry(1)
    # 17:00 UTC on 31 January is already 1 February in Shanghai.
    expires = points_expire_at(rs, datetime(2026, 1, 31, 17, 0, tzinfo=UTC))
    assert expires == datetime(2026, 3, 1, 1, 0, tzinfo=SHANGHAI)
    assert expires is not None
    assert expires.utcoffset() == timedelta(hours=8)


def test_no_expiry() -> None:
    assert points_expire_at(with_expiry(None), datetime(2026, 1, 31, tzinfo=SHANGHAI)) is None


def test_expiry_needs_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        points_expire_at(with_expiry(12), datetime(2026, 1, 31))


# --------------------------------------------------------------------------- redemption


def with_redeem(points_per_yuan: int, min_points: int) -> RuleSet:
    doc = sample_doc()
    doc["redeem"] = {"points_per_yuan": points_per_yuan, "min_points": min_points}
    return parse_ruleset(doc)


def test_redemption_values() -> None:
    rs = parse_ruleset(sample_doc())
    assert redemption_value_fen(rs, 100) == 100
    assert redemption_value_fen(rs, 250) == 250
    assert redemption_value_fen(rs, 10_000) == 10_000
    coarse = with_redeem(1000, 0)
    assert redemption_value_fen(coarse, 10) == 1
    assert redemption_value_fen(coarse, 5000) == 500
    fine = with_redeem(50, 0)
    assert redemption_value_fen(fine, 1) == 2


@pytest.mark.parametrize(
    ("policy", "points", "code", "text"),
    [
        ((100, 100), 99, "redeem.min_points", "at least 100"),
        ((100, 100), 0, "redeem.not_positive", "positive"),
        ((100, 0), -5, "redeem.not_positive", "positive"),
        ((1000, 0), 15, "redeem.not_whole_fen", "multiple of 10"),
        ((150, 0), 301, "redeem.not_whole_fen", "multiple of 3"),
    ],
)
def test_redemption_refusals(policy: tuple[int, int], points: int, code: str, text: str) -> None:
    rs = with_redeem(*policy)
    with pytest.raises(RedemptionRefused) as info:
        redemption_value_fen(rs, points)
    assert info.value.code == code
    assert text in str(info.value)
    assert isinstance(info.value, ValueError)


def test_redemption_multiple_of_three_accepted() -> None:
    assert redemption_value_fen(with_redeem(150, 0), 300) == 200


def test_model_module_does_not_import_the_parser() -> None:
    """ruleset_parser builds RuleSet values; the model importing it back would be a cycle."""
    source = Path(ruleset_module.__file__ or "").read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert not {m for m in imported if m.startswith(("cloud_sync", "."))}
    assert not hasattr(ruleset_module, "parse_ruleset")
