"""A receipt laid out for an 80 mm roll: a list of rows (title, label and value, text, rule),
independent of how they are printed. Times print as they are given (the station's zone)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from .model import Receipt, fen_text

__all__ = ["Row", "layout"]

RowKind = Literal["title", "center", "pair", "big", "text", "rule"]

_TITLES = {"attach": "会员积分凭条", "redemption": "积分兑换凭条", "signup": "会员注册凭条"}
_FOOTER = "感谢光临 欢迎再来"


@dataclass(frozen=True)
class Row:
    kind: RowKind
    left: str = ""
    right: str = ""


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _signed(points: int) -> str:
    return f"{points:+d}"


def layout(receipt: Receipt) -> list[Row]:
    """The rows of a receipt, top to bottom."""
    rows = [
        Row("title", receipt.header),
        Row("center", _TITLES[receipt.kind]),
        Row("rule"),
        Row("pair", "单号", receipt.number),
    ]
    fuel = receipt.fuel
    if fuel is not None:
        rows += [
            Row("pair", "交易时间", _time(fuel.ended_at)),
            Row("pair", "油枪", f"{fuel.pump}号"),
            Row("pair", "油品", fuel.grade),
            Row("pair", "升数", f"{fuel.litres:.2f}升"),
        ]
        if fuel.unit_price is not None:
            rows.append(Row("pair", "单价", f"￥{fuel.unit_price:.2f}/升"))
        rows.append(Row("pair", "金额", f"￥{fen_text(fuel.amount_fen)}"))
        if fuel.discount_fen:
            rows.append(Row("pair", "会员优惠", f"-￥{fen_text(fuel.discount_fen)}"))
        rows.append(Row("big", "应收", f"￥{fen_text(fuel.collect_fen)}"))
        rows.append(Row("rule"))
    rows += [
        Row("pair", "会员", receipt.phone_masked),
        Row("pair", "等级", receipt.tier_name),
    ]
    if receipt.points_earned is not None:
        rows.append(Row("pair", "本次积分", _signed(receipt.points_earned)))
        rows += [Row("text", f"  {step}") for step in receipt.steps]
    if receipt.redeemed_points is not None:
        rows.append(Row("pair", "兑换积分", _signed(-receipt.redeemed_points)))
    if receipt.redeemed_fen is not None:
        rows.append(Row("big", "抵扣金额", f"￥{fen_text(receipt.redeemed_fen)}"))
    rows += [
        Row("pair", "积分余额", str(receipt.balance)),
        Row("rule"),
        Row("pair", "打印时间", _time(receipt.printed_at)),
        Row("pair", "站点", receipt.station_id),
        Row("center", receipt.footer or _FOOTER),
    ]
    return rows
