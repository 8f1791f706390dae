"""The member page's files, held in memory: each script and style with its content hash (the
`v` of its URL, so a browser keeps it for a year and a new release changes the URL), its gzip
and its media type; and the chain's logo, checked (type by its first bytes, size) before it is
served, with a mark drawn in the brand's colour when there is none.

Pure functions and small values; the routes in `pages.py` answer with them.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "LOGO_MAX_BYTES",
    "Asset",
    "LogoSource",
    "accepts_gzip",
    "asset_response",
    "default_mark",
    "inline_text",
    "load_assets",
    "logo_media_type",
    "make_asset",
]

log = logging.getLogger(__name__)

LOGO_MAX_BYTES: Final = 256 * 1024
YEAR_S: Final = 365 * 86_400
_MEDIA_TYPES: Final = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
_GZIP_FROM_BYTES: Final = 512  # below this gzip's header costs more than it saves
# An SVG is an active document when opened on its own: no scripts, no outside loads.
_SVG_POLICY: Final = "default-src 'none'; style-src 'unsafe-inline'; sandbox"


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    media_type: str
    version: str  # the first 12 hex digits of the body's SHA-256

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def make_asset(body: bytes, media_type: str) -> Asset:
    squeezed = gzip.compress(body, compresslevel=9, mtime=0)
    keep = squeezed if len(body) >= _GZIP_FROM_BYTES and len(squeezed) < len(body) else None
    return Asset(body, keep, media_type, hashlib.sha256(body).hexdigest()[:12])


def load_assets(folder: Path) -> dict[str, Asset]:
    """Every `.js`, `.css` and `.svg` file directly in `folder`, by file name."""
    return {
        path.name: make_asset(path.read_bytes(), _MEDIA_TYPES[path.suffix])
        for path in sorted(folder.iterdir())
        if path.is_file() and path.suffix in _MEDIA_TYPES
    }


def inline_text(path: Path, end_tag: str) -> str:
    """A file to place inside the HTML's own `<script>` or `<style>`: it must not hold the
    tag's end (`end_tag`, any case), which would close the tag early."""
    text = path.read_text(encoding="utf-8")
    if end_tag.lower() in text.lower():
        raise ValueError(f"{path.name} holds {end_tag}: it cannot be inlined")
    return text


def accepts_gzip(header: str) -> bool:
    """Whether an `Accept-Encoding` value takes gzip (and does not refuse it with q=0)."""
    for part in header.lower().split(","):
        name, _, params = part.strip().partition(";")
        if name.strip() in ("gzip", "*"):
            quality = params.strip().removeprefix("q=").strip()
            return quality not in ("0", "0.0", "0.00", "0.000")
    return False


def asset_response(request: Request, asset: Asset) -> Response:
    """The asset, gzipped when the browser takes it; a year in the cache when asked for by
    its current version (`?v=`), otherwise revalidated by its ETag."""
    immutable = request.query_params.get("v") == asset.version
    headers = {
        "Cache-Control": f"public, max-age={YEAR_S}, immutable" if immutable else "no-cache",
        "ETag": asset.etag,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    if asset.media_type.startswith("image/svg"):
        headers["Content-Security-Policy"] = _SVG_POLICY
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and accepts_gzip(request.headers.get("accept-encoding", "")):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=asset.media_type, headers=headers)


def logo_media_type(head: bytes) -> str | None:
    """PNG, JPEG or SVG by the file's first bytes (never by its name alone)."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    text = head[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<svg", b"<?xml")) and b"<svg" in text:
        return "image/svg+xml"
    return None


def default_mark(colour: str, ink: str, name: str) -> bytes:
    """The chain's first character in `ink` on its colour, in a rounded square."""
    first = escape(name.strip()[:1] or "L")
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" width="64" height="64">'
        f'<rect width="64" height="64" rx="14" fill="{escape(colour)}"/>'
        '<text x="32" y="43" text-anchor="middle" font-size="30" font-weight="700" '
        f'font-family="sans-serif" fill="{escape(ink)}">'
        f"{first}</text></svg>"
    ).encode()


class LogoSource:
    """The configured logo, read again when its file changes (size and mtime), checked each
    time; the default mark when none is configured or the file is unfit (said in the log)."""

    def __init__(self, path: Path | None, colour: str, ink: str, name: str) -> None:
        self._path = path
        self._default = make_asset(default_mark(colour, ink, name), "image/svg+xml")
        self._seen: tuple[int, int] | None = None
        self._current = self._default

    def current(self) -> Asset:
        if self._path is None:
            return self._default
        try:
            stat = self._path.stat()
        except OSError as exc:
            return self._fall_back((-1, -1), f"cannot read it ({exc.strerror})")
        key = (stat.st_size, stat.st_mtime_ns)
        if key == self._seen:
            return self._current
        if stat.st_size > LOGO_MAX_BYTES:
            return self._fall_back(key, f"{stat.st_size} bytes, more than {LOGO_MAX_BYTES}")
        with self._path.open("rb") as file:
            body = file.read(LOGO_MAX_BYTES + 1)
        media_type = logo_media_type(body)
        if len(body) > LOGO_MAX_BYTES or media_type is None:
            return self._fall_back(key, "not a PNG, JPEG or SVG of at most 256 KiB")
        self._seen, self._current = key, make_asset(body, media_type)
        return self._current

    def _fall_back(self, key: tuple[int, int], why: str) -> Asset:
        if key != self._seen:
            log.warning("member_app.brand_logo %s: %s; the default mark is shown", self._path, why)
        self._seen, self._current = key, self._default
        return self._default
