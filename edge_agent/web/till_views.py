"""What the till screen shows, shaped from the services (blocking: call through a thread pool).

The pumps board, the sales list (all pumps, or one pump's sales still waiting for a member),
the current customer with their redemption terms, and the bill a redemption is taken off.
Pure arithmetic on the redemption terms lives in `till_terms`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from drivers.events import PumpStatus

from ..services.members import MemberView
from ..services.rules import ruleset_now
from ..services.sales import SaleView, list_sales, sale_view
from ..services.station import Station
from ..services.till_reads import Expiring, expiring_points, member_labels
from .live import LiveBoard
from .till_terms import Bill, RedeemTerms, bill_of_sale, redeem_terms
from .views import MemberCard, build_member_card

__all__ = [
    "Customer",
    "PumpTile",
    "SaleLine",
    "SalesBoard",
    "clock_text",
    "customer_of",
    "sale_line",
    "sale_number",
    "till_board",
    "till_sales",
]

SALES_SHOWN = 30
_RECENT_SCAN = 200


@dataclass(frozen=True)
class SaleLine:
    """One row of the sales list."""

    sale: SaleView
    number: str  # the short sale number people read out and receipts print
    clock: str  # local HH:MM:SS
    member: str | None  # the attached member's masked phone
    attachable: bool  # no member yet, not reversed, within the attach window


@dataclass(frozen=True)
class PumpTile:
    fuelling_point: int
    state: str
    volume: Decimal | None
    amount: Decimal | None
    waiting: int  # recent sales of this pump still waiting for a member


@dataclass(frozen=True)
class SalesBoard:
    lines: list[SaleLine]
    pump: int | None  # None: every pump's recent sales


@dataclass(frozen=True)
class Customer:
    """The member at the counter: the card, tier rank (its colour), expiry dates, terms."""

    card: MemberCard
    tier_rank: int
    expiring: list[Expiring]
    terms: RedeemTerms | None  # None: no rule set loaded
    bill: Bill | None  # the sale a redemption is taken off, when one was chosen


def sale_number(sale_id: str) -> str:
    """The last six characters of the sale id, upper case: short enough to read out."""
    return sale_id.replace("-", "")[-6:].upper()


def clock_text(station: Station, iso: str) -> str:
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if moment.tzinfo is not None:
        moment = moment.astimezone(station.zone)
    return moment.strftime("%H:%M:%S")


def _attachable(station: Station, sale: SaleView) -> bool:
    if sale.member_id is not None or sale.status != "recorded":
        return False
    window = timedelta(minutes=station.settings.station.attach_window_min)
    try:
        ended = datetime.fromisoformat(sale.ended_at)
    except ValueError:
        return False
    return ended.tzinfo is None or station.now() - ended <= window


def _line(station: Station, sale: SaleView, labels: dict[str, str]) -> SaleLine:
    return SaleLine(
        sale=sale,
        number=sale_number(sale.sale_id),
        clock=clock_text(station, sale.ended_at),
        member=None if sale.member_id is None else labels.get(sale.member_id, "—"),
        attachable=_attachable(station, sale),
    )


def sale_line(station: Station, sale: SaleView) -> SaleLine:
    labels = member_labels(station, [sale.member_id] if sale.member_id else [])
    return _line(station, sale, labels)


def till_sales(station: Station, pump: int | None) -> SalesBoard:
    """Every pump's latest sales, or one pump's sales still waiting for a member."""
    if pump is None:
        sales = list_sales(station, SALES_SHOWN)
    else:
        recent = list_sales(station, _RECENT_SCAN)
        sales = [s for s in recent if s.pump == pump and _attachable(station, s)][:SALES_SHOWN]
    labels = member_labels(station, [s.member_id for s in sales if s.member_id])
    return SalesBoard([_line(station, s, labels) for s in sales], pump)


def till_board(station: Station, live: LiveBoard) -> list[PumpTile]:
    """Each pump's live state and how many of its recent sales wait for a member."""
    recent = list_sales(station, _RECENT_SCAN)
    waiting: dict[int, int] = {}
    for sale in recent:
        waiting.setdefault(sale.pump, 0)
        if _attachable(station, sale):
            waiting[sale.pump] += 1
    states: dict[int, PumpStatus] = {}
    for status in live.pumps():
        states.setdefault(status.fuelling_point, status)
    tiles = []
    for fp in sorted(set(states) | set(waiting)):
        now = states.get(fp)
        tiles.append(
            PumpTile(
                fuelling_point=fp,
                state=now.state if now else "unknown",
                volume=now.volume if now else None,
                amount=now.amount if now else None,
                waiting=waiting.get(fp, 0),
            )
        )
    return tiles


def customer_of(
    station: Station,
    member_id: str,
    view: MemberView | None = None,
    *,
    bill_sale: str | None = None,
) -> Customer:
    """The customer panel for a member; `bill_sale` names the sale to redeem against."""
    card = build_member_card(station, member_id, view)
    ruleset = ruleset_now(station)
    rank = 0
    terms = None
    if ruleset is not None:
        terms = redeem_terms(ruleset.redeem, card.member.points)
        try:
            rank = ruleset.tier_rank(card.member.tier)
        except KeyError:
            rank = 0
    bill = None
    if bill_sale:
        sale = sale_view(station, bill_sale)
        if sale.member_id == card.member.member_id and sale.status == "recorded":
            bill = bill_of_sale(sale, sale_number(sale.sale_id))
    expiring = expiring_points(station, card.member.member_id)
    return Customer(card, rank, expiring, terms, bill)
