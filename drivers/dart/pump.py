"""What one DART pump is doing, rebuilt from its DC transactions; pure, no I/O, no clock.

The pump keeps no transaction number and no clock, so a finished filling is recognised from
the status sequence: DC1 4 -> 5/6, the nozzle going back in while filling, or a pump that is
already "completed" the first time we see it (an agent restart). Volume and amount come from
the DC2 the pump sends from then on (its display holds them until the next reset), nozzle and
price from the filling's DC3, and the volume total from a DC101 answering a totals request
made after the completion: that total is what lets the sale's key survive a restart.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from .identify import nozzle_behind
from .messages import (
    DC1Status,
    DC2VolumeAmount,
    DC3PriceNozzle,
    DC101Totals,
    Decimals,
    FromPump,
    PumpState,
)

__all__ = ["BoardUpdate", "CompletedFilling", "PumpTracker"]

_COMPLETED = (PumpState.FILLING_COMPLETED, PumpState.MAX_REACHED)
_NEW_SALE = (PumpState.RESET, PumpState.AUTHORIZED)
_DISPENSING = (PumpState.AUTHORIZED, PumpState.FILLING)
_BOARD = {
    PumpState.NOT_PROGRAMMED: "error",
    PumpState.AUTHORIZED: "authorized",
    PumpState.FILLING: "filling",
    PumpState.SUSPENDED: "filling",
    PumpState.SWITCHED_OFF: "offline",
}


@dataclass(frozen=True)
class BoardUpdate:
    """A change of what the cashier's pump board should show."""

    state: str  # idle | calling | authorized | filling | completed | offline | error
    nozzle: int | None
    volume: Decimal | None = None
    amount: Decimal | None = None


@dataclass(frozen=True)
class CompletedFilling:
    nozzle: int
    volume: Decimal
    amount: Decimal
    unit_price: Decimal | None
    completed_at: datetime
    final_state: PumpState
    seen_live: bool  # False: the pump was already completed when we first saw it
    volume_total: Decimal | None  # None: no totals, the driver falls back to a fingerprint
    nozzle_inferred: bool = False  # nozzle and price recovered from the amount (identify.py)
    nozzle_unknown: bool = False  # no nozzle fits: recorded with its figures, nozzle unknown
    # Which completion of the tracker this is, for `acknowledge`: the tracker may move on to
    # the next filling (a listener's bus, reset by its own controller) while this one is
    # still being committed.
    ticket: object = field(default=None, compare=False, repr=False)


@dataclass
class _Pending:
    completed_at: datetime
    final_state: PumpState
    seen_live: bool
    nozzle: int | None
    price: Decimal | None
    volume: Decimal | None = None
    amount: Decimal | None = None
    nozzle_inferred: bool = False
    nozzle_unknown: bool = False
    provisional: tuple[Decimal, Decimal] | None = None  # the last DC2 seen while filling
    totals_asked: bool = False
    volume_total: Decimal | None = None
    without_totals: bool = False
    frozen: bool = False  # the pump moved on: what it shows now is not this sale
    done: bool = False  # acknowledged by the application, or dropped


UNKNOWN_NOZZLE = 0
"""Nozzle number of a completed filling whose nozzle the pump no longer shows."""


class PumpTracker:
    """Feed it each decoded pump block with `observe`; ask it what is ready or missing."""

    def __init__(self, decimals: Decimals | None = None, nozzles: Collection[int] = ()) -> None:
        self._decimals = decimals or Decimals()
        self._nozzles = tuple(nozzles)
        self._known_prices: dict[int, Decimal] = {}
        self.state: PumpState | None = None
        self.nozzle_out = False
        self.nozzle: int | None = None  # last selected nozzle (DC3 keeps it after hang-up)
        self._price: Decimal | None = None
        self._volume: Decimal | None = None
        self._amount: Decimal | None = None
        self._filling: tuple[int, Decimal] | None = None  # nozzle and price while authorized
        self._latched_volume: Decimal | None = None  # this filling's completion is recorded
        self._pending: _Pending | None = None
        self._board: BoardUpdate | None = None
        self._at = datetime.min.replace(tzinfo=UTC)
        self.dropped: list[str] = []  # why a completion could not become a sale

    # -- what the driver asks ------------------------------------------------------------

    @property
    def sale_open(self) -> bool:
        """A completion not yet acknowledged: the pump must not be reset."""
        return self._pending is not None and not self._pending.done

    @property
    def wants_filling_info(self) -> bool:
        pending = self._pending
        if pending is None or pending.done:
            return False
        return pending.volume is None or pending.nozzle is None

    @property
    def wants_totals(self) -> int | None:
        """The nozzle whose totals are needed to finish the open sale."""
        pending = self._pending
        if pending is None or pending.done or pending.without_totals or pending.nozzle is None:
            return None
        return pending.nozzle if pending.volume_total is None else None

    def totals_requested(self, counter: int) -> None:
        """A CD101 for `counter` went to the pump after the completion: its answer counts."""
        pending = self._pending
        if pending is not None and not pending.done and counter == pending.nozzle:
            pending.totals_asked = True

    def give_up_totals(self) -> None:
        """No totals will come: let the sale out with a fingerprint key."""
        if self._pending is not None and not self._pending.done:
            self._pending.without_totals = True

    def ready_sale(self) -> CompletedFilling | None:
        pending = self._pending
        if pending is None or pending.done or pending.nozzle is None:
            return None
        if pending.volume is None or pending.amount is None:
            return None
        if pending.volume_total is None and not pending.without_totals:
            return None
        return CompletedFilling(
            nozzle=pending.nozzle,
            volume=pending.volume,
            amount=pending.amount,
            unit_price=pending.price,
            completed_at=pending.completed_at,
            final_state=pending.final_state,
            seen_live=pending.seen_live,
            volume_total=pending.volume_total,
            nozzle_inferred=pending.nozzle_inferred,
            nozzle_unknown=pending.nozzle_unknown,
            ticket=pending,
        )

    def acknowledge(self, filling: CompletedFilling | None = None) -> None:
        """The application has `filling` (by default the open sale): the pump may be reset."""
        pending = self._pending if filling is None else filling.ticket
        if isinstance(pending, _Pending):
            pending.done = True

    def abandon(self, reason: str) -> None:
        """The pump never sent the finished filling's data: use the last figures seen while
        it was filling if there are any (a sale is never dropped for a lost answer), else
        give up with `reason`."""
        pending = self._pending
        if pending is None or pending.done:
            return
        if pending.volume is None and pending.provisional is not None:
            pending.volume, pending.amount = pending.provisional
        if pending.volume is None or pending.nozzle is None:
            pending.done = True
            self.dropped.append(reason)

    def mark_offline(self) -> BoardUpdate | None:
        return self._show(BoardUpdate("offline", self.nozzle))

    # -- what the pump says --------------------------------------------------------------

    def observe(self, messages: Sequence[FromPump], at: datetime) -> BoardUpdate | None:
        """Apply one block (its transactions happened together); returns a board change."""
        self._at = at
        status: PumpState | None = None
        fresh_dc2 = False
        for message in messages:
            if isinstance(message, DC2VolumeAmount):
                self._take_volume(message)
                fresh_dc2 = True
            elif isinstance(message, DC3PriceNozzle):
                self._take_nozzle(message)
            elif isinstance(message, DC1Status):
                status = message.state
        if status is not None:
            self._take_status(status)
        self._update_pending(messages, fresh_dc2)
        return self._board_change()

    def _take_volume(self, message: DC2VolumeAmount) -> None:
        self._volume, self._amount = message.volume, message.amount
        latched = self._latched_volume
        if latched is not None and message.volume < latched:
            self._latched_volume = None  # the display restarted: the pump was reset
            self._leave_completed()

    def _take_nozzle(self, message: DC3PriceNozzle) -> None:
        was_out, self.nozzle_out = self.nozzle_out, message.nozzle_out
        if message.nozzle:
            self.nozzle, self._price = message.nozzle, message.price
            self._known_prices[message.nozzle] = message.price
            if self.state in _DISPENSING:
                self._filling = (message.nozzle, message.price)
        hung_up = was_out and not message.nozzle_out
        if hung_up and self.state is PumpState.FILLING and (self._volume or 0) > 0:
            self._complete(PumpState.FILLING_COMPLETED, seen_live=True)

    def _take_status(self, status: PumpState) -> None:
        previous, self.state = self.state, status
        if status in _NEW_SALE:
            self._latched_volume = None
            self._filling = None
            self._leave_completed()
        lifted = self.nozzle if self.nozzle_out else None
        if status in _DISPENSING and lifted and self._price is not None and not self._filling:
            self._filling = (lifted, self._price)  # the nozzle lifted before authorization
        if status in _COMPLETED and previous not in _COMPLETED:
            self._complete(status, seen_live=previous is not None)

    def _complete(self, final: PumpState, *, seen_live: bool) -> None:
        if self._latched_volume is not None:
            return  # the same filling, reported twice (hang-up, then status)
        self._latched_volume = self._volume if self._volume is not None else Decimal(0)
        filling = self._filling if seen_live else None
        nozzle, price = filling if filling is not None else (None, None)
        self._pending = _Pending(self._at, final, seen_live, nozzle, price)
        if seen_live and self._volume is not None and self._amount is not None:
            self._pending.provisional = (self._volume, self._amount)

    def _leave_completed(self) -> None:
        """The pump was reset: an open sale goes out without totals, or is dropped."""
        pending = self._pending
        if pending is None or pending.done:
            return
        pending.without_totals = pending.volume_total is None
        pending.frozen = True
        if self.ready_sale() is None:
            pending.done = True
            self.dropped.append("the pump was reset before its completed filling could be read")

    def _update_pending(self, messages: Sequence[FromPump], fresh_dc2: bool) -> None:
        pending = self._pending
        if pending is None or pending.done or pending.frozen:
            return
        if fresh_dc2:
            pending.volume, pending.amount = self._volume, self._amount
        if pending.nozzle is None and any(isinstance(m, DC3PriceNozzle) for m in messages):
            self._adopt_nozzle(pending)
        for message in messages:
            if not isinstance(message, DC101Totals) or not pending.totals_asked:
                continue
            if message.counter == pending.nozzle:
                pending.volume_total = message.volume_total
        if pending.volume is not None and pending.volume <= 0:
            pending.done = True  # lifted and hung up without fuel: not a sale

    def _adopt_nozzle(self, pending: _Pending) -> None:
        """Completion seen after the fact: DC3 names its nozzle, unless a lift hides it."""
        if not self.nozzle_out:
            pending.nozzle, pending.price = self.nozzle, self._price
            return
        if pending.volume is None or pending.amount is None:
            return  # decide once the display's numbers are in
        found = nozzle_behind(
            volume=pending.volume,
            amount=pending.amount,
            decimals=self._decimals,
            known_prices=self._known_prices,
            nozzles=self._nozzles,
        )
        if found is None:
            # Never drop a sale the pump reports: record its exact figures with the nozzle
            # unknown (no grade, so no points until a manager corrects it).
            pending.nozzle, pending.price = UNKNOWN_NOZZLE, None
            pending.nozzle_unknown = True
            pending.without_totals = True
            return
        pending.nozzle, pending.price = found
        pending.nozzle_inferred = True

    def _board_change(self) -> BoardUpdate | None:
        if self.state is None:
            return None
        update = BoardUpdate(_board_state(self.state, self.nozzle_out), self.nozzle)
        if update.state == "completed":
            update = BoardUpdate("completed", self.nozzle, self._volume, self._amount)
        return self._show(update)

    def _show(self, update: BoardUpdate) -> BoardUpdate | None:
        if update == self._board:
            return None
        self._board = update
        return update


def _board_state(state: PumpState, nozzle_out: bool) -> str:
    if state is PumpState.RESET:
        return "calling" if nozzle_out else "idle"
    if state in _COMPLETED:
        return "calling" if nozzle_out and state is PumpState.FILLING_COMPLETED else "completed"
    return _BOARD[state]
