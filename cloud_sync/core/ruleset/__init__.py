"""Rule sets: HQ's earning, tier and redemption rules.

`model` is the validated, immutable value every computation reads; `parser` turns a
JSON document into one, with the JSON path of each fault (`values` and `tier_rules` are
its pieces). Import from here.
"""

from .model import (
    Bonus,
    EarnRule,
    Fault,
    Grade,
    Qualify,
    RedeemPolicy,
    RedemptionRefused,
    Rounding,
    RuleSet,
    RuleSetError,
    Tier,
    TrialGrant,
    canonical_json,
    points_expire_at,
    redemption_value_fen,
    ruleset_in_force,
)
from .parser import (
    parse_ruleset,
    parse_ruleset_json,
)

__all__ = [
    "Bonus",
    "EarnRule",
    "Fault",
    "Grade",
    "Qualify",
    "RedeemPolicy",
    "RedemptionRefused",
    "Rounding",
    "RuleSet",
    "RuleSetError",
    "Tier",
    "TrialGrant",
    "canonical_json",
    "parse_ruleset",
    "parse_ruleset_json",
    "points_expire_at",
    "redemption_value_fen",
    "ruleset_in_force",
]
