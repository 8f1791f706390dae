"""Whole pages: login, the cashier screen, sign-up and the manager's corrections.

Forms post back as ordinary forms (hidden `csrf_token`), so they work with or without JS;
errors re-render the form with the reason next to the field.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from cloud_sync.core.identity import IdentityError, normalize_phone, normalize_plate

from ..error_codes import status_of
from ..errors import ServiceError
from ..services.members import find_member, register_member
from ..services.rules import ruleset_now
from ..services.sales import SaleInput, record_sale, reverse_sale
from .api import login_user, set_session_cookie
from .auth import COOKIE_NAME, Session, WebError
from .context import (
    CurrentSession,
    ManagerSession,
    WriteSession,
    lang_of,
    manager_page_session,
    render,
    web_context,
)
from .fragments import card_fragment, lookup_fragment
from .i18n import error_text, translate
from .views import pump_cards, sync_state

__all__ = ["pages_router"]

_Text = Annotated[str, Form(max_length=64)]


def _field_of(code: str) -> str:
    if code.startswith("phone.") or code == "member.exists":
        return "phone"
    if code.startswith("plate."):
        return "plate"
    if code.startswith("member.name"):
        return "name"
    return "form"


def _signup_errors(lang: str, phone: str, plate: str, name: str, consent: str) -> dict[str, str]:
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


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def pages_router() -> APIRouter:  # noqa: PLR0915 - one small closure per page
    router = APIRouter()

    @router.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request) -> Response:
        ctx = web_context(request)
        if ctx.sessions.get(request.cookies.get(COOKIE_NAME), touch=False) is not None:
            return RedirectResponse("/", status_code=303)
        return render(request, "login.html", error=None, name="")

    @router.post("/login", response_class=HTMLResponse)
    async def login_form(request: Request, name: _Text = "", pin: _Text = "") -> Response:
        try:
            session = await login_user(request, name.strip(), pin)
        except WebError as exc:
            message = exc.message or error_text(lang_of(request), exc.code)
            headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
            return render(
                request, "login.html", status=exc.status, error=message, name=name, headers=headers
            )
        response = RedirectResponse("/", status_code=303)
        set_session_cookie(request, response, session)
        return response

    @router.post("/logout")
    async def logout(request: Request, session: WriteSession) -> Response:
        web_context(request).sessions.end(session.token)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/")
        return response

    @router.get("/", response_class=HTMLResponse)
    async def index(
        request: Request,
        session: CurrentSession,
        q: Annotated[str, Query(max_length=64)] = "",
        member: Annotated[str, Query(max_length=64)] = "",
    ) -> HTMLResponse:
        ctx = web_context(request)
        cards, sales = await run_in_threadpool(pump_cards, ctx.station, ctx.live)
        sync = await run_in_threadpool(sync_state, ctx.station)
        panel = None
        if q.strip():
            panel = await lookup_fragment(request, session, q)
        elif member:
            panel = await card_fragment(request, session, member)
        return render(
            request,
            "index.html",
            session=session,
            pumps=cards,
            sales=sales,
            sync=sync,
            q=q,
            # Already rendered (and autoescaped) by our own fragment template.
            panel=None if panel is None else Markup(bytes(panel.body).decode()),  # noqa: S704
        )

    @router.get("/members/new", response_class=HTMLResponse)
    async def signup_page(
        request: Request,
        session: CurrentSession,
        phone: Annotated[str, Query(max_length=32)] = "",
        plate: Annotated[str, Query(max_length=16)] = "",
    ) -> HTMLResponse:
        form = {"phone": phone, "plate": plate, "name": "", "consent": False}
        return render(request, "signup.html", session=session, form=form, errors={})

    @router.post("/members/new", response_class=HTMLResponse)
    async def signup(
        request: Request,
        session: WriteSession,
        phone: _Text = "",
        plate: _Text = "",
        name: Annotated[str, Form(max_length=200)] = "",
        consent: _Text = "",
    ) -> Response:
        lang = lang_of(request)
        form = {"phone": phone, "plate": plate, "name": name, "consent": consent == "on"}
        errors = _signup_errors(lang, phone, plate, name, consent)
        if not errors:
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
                errors[_field_of(exc.code)] = error_text(lang, exc.code)
            else:
                return RedirectResponse(f"/?member={view.member_id}", status_code=303)
        status = 409 if errors.get("phone") == error_text(lang, "member.exists") else 422
        return render(
            request, "signup.html", status=status, session=session, form=form, errors=errors
        )

    @router.get("/manager", response_class=HTMLResponse)
    async def manager(
        request: Request, session: Annotated[Session, Depends(manager_page_session)]
    ) -> HTMLResponse:
        return await _manager(request, session)

    @router.post("/manager/sale", response_class=HTMLResponse)
    async def manual_sale(
        request: Request,
        session: ManagerSession,
        pump: _Text = "",
        nozzle: _Text = "",
        grade: _Text = "",
        litres: _Text = "",
        amount: _Text = "",
        member: _Text = "",
    ) -> HTMLResponse:
        ctx = web_context(request)
        lang = lang_of(request)
        litres_d, amount_d = _decimal(litres), _decimal(amount)
        if not pump.strip().isdigit() or (nozzle.strip() and not nozzle.strip().isdigit()):
            return await _manager(request, session, 422, manual_error=error_text(lang, "sale.pump"))
        if litres_d is None or amount_d is None:
            code = "sale.litres" if litres_d is None else "sale.amount"
            return await _manager(request, session, 422, manual_error=error_text(lang, code))

        def work() -> str:
            member_id = find_member(ctx.station, q=member).member_id if member.strip() else None
            sale = SaleInput(
                source="manual",
                pump=int(pump),
                nozzle=int(nozzle) if nozzle.strip() else None,
                grade=grade.strip(),
                litres=litres_d,
                amount=amount_d,
                ended_at=ctx.station.now(),
                member_id=member_id,
                actor=f"user:{session.user}",
            )
            return record_sale(ctx.station, sale).sale.sale_id

        try:
            sale_id = await run_in_threadpool(work)
        except ServiceError as exc:
            return await _manager(request, session, 422, manual_error=error_text(lang, exc.code))
        ctx.live.sale_recorded(sale_id)
        done = translate(lang, "manager.manual_done", sale_id=sale_id)
        return await _manager(request, session, manual_result=done)

    @router.post("/manager/reverse", response_class=HTMLResponse)
    async def reverse(
        request: Request,
        session: ManagerSession,
        sale_id: _Text = "",
        reason: Annotated[str, Form(max_length=200)] = "",
    ) -> HTMLResponse:
        ctx = web_context(request)
        lang = lang_of(request)
        if not reason.strip():
            error = error_text(lang, "reason.required")
            return await _manager(request, session, 422, reverse_error=error)
        try:
            await run_in_threadpool(
                lambda: reverse_sale(
                    ctx.station, sale_id.strip(), actor=f"user:{session.user}", reason=reason
                )
            )
        except ServiceError as exc:
            error = error_text(lang, exc.code)
            return await _manager(request, session, status_of(exc.code), reverse_error=error)
        ctx.live.sale_recorded(sale_id.strip())
        done = translate(lang, "manager.reverse_done", sale_id=sale_id.strip())
        return await _manager(request, session, reverse_result=done)

    return router


async def _manager(
    request: Request, session: Session, status: int = 200, **messages: Any
) -> HTMLResponse:
    ruleset = await run_in_threadpool(ruleset_now, web_context(request).station)
    grades = [] if ruleset is None else sorted(ruleset.grades.items())
    values: dict[str, Any] = {
        "manual_result": None,
        "manual_error": None,
        "reverse_result": None,
        "reverse_error": None,
    }
    values.update(messages)
    return render(request, "manager.html", status=status, session=session, grades=grades, **values)
