"""Every error code the station can answer is declared once (edge_agent/error_codes.py).

The source is scanned: a literal code in `ServiceError(...)`, `WebError(status, ...)`, or in
the shared core's `IdentityError(...)` / `RedemptionRefused(...)` (which the station passes
on as its own codes) must be declared, with the same status where the raise names one; and
every declared code has its message in both languages.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.error_codes import CATALOGUE, status_of
from edge_agent.web.i18n import LANGS, MESSAGES
from tests.error_scan import Hit, raised_in_files
from tests.error_scan import raised_codes as scan_raised_codes
from tests.error_scan import undeclared as scan_undeclared

ROOT = Path(__file__).resolve().parents[2]

# exception -> index of the code argument, index of the status argument (or None)
RAISERS = {
    "ServiceError": (0, None),
    "WebError": (1, 0),
    "IdentityError": (0, None),
    "RedemptionRefused": (0, None),
}


def raised_codes(source: str, name: str = "<source>") -> Iterator[Hit]:
    return scan_raised_codes(source, RAISERS, name)


def undeclared(found: Iterator[Hit]) -> list[str]:
    return scan_undeclared(found, CATALOGUE, "error_codes.py")


def _station_sources() -> Iterator[Path]:
    yield from sorted((ROOT / "edge_agent").rglob("*.py"))
    yield ROOT / "cloud_sync" / "core" / "identity.py"
    yield ROOT / "cloud_sync" / "core" / "ruleset" / "model.py"


def test_every_raised_code_is_declared_with_its_status() -> None:
    found = raised_in_files(_station_sources(), ROOT, RAISERS)
    assert len(found) > 60  # the scan sees the raises (not an empty walk)
    assert undeclared(iter(found)) == []


def test_codes_built_at_the_raise_site_are_declared() -> None:
    for what in ("litres", "amount", "unit_price"):  # services/sales.py: f"sale.{what}"
        assert f"sale.{what}" in CATALOGUE


def test_an_undeclared_code_or_a_wrong_status_fails_the_scan() -> None:
    source = (
        'raise ServiceError("member.vanished", "gone")\n'
        'raise WebError(404, "csrf.invalid")\n'
        'raise WebError(403, "csrf.invalid")\n'
    )
    problems = undeclared(raised_codes(source))
    assert len(problems) == 2
    assert "'member.vanished' is not declared" in problems[0]
    assert "raised 404, declared 403" in problems[1]


@pytest.mark.parametrize("lang", LANGS)
def test_every_declared_code_has_its_message(lang: str) -> None:
    missing = [e.code for e in CATALOGUE.values() if e.message_key not in MESSAGES[lang]]
    assert missing == []


def test_statuses_come_from_the_catalogue() -> None:
    assert status_of("member.not_found") == 404
    assert status_of("points.insufficient") == 409
    assert status_of("csrf.invalid") == 403
    assert status_of("request.too_large") == 413
    assert status_of("login.rate_limited") == 429
    assert status_of("phone.letters") == 422
    assert status_of("no.such.code") == 422  # answered, logged; the scan keeps it from happening
    assert not hasattr(__import__("edge_agent.web.context").web.context, "status_for")
