"""Forms that take the customer panel's place on the till: sign-up and (managers) manual
sale entry. A refused form comes back with every field as typed, the bad one marked, and
the reason in the answer area; the search box stays where it is."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from cloud_sync.core.identity import IdentityError, normalize_phone, normalize_plate

from ..errors import ServiceError
from ..services.manual_sales import manual_sale_form, manual_source_key
from ..services.members import MemberView, find_member, register_member
from ..services.sales import SaleInput, record_sale
from ..services.station import Station
from .auth import Session
from .context import (
    CurrentSession,
    ManagerSession,
    WriteSession,
    lang_of,
    manager_page_session,
    render,
    web_context,
)
from .i18n import error_text, refusal_text, translate
from .till_common import load_customer, slip_now
from .till_views import sale_number

__all__ = [
    "ManualNumbers",
    "forms_router",
    "manual_field",
    "parse_manual",
    "signup_errors",
    "signup_field",
]

_Text = Annotated[str, Form(max_length=64)]
_LOCAL_INPUT = "%Y-%m-%dT%H:%M:%S"
_KEY = re.compile(r"[0-9a-f]{32}")
_LABELS = {
    "pump": "manager.pump",
    "nozzle": "manager.nozzle",
    "litres": "manager.litres",
    "amount": "manager.amount",
    "unit_price": "manager.unit_price",
}


def signup_field(code: str) -> str:
    """Which sign-up field a refusal code is about."""
    if code.startswith("phone.") or code == "member.exists":
        return "phone"
    if code.startswith("plate."):
        return "plate"
    if code.startswith("member.name"):
        return "name"
    return "form"


def signup_errors(lang: str, phone: str, plate: str, name: str, consent: str) -> dict[str, str]:
    """Every problem of a sign-up form at once, by field, in the cashier's language."""
    errors: dict[str, str] = {}
    try:
        normalize_phone(phone)
    except IdentityError as exc:
        errors["phone"] = error_text(lang, exc.code)
    if plate.strip():
        try:
            normalize_plate(plate)
        except IdentityError as exc:
            errors["plate"] = error_text(lang, exc.code)
    if len(name.strip()) > 64:
        errors["name"] = error_text(lang, "member.name_too_long")
    if consent != "on":
        errors["consent"] = error_text(lang, "consent.required")
    return errors


async def sign_up(
    request: Request, session: Session, phone: str, plate: str, name: str, consent: str
) -> tuple[MemberView | None, dict[str, str]]:
    """Register the member a sign-up form describes (consent channel `web`): the member, or
    every problem by field in the cashier's language (the till's form and the older page)."""
    lang = lang_of(request)
    errors = signup_errors(lang, phone, plate, name, consent)
    if errors:
        return None, errors
    station = web_context(request).station
    try:
        view = await run_in_threadpool(
            lambda: register_member(
                station,
                phone=phone,
                plates=[plate] if plate.strip() else [],
                name=name,
                consent_channel="web",
                actor=f"user:{session.user}",
            )
        )
    except ServiceError as exc:
        return None, {signup_field(exc.code): error_text(lang, exc.code)}
    return view, {}


def manual_field(code: str) -> str:
    """Which manual-sale field a refusal code is about (the rest: the whole form)."""
    for prefix, field in (
        ("sale.pump", "pump"),
        ("sale.nozzle", "nozzle"),
        ("sale.grade", "grade"),
        ("sale.litres", "litres"),
        ("sale.amount", "amount"),
        ("sale.unit_price", "unit_price"),
        ("sale.price", "unit_price"),
        ("sale.ended", "ended_at"),
        ("sale.time", "ended_at"),
        ("member.", "member"),
        ("phone.", "member"),
        ("plate.", "member"),
        ("identifier.", "member"),
    ):
        if code.startswith(prefix):
            return field
    return "form"


def _local_input(station: Station, moment: datetime) -> str:
    return moment.astimezone(station.zone).strftime(_LOCAL_INPUT)


def _parse_local(station: Station, text: str) -> datetime | None:
    """A `datetime-local` value (seconds optional) at the station, or None if malformed."""
    cleaned = text.strip()
    for pattern in (_LOCAL_INPUT, "%Y-%m-%dT%H:%M"):
        try:
            return datetime.strptime(cleaned, pattern).replace(tzinfo=station.zone)
        except ValueError:
            continue
    return None


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


@dataclass(frozen=True)
class ManualNumbers:
    pump: int
    nozzle: int | None
    litres: Decimal
    amount: Decimal
    unit_price: Decimal | None  # typed: then the amount must be litres x price


def parse_manual(
    pump: str, nozzle: str, litres: str, amount: str, unit_price: str = ""
) -> ManualNumbers | str:
    """The manual sale's numbers as typed, or the name of the first field that is not a
    number. Whether the numbers make sense (ranges, the price band, the grade, the time)
    is the sale limits' to say, the same for the page, the API and `edge sale add`."""
    pump_text, nozzle_text = pump.strip(), nozzle.strip()
    if not pump_text.isdigit() or not pump_text.isascii() or len(pump_text) > 3:
        return "pump"
    if nozzle_text and (not nozzle_text.isdigit() or not nozzle_text.isascii()):
        return "nozzle"
    litres_d, amount_d = _decimal(litres), _decimal(amount)
    if litres_d is None:
        return "litres"
    if amount_d is None:
        return "amount"
    price_d = _decimal(unit_price) if unit_price.strip() else None
    if unit_price.strip() and price_d is None:
        return "unit_price"
    nozzle_n = int(nozzle_text) if nozzle_text else None
    return ManualNumbers(int(pump_text), nozzle_n, litres_d, amount_d, price_d)


def forms_router() -> APIRouter:
    router = APIRouter()

    @router.get("/signup", response_class=HTMLResponse)
    async def signup_form(
        request: Request,
        session: CurrentSession,
        phone: Annotated[str, Query(max_length=32)] = "",
        plate: Annotated[str, Query(max_length=16)] = "",
        q: Annotated[str, Query(max_length=64)] = "",
    ) -> HTMLResponse:
        if q.strip() and not phone and not plate:
            phone, plate = _split_query(q)
        form = {"phone": phone, "plate": plate, "name": "", "consent": False}
        return render(request, "_signup_form.html", session=session, form=form, errors={})

    @router.post("/signup", response_class=HTMLResponse)
    async def signup(
        request: Request,
        session: WriteSession,
        phone: _Text = "",
        plate: _Text = "",
        name: Annotated[str, Form(max_length=200)] = "",
        consent: _Text = "",
    ) -> HTMLResponse:
        lang = lang_of(request)
        form = {"phone": phone, "plate": plate, "name": name, "consent": consent == "on"}
        view, errors = await sign_up(request, session, phone, plate, name, consent)
        if view is not None:
            cust = await load_customer(request, view.member_id, view)
            slip = slip_now(
                request,
                translate(lang, "slip.signup"),
                lines=[
                    (translate(lang, "member.phone"), view.phone_masked),
                    *[(translate(lang, "member.plates"), p) for p in view.plates],
                    (translate(lang, "member.tier"), cust.card.tier_name),
                ],
                totals=[(translate(lang, "receipt.balance"), str(view.points))],
            )
            return render(request, "_signup_done.html", session=session, cust=cust, slip=slip)
        status = 409 if errors.get("phone") == error_text(lang, "member.exists") else 422
        return render(
            request, "_signup_form.html", status=status, session=session, form=form, errors=errors
        )

    @router.get("/manual", response_class=HTMLResponse)
    async def manual_form(
        request: Request, session: Annotated[Session, Depends(manager_page_session)]
    ) -> HTMLResponse:
        return await _manual(request, session, {})

    @router.post("/manual", response_class=HTMLResponse)
    async def manual(
        request: Request,
        session: ManagerSession,
        pump: _Text = "",
        nozzle: _Text = "",
        grade: _Text = "",
        litres: _Text = "",
        amount: _Text = "",
        ended_at: _Text = "",
        member: _Text = "",
        sale_key: _Text = "",
        unit_price: _Text = "",
    ) -> HTMLResponse:
        ctx = web_context(request)
        lang = lang_of(request)
        form = {
            "pump": pump,
            "nozzle": nozzle,
            "grade": grade,
            "litres": litres,
            "amount": amount,
            "ended_at": ended_at,
            "member": member,
            "sale_key": sale_key,
            "unit_price": unit_price,
        }
        typed = parse_manual(pump, nozzle, litres, amount, unit_price)
        if isinstance(typed, str):
            label = translate(lang, _LABELS[typed])
            error = translate(lang, "manual.not_number", field=label, value=form[typed])
            return await _manual(request, session, form, bad=typed, error=error, status=422)
        ended = _parse_local(ctx.station, ended_at) if ended_at.strip() else ctx.station.now()
        if ended is None:
            error = translate(lang, "manual.bad_time")
            return await _manual(request, session, form, bad="ended_at", error=error, status=422)
        key = sale_key if _KEY.fullmatch(sale_key) else None

        def work() -> str:
            station = ctx.station
            member_id = find_member(station, q=member).member_id if member.strip() else None
            sale = SaleInput(
                source="manual",
                pump=typed.pump,
                nozzle=typed.nozzle,
                grade=grade.strip(),
                litres=typed.litres,
                amount=typed.amount,
                unit_price=typed.unit_price,
                ended_at=ended,
                source_key=None if key is None else manual_source_key(station, key),
                member_id=member_id,
                actor=f"user:{session.user}",
            )
            return record_sale(station, sale).sale.sale_id

        try:
            sale_id = await run_in_threadpool(work)
        except ServiceError as exc:
            error = refusal_text(lang, exc)
            bad = manual_field(exc.code)
            return await _manual(request, session, form, bad=bad, error=error, status=422)
        ctx.live.sale_recorded(sale_id)
        done = translate(lang, "manager.manual_done", sale_id="#" + sale_number(sale_id))
        return await _manual(request, session, {}, done=done)

    return router


def _split_query(q: str) -> tuple[str, str]:
    """A search that found nobody, as the sign-up form's phone or plate."""
    text = q.strip()
    digits = text.replace(" ", "").replace("-", "").removeprefix("+86")
    return (text, "") if digits.isdigit() else ("", text)


async def _manual(
    request: Request,
    session: Session,
    form: dict[str, str],
    *,
    status: int | None = None,
    **values: Any,
) -> HTMLResponse:
    """The manual sale form: the grades in force with their recent price, the end-time
    bounds, and (after a refusal) every field as typed with the bad one marked."""
    station = web_context(request).station
    facts = await run_in_threadpool(manual_sale_form, station)
    shown = {
        "pump": "",
        "nozzle": "",
        "grade": "",
        "litres": "",
        "amount": "",
        "ended_at": _local_input(station, station.now()),
        "member": "",
        "unit_price": "",
        "sale_key": uuid.uuid4().hex,  # a double submit records the sale once
    }
    shown.update({k: v for k, v in form.items() if v or k != "sale_key"})
    values.setdefault("error", None)
    values.setdefault("done", None)
    values.setdefault("bad", None)
    bounds = facts["ended_at"]
    return render(
        request,
        "_manual_form.html",
        status=status or (422 if values["error"] else 200),
        session=session,
        form=shown,
        grades=facts["grades"],
        max_litres=facts["max_litres"],
        ended_min=_local_input(station, datetime.fromisoformat(bounds["earliest"])),
        ended_max=_local_input(station, datetime.fromisoformat(bounds["latest"])),
        **values,
    )
