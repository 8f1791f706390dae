"""What the till screen shows, shaped from the services (blocking: call through a thread pool).

The pumps board, the sales list (all pumps, or one pump's sales still waiting for a member),
the current customer with their redemption terms, and the bill a redemption is taken off
(the figures are the redemption service's quote, so the till shows what would be booked).
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from drivers.events import PumpStatus

from ..errors import ServiceError
from ..services.bill import BillQuote
from ..services.members import MemberView
from ..services.redemption import Bill, quote_redemption
from ..services.rules import ruleset_now
from ..services.sales import SaleView, list_sales
from ..services.station import Station
from ..services.till import (
    MAX_PUMP_SALES,
    PickItem,
    TillSale,
    pump_sales,
    sale_no,
)
from ..services.till import till_sales as till_view
from ..services.till_reads import Expiring, expiring_points, member_labels
from .auth import Session
from .live import LiveBoard
from .views import MemberCard, build_member_card

__all__ = [
    "Customer",
    "PickLine",
    "PumpTile",
    "SaleLine",
    "SalesBoard",
    "Terms",
    "clock_text",
    "customer_of",
    "pick_lines",
    "sale_line",
    "sale_number",
    "sales_board",
    "terms_of",
    "till_board",
]

SALES_SHOWN = 30


@dataclass(frozen=True)
class SaleLine:
    """One row of the sales list: the sale and what the till can do with it now."""

    sale: SaleView
    number: str  # the short sale number people read out and receipts print
    clock: str  # local HH:MM:SS
    member: str | None  # the attached member's masked phone
    attachable: bool  # no member yet, not reversed, within the attach window
    can_undo: bool  # a member is on it and the attach can still be undone (by a manager)
    attach_no: int  # the attach an undo would undo
    till: TillSale | None = None  # who may undo it (None: nobody)

    def undoable_by(self, session: Session | None) -> bool:
        """This login may undo the attach now: its own cashier soon after, or a manager."""
        if session is None or self.till is None:
            return False
        return self.till.undoable_by(f"user:{session.user}", manager=session.is_manager)


@dataclass(frozen=True)
class PumpTile:
    fuelling_point: int
    state: str
    volume: Decimal | None
    amount: Decimal | None
    waiting: int  # recent sales of this pump still waiting for a member
    more: bool  # at least `waiting`: counting stops there


@dataclass(frozen=True)
class SalesBoard:
    lines: list[SaleLine]
    pump: int | None  # None: every pump's recent sales


@dataclass(frozen=True)
class Terms:
    """A redemption quote as the till shows it: the rate, the minimum, "max off", "use
    all" and, against a bill (a sale or an entered amount), what is left to collect."""

    quote: BillQuote
    sale_id: str | None = None  # the sale billed
    sale_no: str | None = None

    @property
    def points_per_yuan(self) -> int:
        return self.quote.facts.points_per_yuan

    @property
    def least(self) -> int:
        """The fewest points one redemption can use: the minimum, in whole steps."""
        step = self.quote.step
        return max(step, -(-self.quote.facts.min_points // step) * step)

    @property
    def has_bill(self) -> bool:
        return self.quote.facts.bill_fen is not None

    def value_fen(self, points: int) -> int:
        return points * 100 // self.points_per_yuan


@dataclass(frozen=True)
class Customer:
    """The member at the counter: the card, tier rank (its colour), expiry dates, terms."""

    card: MemberCard
    tier_rank: int
    expiring: list[Expiring]
    terms: Terms | None  # None: nothing can be quoted (no rule set in force)


def sale_number(sale_id: str) -> str:
    """The sale's short number, as the receipts print it (services.till.sale_no)."""
    return sale_no(sale_id)


def clock_text(station: Station, iso: str) -> str:
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if moment.tzinfo is not None:
        moment = moment.astimezone(station.zone)
    return moment.strftime("%H:%M:%S")


def _lines(station: Station, sales: list[TillSale]) -> list[SaleLine]:
    labels = member_labels(station, [t.sale.member_id for t in sales if t.sale.member_id])
    return [
        SaleLine(
            sale=t.sale,
            number=t.sale_no,
            clock=clock_text(station, t.sale.ended_at),
            member=None if t.sale.member_id is None else labels.get(t.sale.member_id, "—"),
            attachable=t.can_attach,
            can_undo=t.can_undo,
            attach_no=t.attach_no,
            till=t,
        )
        for t in sales
    ]


def sale_line(station: Station, sale: SaleView) -> SaleLine:
    """One sale's row as it stands now."""
    found = till_view(station, [sale.sale_id])
    if not found:  # the sale itself was read a moment ago: only a race could get here
        return SaleLine(
            sale, sale_no(sale.sale_id), clock_text(station, sale.ended_at), None, False, False, 1
        )
    return _lines(station, found)[0]


def sales_board(station: Station, pump: int | None) -> SalesBoard:
    """Every pump's latest sales, or one pump's sales still waiting for a member."""
    if pump is None:
        ids = [s.sale_id for s in list_sales(station, SALES_SHOWN)]
        sales = till_view(station, ids)
    else:
        sales = pump_sales(station, pump, limit=MAX_PUMP_SALES)
    return SalesBoard(_lines(station, sales), pump)


def till_board(station: Station, live: LiveBoard) -> list[PumpTile]:
    """Each pump's live state and how many of its recent sales wait for a member."""
    states: dict[int, PumpStatus] = {}
    for status in live.pumps():
        states.setdefault(status.fuelling_point, status)
    pumps = set(states) | {s.pump for s in list_sales(station, SALES_SHOWN)}
    # Counted pump by pump: each count stops at MAX_PUMP_SALES, so a busy forecourt's
    # refresh costs the same at the end of a shift as at its start.
    waiting = {fp: len(pump_sales(station, fp, limit=MAX_PUMP_SALES)) for fp in pumps}
    tiles = []
    for fp in sorted(pumps):
        now = states.get(fp)
        tiles.append(
            PumpTile(
                fuelling_point=fp,
                state=now.state if now else "unknown",
                volume=now.volume if now else None,
                amount=now.amount if now else None,
                waiting=waiting.get(fp, 0),
                more=waiting.get(fp, 0) >= MAX_PUMP_SALES,
            )
        )
    return tiles


@dataclass(frozen=True)
class PickLine:
    """A line of the last-4 pick list, with the tier's name and colour."""

    item: PickItem
    tier_name: str
    tier_rank: int


def pick_lines(station: Station, items: tuple[PickItem, ...]) -> list[PickLine]:
    ruleset = ruleset_now(station)
    lines = []
    for item in items:
        name, rank = item.tier, 0
        if ruleset is not None:
            with suppress(KeyError):  # a tier the rules in force no longer name
                name, rank = ruleset.tier(item.tier).name, ruleset.tier_rank(item.tier)
        lines.append(PickLine(item, name, rank))
    return lines


def terms_of(
    station: Station, member_id: str, bill: Bill | None = None, points: int | None = None
) -> Terms:
    """The redemption service's quote for this member (and bill, and points)."""
    figures = quote_redemption(station, member_id, bill, points)
    sale_id = None if bill is None else bill.sale_id
    return Terms(figures, sale_id, None if sale_id is None else sale_no(sale_id))


def customer_of(
    station: Station,
    member_id: str,
    view: MemberView | None = None,
    *,
    bill_sale: str | None = None,
) -> Customer:
    """The customer panel for a member; `bill_sale` names the sale to redeem against."""
    card = build_member_card(station, member_id, view)
    member = card.member.member_id
    ruleset = ruleset_now(station)
    rank = 0
    if ruleset is not None:
        with suppress(KeyError):  # a tier the rules in force no longer name
            rank = ruleset.tier_rank(card.member.tier)
    terms = None
    for bill in ([Bill(sale_id=bill_sale)] if bill_sale else []) + [None]:
        try:
            terms = terms_of(station, member, bill)
        except ServiceError:  # the sale was reversed or is another's: no bill, then none
            continue
        break
    return Customer(card, rank, expiring_points(station, member), terms)
