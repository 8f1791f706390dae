"""The member page's shell, files and brand, over HTTP (no browser): what a chain configures
shows, the sign-in needs nothing but the HTML, files are cached for a year under their hash
and gzipped, the logo is checked, and the page speaks zh-CN first.

The page reads no ledger data, so these run on SQLite only; the browser tests
(test_h5_browser.py, test_h5_e2e.py) run the page against the API on both backends.
"""

from __future__ import annotations

import gzip
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.cloud.member_app.page_assets import (
    LOGO_MAX_BYTES,
    accepts_gzip,
    inline_text,
    logo_media_type,
)
from cloud_sync.cloud.member_app.pages import (
    SCRIPTS,
    SIGN_IN_SCRIPT,
    STYLE,
    brand_inks,
    contrast,
    pick_lang,
)
from cloud_sync.cloud.server.app import build_cloud_app
from cloud_sync.cloud.server.settings import CloudSettings
from cloud_sync.core.privacy import MemberKeys
from cloud_sync.core.signing import generate_signing_key

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
ClientFor = Callable[..., TestClient]
STATIC = Path(__file__).resolve().parents[3] / "cloud_sync" / "cloud" / "member_app" / "static"


@pytest.fixture
def client_for(tmp_path: Path) -> Iterator[ClientFor]:
    """A cloud app with `[member_app]` set as given; the clients are closed at the end."""
    opened: list[tuple[TestClient, CloudLedger]] = []

    def make(**member_app: Any) -> TestClient:
        keys = MemberKeys.generate("chain-h5")
        folder = tmp_path / f"cloud{len(opened)}"
        settings = CloudSettings.model_validate(
            {
                "cloud": {"data_dir": str(folder), "admin_token": "h5-admin-token-0123456789ab"},
                "member_app": member_app,
            }
        )
        ledger = CloudLedger.open(f"sqlite:///{tmp_path}/c{len(opened)}.sqlite3", chain_keys=keys)
        app = build_cloud_app(
            settings, ledger=ledger, signing_key=generate_signing_key(), chain_keys=keys
        )
        client = TestClient(app)
        opened.append((client, ledger))
        return client

    yield make
    for client, ledger in opened:
        client.close()
        ledger.close()


def _asset_urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/m/static/[^"]+)"', html)


def test_the_page_shows_the_chain_brand_and_the_sign_in_form(client_for: ClientFor) -> None:
    client = client_for(brand_name="蓝海能源", brand_colour="#0057B8")
    answer = client.get("/m/")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    html = answer.text
    assert '<html lang="zh-CN">' in html
    assert 'data-testid="brand-name">蓝海能源<' in html
    assert "--brand:#0057b8" in html
    assert 'name="theme-color" content="#0057b8"' in html
    assert 'data-testid="phone"' in html and "手机号登录" in html  # first paint: the form
    assert 'src="/m/brand/logo?v=' in html
    assert answer.headers["cache-control"] == "no-cache, private"
    # Every script and style is our own, by hash; nothing from another host.
    urls = _asset_urls(html)
    assert sorted(u.split("?")[0].rsplit("/", 1)[1] for u in urls) == sorted([*SCRIPTS, STYLE])
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)
    assert client.get("/m", follow_redirects=False).headers["location"] == "/m/"


def test_the_policy_allows_only_our_own_files_and_this_page_s_inline_parts(
    client_for: ClientFor,
) -> None:
    client = client_for()
    first, second = client.get("/m/"), client.get("/m/")
    policy = first.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce is not None
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    inline = re.findall(r"<(?:script|style) nonce=\"([^\"]+)\"", first.text)
    assert inline and set(inline) == {nonce.group(1)}
    assert nonce.group(1) not in second.headers["content-security-policy"]  # one per answer
    assert "<script>" not in first.text and "<style>" not in first.text


def test_english_by_query_by_cookie_and_by_the_browser(client_for: ClientFor) -> None:
    client = client_for(brand_name="Blue Sea")
    english = client.get("/m/?lang=en")
    assert '<html lang="en">' in english.text and "Sign in with your phone" in english.text
    assert "m_lang=en" in english.headers["set-cookie"]
    assert '<html lang="en">' in client.get("/m/").text  # the cookie remembers
    client.cookies.clear()
    assert '<html lang="zh-CN">' in client.get("/m/").text
    browser_en = client.get("/m/", headers={"Accept-Language": "en-GB,en;q=0.9,zh;q=0.5"})
    assert '<html lang="en">' in browser_en.text
    browser_zh = client.get("/m/", headers={"Accept-Language": "zh-TW,zh;q=0.9,en;q=0.8"})
    assert '<html lang="zh-CN">' in browser_zh.text
    asked = client.get("/m/?lang=zh-CN", headers={"Accept-Language": "en"})
    assert '<html lang="zh-CN">' in asked.text


@pytest.mark.parametrize(
    ("asked", "cookie", "accept", "expected"),
    [
        (None, None, "", "zh-CN"),
        ("en", None, "zh-CN", "en"),
        ("fr", "en", "zh", "en"),
        (None, "xx", "fr-FR,en;q=0.3", "en"),
        (None, None, "en;q=0.4,zh-CN;q=0.8", "zh-CN"),
        (None, None, "en;q=0,zh;q=0", "zh-CN"),
        (None, None, "en;q=abc", "zh-CN"),
        (None, None, "de,fr", "zh-CN"),
    ],
)
def test_pick_lang(asked: str | None, cookie: str | None, accept: str, expected: str) -> None:
    assert pick_lang(asked, cookie, accept) == expected


@pytest.mark.parametrize("colour", ["#C8102E", "#FFD100", "#00A651", "#FFFFFF", "#000000"])
def test_text_on_and_in_the_brand_colour_stays_readable(colour: str) -> None:
    on_brand, as_text = brand_inks(colour)
    assert contrast(colour, on_brand) >= 4.5
    assert contrast(as_text, "#ffffff") >= 4.5


def test_a_yellow_brand_gets_dark_text_and_a_darker_link_colour() -> None:
    on_brand, as_text = brand_inks("#FFD100")
    assert on_brand == "#1a1a1a"
    assert as_text != "#ffd100"


def test_files_are_cached_a_year_under_their_hash_and_gzipped(client_for: ClientFor) -> None:
    client = client_for()
    for url in _asset_urls(client.get("/m/").text):
        answer = client.get(url)
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert answer.headers["content-encoding"] == "gzip"  # the test client asks for it
        assert answer.headers["vary"] == "Accept-Encoding"
        plain = client.get(url, headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert plain.content == answer.content
        assert (
            int(plain.headers["content-length"])
            > int(client.get(url, headers={"Accept-Encoding": "gzip"}).headers["content-length"])
            or len(plain.content) < 512
        )
        again = client.get(url, headers={"If-None-Match": answer.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        stale = client.get(url.split("?")[0] + "?v=000000000000")
        assert stale.headers["cache-control"] == "no-cache"  # an old page's URL: revalidated
    assert client.get("/m/static/member.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/m/static/member.css").headers["content-type"].startswith("text/css")


@pytest.mark.parametrize(
    "name",
    ["nothing.js", "shell.css", "sign-in.js", "..%2Fpages.py", "%2E%2E%2Fstate.py", "member.js%00"],
)
def test_only_the_page_s_own_files_are_served(client_for: ClientFor, name: str) -> None:
    answer = client_for().get(f"/m/static/{name}")
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"


def test_the_page_s_files_stay_small_for_a_weak_link(client_for: ClientFor) -> None:
    """What a first visit downloads (gzipped): a budget that keeps the page fast on 4G; and
    the HTML, sent at every visit with the sign-in in it, fits in TCP's first window (10
    segments, about 14 KiB), so the form works after one round trip on a real link too."""
    sent = sum(len(gzip.compress((STATIC / name).read_bytes(), 9)) for name in [*SCRIPTS, STYLE])
    assert sent < 24 * 1024, sent
    assert not any(p.suffix == ".map" or p.stat().st_size > 40_000 for p in STATIC.iterdir())
    html = client_for().get("/m/", headers={"Accept-Encoding": "gzip"})
    assert html.headers["content-encoding"] == "gzip"
    assert int(html.headers["content-length"]) < 14 * 1024, html.headers["content-length"]


def test_the_sign_in_script_is_in_the_html_before_the_style_sheet(client_for: ClientFor) -> None:
    """Inline, under the nonce, and ahead of the deferred style (an inline script after a
    style sheet waits for it); the screens' scripts are deferred."""
    html = client_for().get("/m/").text
    script = (STATIC / SIGN_IN_SCRIPT).read_text(encoding="utf-8")
    at = html.index(script)
    assert re.search(r'<script nonce="[^"]+">\s*$', html[:at])
    assert at < html.index('rel="stylesheet"')
    deferred = re.findall(r'<script src="/m/static/([^"?]+)\?v=[0-9a-f]{12}" defer>', html)
    assert deferred == list(SCRIPTS)


def test_a_file_that_would_close_its_inline_tag_is_refused(tmp_path: Path) -> None:
    """A `</script>` inside the inlined sign-in would end it early: refused at start-up."""
    script = tmp_path / "sign-in.js"
    script.write_text('const x = "</SCRIPT>";', encoding="utf-8")
    with pytest.raises(ValueError, match="cannot be inlined"):
        inline_text(script, "</script")
    script.write_text('const x = "<\\/script>";', encoding="utf-8")
    assert inline_text(script, "</script") == 'const x = "<\\/script>";'


def test_without_a_logo_the_mark_is_drawn_in_the_brand_colour(client_for: ClientFor) -> None:
    client = client_for(brand_name="蓝海能源", brand_colour="#0057B8")
    answer = client.get("/m/brand/logo")
    assert answer.headers["content-type"] == "image/svg+xml"
    assert "sandbox" in answer.headers["content-security-policy"]
    body = gzip.decompress(answer.content) if answer.content[:2] == b"\x1f\x8b" else answer.content
    assert b'fill="#0057B8"' in body and "蓝".encode() in body
    assert b'fill="#ffffff"' in body  # white on a dark blue


def test_the_mark_on_a_light_brand_colour_is_dark(client_for: ClientFor) -> None:
    answer = client_for(brand_colour="#FFD100").get("/m/brand/logo")
    body = gzip.decompress(answer.content) if answer.content[:2] == b"\x1f\x8b" else answer.content
    assert b'fill="#1a1a1a"' in body


def test_a_configured_logo_is_served_with_its_own_type(
    client_for: ClientFor, tmp_path: Path
) -> None:
    logo = tmp_path / "logo.png"
    logo.write_bytes(PNG)
    client = client_for(brand_logo=str(logo))
    url = re.search(r'src="(/m/brand/logo\?v=[^"]+)"', client.get("/m/").text)
    assert url is not None
    answer = client.get(url.group(1))
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/png"
    assert answer.content == PNG
    assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
    svg = tmp_path / "logo.png"  # a new file at the same path: a new URL
    svg.write_bytes(b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>')
    newer = re.search(r'src="(/m/brand/logo\?v=[^"]+)"', client.get("/m/").text)
    assert newer is not None and newer.group(1) != url.group(1)
    assert client.get(newer.group(1)).headers["content-type"] == "image/svg+xml"


@pytest.mark.parametrize(
    "content",
    [
        b"GIF89a" + b"\0" * 32,
        b"<html><script>alert(1)</script></html>",
        PNG + b"\0" * LOGO_MAX_BYTES,
    ],
    ids=["gif", "html", "too-large"],
)
def test_an_unfit_logo_is_replaced_by_the_mark_and_said_in_the_log(
    client_for: ClientFor, tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    logo = tmp_path / "logo.png"
    logo.write_bytes(content)
    client = client_for(brand_logo=str(logo))
    with caplog.at_level(logging.WARNING):
        answer = client.get("/m/brand/logo")
        client.get("/m/brand/logo")
    assert answer.headers["content-type"] == "image/svg+xml"
    warned = [r for r in caplog.records if "brand_logo" in r.getMessage()]
    assert len(warned) == 1, "said once, not at every request"


def test_a_missing_logo_file_shows_the_mark(client_for: ClientFor, tmp_path: Path) -> None:
    client = client_for(brand_logo=str(tmp_path / "gone.svg"))
    assert client.get("/m/brand/logo").headers["content-type"] == "image/svg+xml"
    assert client.get("/m/").status_code == 200


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (PNG, "image/png"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 8, "image/jpeg"),
        (b"\xef\xbb\xbf  <svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"),
        (b"<?xml version='1.0'?><svg/>", "image/svg+xml"),
        (b"<?xml version='1.0'?><html/>", None),
        (b"", None),
    ],
)
def test_logo_media_type(head: bytes, expected: str | None) -> None:
    assert logo_media_type(head) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [("gzip, deflate, br", True), ("br;q=1.0, gzip;q=0", False), ("*", True), ("identity", False)],
)
def test_accepts_gzip(header: str, expected: bool) -> None:
    assert accepts_gzip(header) is expected
