"""The tier progress the home page shows, as pure functions over a member's sales: each
threshold in its own unit and window, and the moment the tier stops holding."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from cloud_sync.cloud.ledger.member_progress import WindowSale, tier_progress
from cloud_sync.core.ruleset.parser import parse_ruleset_json
from tests.cloud.ledger.fake_station import RULES_TEXT, SHANGHAI

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=SHANGHAI)


def _rules() -> object:
    document = json.loads(RULES_TEXT)
    document["tiers"][1]["qualify"] = {"amount": "3000", "visits": 10, "window_days": 30}
    document["tiers"][2]["qualify"] = {"litres": "2000", "window_days": 365}
    document.pop("new_member_tier")
    return parse_ruleset_json(json.dumps(document))


def _sale(days_ago: float, litres: str, yuan: str) -> WindowSale:
    return WindowSale(NOW - timedelta(days=days_ago), Decimal(litres), Decimal(yuan))


def _progress(sales: list[WindowSale]) -> dict[str, Any]:
    return tier_progress(
        _rules(),  # type: ignore[arg-type]
        sales,
        registered_at=NOW - timedelta(days=400),
        now=NOW,
        zone=SHANGHAI,
    )


def test_each_threshold_in_its_unit_over_its_window() -> None:
    sales = [_sale(d, "40.00", "300.00") for d in (1, 2, 3, 40)]  # 40 days ago: not in 30
    shown = _progress(sales)
    assert shown["tier"]["code"] == "standard"
    assert shown["next"]["code"] == "silver" and shown["next"]["window_days"] == 30
    assert shown["next"]["measures"] == [
        {"unit": "amount_fen", "have": 90000, "need": 300000, "missing": 210000},
        {"unit": "visits", "have": 3, "need": 10, "missing": 7},
    ]
    assert shown["keep"] is None


def test_the_tier_holds_while_any_threshold_is_met_and_no_longer() -> None:
    # 10 visits in 30 days (silver by visits); the amount alone would not do.
    sales = [_sale(day, "10.00", "75.00") for day in range(5, 25, 2)]
    assert len(sales) == 10
    shown = _progress(sales)
    assert shown["tier"]["code"] == "silver"
    oldest = min(sale.at for sale in sales)
    # The oldest visit leaves the 30-day window 30 days after it: 9 visits, not silver.
    assert shown["keep"]["holds_until"] == (oldest + timedelta(days=30)).isoformat()
    leaving = shown["keep"]["leaving"]
    assert [day["visits"] for day in leaving] == [1] * 10
    assert leaving[0]["date"] == (oldest + timedelta(days=30)).date().isoformat()


def test_a_higher_tier_over_a_longer_window_counts_its_own_sales() -> None:
    sales = [_sale(day, "100.00", "750.00") for day in range(10, 300, 14)]  # 21 × 100 L
    shown = _progress(sales)
    assert shown["tier"]["code"] == "gold"
    assert shown["next"] is None
    assert shown["keep"]["window_days"] == 365
    assert shown["keep"]["measures"] == [
        {"unit": "litres", "have": "2100.00", "need": "2000.00", "missing": "0.00"}
    ]
    oldest_two = sorted(sale.at for sale in sales)[:2]
    # 2100 L: gold until the second-oldest sale leaves the year (2100 - 100 = 2000 still meets).
    assert shown["keep"]["holds_until"] == (oldest_two[1] + timedelta(days=365)).isoformat()
