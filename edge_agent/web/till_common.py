"""Small pieces every till fragment shares: the answer for a refusal, the receipt slip,
the receipt's steps in words, and the customer panel loaded off the event loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from ..services.members import MemberView
from .auth import Session
from .context import render, web_context
from .i18n import translate
from .till_views import Customer, customer_of

__all__ = ["Slip", "answer_error", "load_customer", "slip_now", "steps_in_words"]


@dataclass(frozen=True)
class Slip:
    """An 80 mm receipt's content: a title, label/value lines, steps and the totals."""

    station: str
    at: str
    title: str
    lines: list[tuple[str, str]] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    totals: list[tuple[str, str]] = field(default_factory=list)


def slip_now(request: Request, title: str, **parts: Any) -> Slip:
    station = web_context(request).station
    at = station.now().astimezone(station.zone).strftime("%Y-%m-%d %H:%M:%S")
    return Slip(station=station.station_id, at=at, title=title, **parts)


def answer_error(
    request: Request, session: Session, message: str, status: int, **values: Any
) -> HTMLResponse:
    """A refusal for the answer area (the reason, said in the cashier's language)."""
    return render(
        request, "_error.html", status=status, session=session, message=message, code="", **values
    )


def steps_in_words(lang: str, receipt: dict[str, Any] | None) -> list[str]:
    """The points receipt's steps as the cashier reads them (base, tier, bonus, rounding)."""
    if not receipt:
        return []
    lines = []
    for step in receipt.get("steps", []):
        key = f"step.{step.get('code')}"
        value, factor = step.get("value", ""), step.get("factor", "")
        text = translate(lang, key, value=value, factor=factor)
        lines.append(text if text != key else str(step.get("description", "")))
    return lines


async def load_customer(
    request: Request,
    member_id: str,
    view: MemberView | None = None,
    *,
    bill_sale: str | None = None,
) -> Customer:
    station = web_context(request).station
    return await run_in_threadpool(
        lambda: customer_of(station, member_id, view, bill_sale=bill_sale)
    )
