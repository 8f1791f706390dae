"""Parsing the tier ladder and the new-member trial grant of a rule-set document.

The tier checks look across tiers (unique codes, rising thresholds, a default first tier),
which makes them the largest section; they live here so the top-level parser stays short.
"""

from __future__ import annotations

from decimal import Decimal

from cloud_sync.core.ruleset.model import Qualify, Tier, TrialGrant
from cloud_sync.core.ruleset.values import (
    MAX_AMOUNT,
    MAX_DISCOUNT_PER_LITRE,
    MAX_LITRES,
    MAX_MULTIPLIER,
    MAX_TRIAL_DAYS,
    MAX_VISITS,
    MAX_WINDOW_DAYS,
    Checker,
)

__all__ = ["parse_tiers", "parse_trial"]

_THRESHOLD_KINDS = ("litres", "amount", "visits")


def _parse_qualify(c: Checker, value: object, path: str) -> Qualify | None:
    body = c.obj(value, path, required=("window_days",), optional=_THRESHOLD_KINDS)
    if body is None:
        return None
    before = len(c.faults)
    window = (
        c.integer(body["window_days"], path + ".window_days", low=1, high=MAX_WINDOW_DAYS)
        if "window_days" in body
        else None
    )
    litres = amount = None
    visits = None
    if body.get("litres") is not None:
        litres = c.decimal(body["litres"], path + ".litres", high=MAX_LITRES, positive=True)
    if body.get("amount") is not None:
        amount = c.decimal(body["amount"], path + ".amount", high=MAX_AMOUNT, positive=True)
    if body.get("visits") is not None:
        visits = c.integer(body["visits"], path + ".visits", low=1, high=MAX_VISITS)
    if all(body.get(kind) is None for kind in _THRESHOLD_KINDS):
        c.fault(path, "must set at least one threshold: litres, amount or visits")
    if len(c.faults) != before or window is None:
        return None
    return Qualify(litres=litres, amount=amount, visits=visits, window_days=window)


def parse_tiers(c: Checker, value: object) -> list[Tier | None]:
    """Parse tiers; a faulty tier stays as None so later indexes keep their paths."""
    if not isinstance(value, list):
        c.fault("$.tiers", "must be a list")
        return []
    if not value:
        c.fault("$.tiers", "must list at least one tier")
        return []
    tiers: list[Tier | None] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        path = f"$.tiers[{i}]"
        body = c.obj(
            item,
            path,
            required=("code", "name", "multiplier"),
            optional=("discount_per_litre", "qualify"),
        )
        if body is None:
            tiers.append(None)
            continue
        before = len(c.faults)
        code = c.code(body["code"], path + ".code") if "code" in body else None
        if code is not None:
            if code in seen:
                c.fault(path + ".code", f"tier code {code!r} is used twice")
            seen.add(code)
        name = c.text(body["name"], path + ".name") if "name" in body else None
        multiplier = (
            c.decimal(body["multiplier"], path + ".multiplier", high=MAX_MULTIPLIER, positive=True)
            if "multiplier" in body
            else None
        )
        discount = c.decimal(
            body.get("discount_per_litre", 0),
            path + ".discount_per_litre",
            high=MAX_DISCOUNT_PER_LITRE,
        )
        qualify: Qualify | None = None
        raw_qualify = body.get("qualify")
        if i == 0:
            if raw_qualify is not None:
                c.fault(path + ".qualify", "the first tier is the default and takes no qualify")
        elif raw_qualify is None:
            c.fault(path + ".qualify", "is required on every tier above the first")
        else:
            qualify = _parse_qualify(c, raw_qualify, path + ".qualify")
        if (
            len(c.faults) != before
            or code is None
            or name is None
            or multiplier is None
            or discount is None
        ):
            tiers.append(None)
            continue
        tiers.append(
            Tier(
                code=code,
                name=name,
                multiplier=multiplier,
                discount_per_litre=discount,
                qualify=qualify,
            )
        )
    _check_thresholds_rise(c, tiers)
    return tiers


def _check_thresholds_rise(c: Checker, tiers: list[Tier | None]) -> None:
    """A higher tier must not be easier to reach than a lower one on the same measure.

    Thresholds are compared when the higher tier's window is at least as long: then a lower
    number there is a sure mistake (the lower tier could never be held on that measure). A
    lower number over a shorter window can be a real, harder rule, so it is allowed.
    """
    for kind in _THRESHOLD_KINDS:
        previous: tuple[Tier, Decimal, int] | None = None
        for i, tier in enumerate(tiers):
            if tier is None or tier.qualify is None:
                continue
            raw = getattr(tier.qualify, kind)
            if raw is None:
                continue
            threshold = Decimal(raw)
            window = tier.qualify.window_days
            if previous is not None:
                lower, lower_threshold, lower_window = previous
                if threshold < lower_threshold and window >= lower_window:
                    c.fault(
                        f"$.tiers[{i}].qualify.{kind}",
                        f"{kind} threshold {threshold} is below {lower_threshold} of lower "
                        f"tier {lower.code!r}",
                    )
            previous = (tier, threshold, window)


def parse_trial(c: Checker, value: object, tier_codes: set[str] | None) -> TrialGrant | None:
    path = "$.new_member_tier"
    body = c.obj(value, path, required=("code", "days"))
    if body is None:
        return None
    code = c.code(body["code"], path + ".code") if "code" in body else None
    if code is not None and tier_codes is not None and code not in tier_codes:
        known = ", ".join(sorted(tier_codes))
        c.fault(path + ".code", f"unknown tier {code!r}; tiers are {known}")
        code = None
    days = (
        c.integer(body["days"], path + ".days", low=1, high=MAX_TRIAL_DAYS)
        if "days" in body
        else None
    )
    if code is None or days is None:
        return None
    return TrialGrant(code=code, days=days)
