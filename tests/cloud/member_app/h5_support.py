"""What the member page's browser tests share: where screenshots go, and the checks a phone
screen must pass (tap targets of 44 px, nothing wider than the screen, readable contrast)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page, ViewportSize

__all__ = ["PHONE", "SCREENS", "screen_faults", "shoot"]

SCREENS = Path(__file__).resolve().parents[3] / "test-artifacts" / "member-screens"
PHONE: ViewportSize = {"width": 375, "height": 667}

_FAULTS = (Path(__file__).parent / "screen_faults.js").read_text(encoding="utf-8")


def screen_faults(page: Page) -> list[str]:
    """What is wrong with the screen as a phone shows it (empty when nothing is)."""
    found: list[Any] = page.evaluate(_FAULTS)
    return [str(fault) for fault in found]


def shoot(page: Page, name: str) -> Path:
    """A full-page screenshot under test-artifacts/member-screens/, after checking the screen."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    faults = screen_faults(page)
    assert faults == [], (name, faults)
    path = SCREENS / f"{name}.png"
    # As a phone as tall as the page shows it: the sticky tab bar at the foot, not mid-page
    # (a full-page capture keeps the 667 px viewport the bar sticks to).
    size = page.viewport_size or PHONE
    tall = int(page.evaluate("document.documentElement.scrollHeight"))
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], tall)})
    page.screenshot(path=str(path))
    page.set_viewport_size(size)
    return path
