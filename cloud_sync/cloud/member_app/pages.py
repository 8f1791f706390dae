"""The member's H5 page at `/m/`: one server-rendered shell, the chain's brand from
`[member_app]`, and the scripts and style served by this process with a year in the cache.

The HTML alone makes the sign-in work (one round trip on a weak link): it holds the form, the
styles its first paint needs and the sign-in script, both inlined under the answer's nonce.
The screens (member.js, member-screens.js) and the rest of the style come deferred, by hash.

The page speaks zh-CN first; `?lang=en` (kept in a cookie) or the browser's Accept-Language
ask for English. Like the HQ console, each text is written once with both languages beside it,
`t("积分", "Points")`, in the template and in the script (the two packages stay independent).
"""

from __future__ import annotations

import gzip
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from .page_assets import (
    Asset,
    LogoSource,
    accepts_gzip,
    asset_response,
    inline_text,
    load_assets,
)
from .state import member_app_state

__all__ = [
    "LANGS",
    "SIGN_IN_SCRIPT",
    "MemberPage",
    "brand_inks",
    "contrast",
    "lang_of",
    "mount_member_static",
    "pages_router",
    "pick_lang",
]

LANGS: Final = ("zh-CN", "en")
LANG_COOKIE: Final = "m_lang"
SCRIPTS: Final = ("member.js", "member-screens.js")
STYLE: Final = "member.css"
SHELL_STYLE: Final = "shell.css"  # inlined in the HTML: what the first paint needs
SIGN_IN_SCRIPT: Final = "sign-in.js"  # inlined in the HTML: the form works without a file
_INLINED: Final = (SHELL_STYLE, SIGN_IN_SCRIPT)
_HERE: Final = Path(__file__).parent
_NOT_FOUND: Final = b'{"error":"not_found","detail":"no such file"}'


def pick_lang(asked: str | None, cookie: str | None, accept_language: str) -> str:
    """`?lang=`, then the cookie, then the browser's first zh or en by its q-values; zh-CN."""
    for choice in (asked, cookie):
        if choice in LANGS:
            return str(choice)
    best, best_q = LANGS[0], 0.0
    for position, part in enumerate(accept_language.split(",")[:20]):
        name, _, params = part.strip().partition(";")
        primary = name.strip().lower().split("-")[0]
        if primary not in ("zh", "en"):
            continue
        try:
            quality = float(params.strip().removeprefix("q=")) if params else 1.0
        except ValueError:
            continue
        quality -= position * 1e-6  # equal q: the first one listed
        if quality > best_q:
            best, best_q = ("zh-CN" if primary == "zh" else "en"), quality
    return best


def lang_of(request: Request) -> str:
    return pick_lang(
        request.query_params.get("lang"),
        request.cookies.get(LANG_COOKIE),
        request.headers.get("accept-language", ""),
    )


def _luminance(colour: str) -> float:
    def channel(hex_pair: str) -> float:
        value = int(hex_pair, 16) / 255
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(colour[i : i + 2]) for i in (1, 3, 5))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(one: str, other: str) -> float:
    """WCAG contrast ratio of two `#rrggbb` colours (1 to 21)."""
    light, dark = sorted((_luminance(one), _luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _darker(colour: str, factor: float) -> str:
    parts = (round(int(colour[i : i + 2], 16) * factor) for i in (1, 3, 5))
    return "#" + "".join(f"{part:02x}" for part in parts)


def brand_inks(colour: str) -> tuple[str, str]:
    """(text on the brand colour, the brand colour as text on white), both readable (4.5:1):
    a chain's yellow gets dark text on it, and a darker shade of itself for links."""
    on_brand = "#ffffff" if contrast(colour, "#ffffff") >= 4.5 else "#1a1a1a"
    as_text, factor = colour.lower(), 1.0
    while contrast(as_text, "#ffffff") < 4.5 and factor > 0:
        factor = round(factor - 0.05, 2)
        as_text = _darker(colour, factor)
    return on_brand, as_text


@dataclass(frozen=True)
class MemberPage:
    """What the page's routes share, built once per app by `mount_member_static`."""

    assets: dict[str, Asset]
    shell_style: str
    sign_in_script: str
    logo: LogoSource
    templates: Environment

    def url(self, name: str) -> str:
        return f"/m/static/{name}?v={self.assets[name].version}"


def _member_page(request: Request) -> MemberPage:
    page = request.app.state.member_page
    assert isinstance(page, MemberPage)
    return page


def _render(request: Request) -> Response:
    page, settings = _member_page(request), member_app_state(request).settings
    lang, nonce = lang_of(request), secrets.token_urlsafe(16)
    on_brand, brand_text = brand_inks(settings.brand_colour)

    def t(zh: str, en: str) -> str:
        return zh if lang == "zh-CN" else en

    html = page.templates.get_template("member.html").render(
        lang=lang,
        t=t,
        nonce=nonce,
        brand_name=settings.brand_name,
        brand_colour=settings.brand_colour.lower(),
        on_brand=on_brand,
        brand_text=brand_text,
        logo_url=f"/m/brand/logo?v={page.logo.current().version}",
        shell_style=page.shell_style,
        sign_in_script=page.sign_in_script,
        style_url=page.url(STYLE),
        script_urls=[page.url(name) for name in SCRIPTS],
        other_lang=LANGS[1] if lang == LANGS[0] else LANGS[0],
    )
    body = html.encode("utf-8")
    headers = {
        "Cache-Control": "no-cache, private",
        "Content-Security-Policy": (
            f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; "
            f"style-src 'self' 'nonce-{nonce}'; img-src 'self' data: blob:; "
            "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        ),
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Vary": "Accept-Encoding, Accept-Language, Cookie",
    }
    if accepts_gzip(request.headers.get("accept-encoding", "")):
        body = gzip.compress(body, compresslevel=6)
        headers["Content-Encoding"] = "gzip"
    response = Response(body, media_type="text/html; charset=utf-8", headers=headers)
    if request.query_params.get("lang") in LANGS:
        response.set_cookie(
            LANG_COOKIE, lang, max_age=365 * 86_400, path="/m/", samesite="lax", httponly=True
        )
    return response


def pages_router() -> APIRouter:
    router = APIRouter(tags=["member app page"], include_in_schema=False)

    @router.get("/m/")
    def member_page(request: Request) -> Response:
        """The member's page: sign-in (inlined), then the app (hash routes, deferred files)."""
        return _render(request)

    @router.get("/m")
    def member_page_slash() -> RedirectResponse:
        return RedirectResponse("/m/", status_code=308)

    @router.get("/m/static/{name}")
    def member_static(name: str, request: Request) -> Response:
        """The page's scripts and style, by name; a year in the cache under `?v=<hash>`."""
        asset = _member_page(request).assets.get(name)
        if asset is None:
            return Response(_NOT_FOUND, status_code=404, media_type="application/json")
        return asset_response(request, asset)

    @router.get("/m/brand/logo")
    def member_logo(request: Request) -> Response:
        """The chain's logo from `[member_app] brand_logo`, or a mark in its colour."""
        return asset_response(request, _member_page(request).logo.current())

    return router


def mount_member_static(app: FastAPI) -> None:
    """Scripts, styles and the brand's logo, read once per app (nothing at import)."""
    settings = app.state.member_app.settings
    static = _HERE / "static"
    assets = load_assets(static)
    environment = Environment(
        loader=FileSystemLoader(str(_HERE / "templates")),
        autoescape=select_autoescape(("html",)),
        auto_reload=False,
    )
    app.state.member_page = MemberPage(
        assets={name: asset for name, asset in assets.items() if name not in _INLINED},
        shell_style=inline_text(static / SHELL_STYLE, "</style"),
        sign_in_script=inline_text(static / SIGN_IN_SCRIPT, "</script"),
        logo=LogoSource(
            settings.brand_logo,
            settings.brand_colour,
            brand_inks(settings.brand_colour)[0],
            settings.brand_name,
        ),
        templates=environment,
    )
