"""What the screens show, assembled from services (blocking: call through a thread pool).

Kept apart from the routes so the JSON API and the HTML fragments show the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from cloud_sync.core.ruleset import RuleSet
from drivers.events import PumpStatus

from ..services.members import MemberView, member_view
from ..services.reads import member_sale_rows
from ..services.rules import ruleset_now
from ..services.sales import SaleView, list_sales
from ..services.station import Station
from ..services.status import station_status
from .live import LiveBoard

__all__ = [
    "MemberCard",
    "PumpCard",
    "Visit",
    "build_member_card",
    "pump_cards",
    "pump_dict",
    "sync_state",
]

_VISITS = 5
_BOARD_SALES = 20


@dataclass(frozen=True)
class Visit:
    ended_at: str
    pump: int
    grade: str
    litres: Decimal
    amount: Decimal
    points: int


@dataclass(frozen=True)
class MemberCard:
    member: MemberView
    tier_name: str
    discount_per_litre: Decimal
    visits: tuple[Visit, ...]

    def to_dict(self) -> dict[str, Any]:
        data = self.member.to_dict()
        data.update(
            tier_name=self.tier_name,
            discount_per_litre=f"{self.discount_per_litre:.2f}",
            recent_visits=[
                {
                    "ended_at": v.ended_at,
                    "pump": v.pump,
                    "grade": v.grade,
                    "litres": f"{v.litres:.2f}",
                    "amount": f"{v.amount:.2f}",
                    "points": v.points,
                }
                for v in self.visits
            ],
        )
        return data


@dataclass(frozen=True)
class PumpCard:
    fuelling_point: int
    state: str
    nozzle: int | None
    volume: Decimal | None
    amount: Decimal | None
    last_sale: SaleView | None


def _tier_facts(ruleset: RuleSet | None, code: str) -> tuple[str, Decimal]:
    if ruleset is None:
        return code, Decimal(0)
    try:
        tier = ruleset.tier(code)
    except KeyError:
        return code, Decimal(0)
    return tier.name, tier.discount_per_litre


def build_member_card(
    station: Station, member_id: str, view: MemberView | None = None
) -> MemberCard:
    """The member card: balance, tier and its discount, plates and the last few visits."""
    member = view if view is not None else member_view(station, member_id)
    rows = member_sale_rows(station, member.member_id, _VISITS)
    visits = tuple(
        Visit(
            ended_at=row.ended_at,
            pump=row.pump,
            grade=row.grade,
            litres=Decimal(row.litres_ml) / 1000,
            amount=Decimal(row.amount_fen) / 100,
            points=row.points,
        )
        for row in rows
    )
    name, discount = _tier_facts(ruleset_now(station), member.tier)
    return MemberCard(member, name, discount, visits)


def pump_cards(station: Station, live: LiveBoard) -> tuple[list[PumpCard], list[SaleView]]:
    """Each pump's live state (or 'unknown' when only its sales are known) and recent sales."""
    sales = list_sales(station, _BOARD_SALES)
    last: dict[int, SaleView] = {}
    for sale in sales:
        last.setdefault(sale.pump, sale)
    states: dict[int, PumpStatus] = {}
    for status in live.pumps():
        states.setdefault(status.fuelling_point, status)
    cards = []
    for fp in sorted(set(states) | set(last)):
        now = states.get(fp)
        cards.append(
            PumpCard(
                fuelling_point=fp,
                state=now.state if now else "unknown",
                nozzle=now.nozzle if now else None,
                volume=now.volume if now else None,
                amount=now.amount if now else None,
                last_sale=last.get(fp),
            )
        )
    return cards, sales


def pump_dict(status: PumpStatus) -> dict[str, Any]:
    return {
        "source": status.source,
        "fuelling_point": status.fuelling_point,
        "state": status.state,
        "nozzle": status.nozzle,
        "at": status.at.isoformat(),
        "volume": None if status.volume is None else str(status.volume),
        "amount": None if status.amount is None else str(status.amount),
    }


def sync_state(station: Station) -> dict[str, Any]:
    """station_status plus one verdict: online when the cloud answered recently."""
    status = station_status(station)
    sync = status["sync"]
    online = False
    last = sync.get("last_contact")
    if sync.get("cloud_url") and last:
        try:
            contact = datetime.fromisoformat(str(last))
        except ValueError:
            contact = None
        if contact is not None and contact.tzinfo is not None:
            fresh = timedelta(seconds=max(60, 3 * station.settings.cloud.sync_interval_s))
            online = station.now() - contact <= fresh
    status["online"] = online
    return status
