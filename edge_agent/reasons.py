"""Refusal reasons that carry values (manual-sale limits, the bill, manager corrections).

One template per code and language. A `ServiceError` raised with values renders its
English line from here (what the CLI prints); the page's i18n merges both tables into its
catalogue and renders the same template in the reader's language. So `edge sale add`,
the JSON API and the page give one reason, with the same numbers, for the same values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["REASONS", "render"]

_ZH: Final[dict[str, str]] = {
    "err.sale.litres": "升数须为 0 到 {max} 之间、最多 {places} 位小数的数，收到 {value}",
    "err.sale.amount": "金额须为 0 到 {max} 元之间、最多 {places} 位小数的数，收到 {value}",
    "err.sale.unit_price": "单价须为 0 到 {max} 元之间、最多 {places} 位小数的数，收到 {value}",
    "err.sale.pump_range": "油机号须为 1 到 99，收到 {pump}",
    "err.sale.nozzle_range": "油枪号须为 1 到 99，收到 {nozzle}",
    "err.sale.grade_unknown": "油品 {grade} 不在现行规则（第 {version} 版）中，可选：{known}",
    "err.sale.litres_range": "升数须大于 0 且每笔不超过 {max} 升，收到 {litres} 升",
    "err.sale.price_band": "单价 {price} 元/升不在油品 {grade} 的允许范围 {low}–{high} 元/升内",
    "err.sale.price_recent": (
        "单价 {price} 元/升偏离油品 {grade} 本站近期价格 {recent} 元/升超过 {pct}%"
        "（允许 {low}–{high} 元/升）"
    ),
    "err.sale.amount_mismatch": (
        "金额 {amount} 元与 升数×单价（{litres} × {price} = {expected} 元）相差超过 {tolerance} 元"
    ),
    "err.sale.ended_future": "结束时间 {at} 晚于当前时间（允许时钟误差 {skew} 秒）",
    "err.sale.ended_old": "结束时间 {at} 早于 {days} 天前，不能补录",
    "err.redeem.min_points": "单次兑换至少 {min_points} 积分（{points_per_yuan} 积分抵 1 元）",
    "err.redeem.not_whole_fen": "兑换积分须为 {step} 的整数倍（{points_per_yuan} 积分抵 1 元）",
    "err.redeem.over_bill": (
        "{points} 积分可抵 ¥{value}，超过本单应付 ¥{due}；本单最多可用 {max_points} 积分"
    ),
    "err.bill.amount": "账单金额须为 0.01 到 {max} 元",
    "err.bill.litres": "账单升数须为 0 到 {max} 升",
    "err.bill.one_source": "请选择一笔交易或输入账单金额（二选一）",
    "err.bill.other_member": "该交易已关联其他会员，不能用本会员的积分抵扣",
    "err.reason.too_long": "原因不超过 {max} 个字",
    "err.adjust.conflict": "该调整编号已按不同内容记录",
    "err.sale.key_conflict": "该补录编号已按不同内容记录",
}

_EN: Final[dict[str, str]] = {
    "err.sale.litres": (
        "litres must be a number from 0 to {max} with at most {places} decimal places, got {value}"
    ),
    "err.sale.amount": (
        "amount must be a number from 0 to {max} yuan with at most {places} decimal places, "
        "got {value}"
    ),
    "err.sale.unit_price": (
        "unit price must be a number from 0 to {max} yuan with at most {places} decimal "
        "places, got {value}"
    ),
    "err.sale.pump_range": "pump must be 1 to 99, got {pump}",
    "err.sale.nozzle_range": "nozzle must be 1 to 99, got {nozzle}",
    "err.sale.grade_unknown": (
        "grade {grade} is not in the rule set in force (version {version}); choose one of {known}"
    ),
    "err.sale.litres_range": (
        "litres must be more than 0 and at most {max} L per sale, got {litres}"
    ),
    "err.sale.price_band": (
        "unit price {price} yuan/L is outside {low}-{high} yuan/L allowed for grade {grade}"
    ),
    "err.sale.price_recent": (
        "unit price {price} yuan/L is more than {pct}% off grade {grade}'s recent price here, "
        "{recent} yuan/L (allowed {low}-{high})"
    ),
    "err.sale.amount_mismatch": (
        "amount {amount} yuan differs from litres x price ({litres} x {price} = {expected} yuan) "
        "by more than {tolerance} yuan"
    ),
    "err.sale.ended_future": "end time {at} is in the future (beyond {skew} s of clock skew)",
    "err.sale.ended_old": "end time {at} is more than {days} days ago; it cannot be keyed in",
    "err.redeem.min_points": (
        "at least {min_points} points per redemption ({points_per_yuan} points buy 1 yuan)"
    ),
    "err.redeem.not_whole_fen": (
        "points must be a multiple of {step} ({points_per_yuan} points buy 1 yuan)"
    ),
    "err.redeem.over_bill": (
        "{points} points are worth ¥{value}, more than the ¥{due} due on this bill; "
        "at most {max_points} points"
    ),
    "err.bill.amount": "a bill is 0.01 to {max} yuan",
    "err.bill.litres": "a bill's litres are 0 to {max}",
    "err.bill.one_source": "give a sale or an entered bill, not both",
    "err.bill.other_member": "another member is on this sale; their bill is not this member's",
    "err.reason.too_long": "a reason is at most {max} characters",
    "err.adjust.conflict": "this adjustment id was booked differently",
    "err.sale.key_conflict": "this manual sale's key was recorded with other values",
}

REASONS: Final[Mapping[str, Mapping[str, str]]] = {"zh-CN": _ZH, "en": _EN}


class _Blank(dict[str, object]):
    """A value the caller did not give shows as an ellipsis, never as `{name}`."""

    def __missing__(self, key: str) -> str:
        return "…"


def render(template: str, values: Mapping[str, object]) -> str:
    """`template` with `values`; a missing value never raises (a refusal must be shown)."""
    try:
        return template.format_map(_Blank(values))
    except (ValueError, IndexError, AttributeError):  # a malformed template: show it as is
        return template
