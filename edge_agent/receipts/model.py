"""What a member's receipt says: one model for an attach (a fill that earned points), a
redemption and a sign-up. Amounts are fen, points integers; text is already in the words
the receipt prints (zh-CN, as station printers and members expect)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

__all__ = ["FuelLine", "Receipt", "ReceiptKind", "fen_text"]

ReceiptKind = Literal["attach", "redemption", "signup"]


def fen_text(fen: int) -> str:
    """Fen as yuan with two decimals: 12345 -> '123.45'."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


@dataclass(frozen=True)
class FuelLine:
    """The fill on an attach receipt: the dispenser's facts and the tier discount."""

    pump: int
    grade: str  # the grade's name as the rule set says (92#汽油), else its code
    litres: Decimal
    unit_price: Decimal | None
    amount_fen: int
    discount_fen: int  # the tier's per-litre discount on this fill
    ended_at: datetime

    @property
    def collect_fen(self) -> int:
        """What the member pays after the tier discount."""
        return self.amount_fen - self.discount_fen


@dataclass(frozen=True)
class Receipt:
    kind: ReceiptKind
    header: str  # the station's name on the receipt (`[printer] header`, else its id)
    station_id: str
    printed_at: datetime
    number: str  # the sale's short number, the redemption's or the member's short id
    phone_masked: str
    tier_name: str
    balance: int  # the member's spendable points when the receipt was made
    fuel: FuelLine | None = None
    points_earned: int | None = None
    steps: tuple[str, ...] = ()  # how the points were reached, one short line per step
    redeemed_points: int | None = None
    redeemed_fen: int | None = None
    footer: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON for the page's printable receipt: money as yuan text, points as integers."""
        fuel = self.fuel
        return {
            "kind": self.kind,
            "header": self.header,
            "station_id": self.station_id,
            "printed_at": self.printed_at.isoformat(),
            "number": self.number,
            "phone_masked": self.phone_masked,
            "tier_name": self.tier_name,
            "balance": self.balance,
            "fuel": None
            if fuel is None
            else {
                "pump": fuel.pump,
                "grade": fuel.grade,
                "litres": f"{fuel.litres:.2f}",
                "unit_price": None if fuel.unit_price is None else f"{fuel.unit_price:.2f}",
                "amount": fen_text(fuel.amount_fen),
                "discount": fen_text(fuel.discount_fen),
                "collect": fen_text(fuel.collect_fen),
                "ended_at": fuel.ended_at.isoformat(),
            },
            "points_earned": self.points_earned,
            "steps": list(self.steps),
            "redeemed_points": self.redeemed_points,
            "redeemed": None if self.redeemed_fen is None else fen_text(self.redeemed_fen),
            "footer": self.footer,
        }
