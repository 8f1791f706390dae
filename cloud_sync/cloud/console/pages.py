"""Rendering console pages: one Jinja environment per app, the person's language, money.

Templates say both languages inline, `{{ t("积分负债", "Liability") }}`: the console's text
lives beside its markup, Chinese first. The language comes from `?lang=`, then the `lang`
cookie, then zh-CN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from .auth import HqUser

__all__ = ["LANGS", "fen_to_yuan", "lang_of", "render", "templates_of"]

LANGS: Final = ("zh-CN", "en")
_TEMPLATES_DIR: Final = Path(__file__).parent / "templates"


def lang_of(request: Request) -> str:
    asked = request.query_params.get("lang")
    if asked in LANGS:
        return str(asked)
    cookie = request.cookies.get("lang")
    return cookie if cookie in LANGS else LANGS[0]


def fen_to_yuan(fen: int | None) -> str:
    """¥1,234.56 from integer fen (never through a float)."""
    if fen is None:
        return "—"
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}¥{yuan:,}.{cents:02d}"


def points(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def templates_of(request: Request) -> Jinja2Templates:
    templates = getattr(request.app.state, "console_templates", None)
    if templates is None:
        templates = Jinja2Templates(directory=str(_TEMPLATES_DIR))
        templates.env.filters["yuan"] = fen_to_yuan
        templates.env.filters["points"] = points
        request.app.state.console_templates = templates
    assert isinstance(templates, Jinja2Templates)
    return templates


def render(
    request: Request,
    name: str,
    user: HqUser | None,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    lang = lang_of(request)

    def t(zh: str, en: str) -> str:
        return zh if lang == "zh-CN" else en

    page = {"request": request, "user": user, "lang": lang, "t": t, **(context or {})}
    response = templates_of(request).TemplateResponse(request, name, page, status_code=status_code)
    if request.query_params.get("lang") in LANGS:
        response.set_cookie("lang", lang, samesite="strict", httponly=True, max_age=365 * 86400)
    response.headers["Cache-Control"] = "no-store"
    return response
