"""Shared by the activity tests (check-in, invoices, feedback): a rule set with check-in,
the members' sales in the seeded chain, and a real server for the concurrency tests."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.cloud.ledger.schema import sales
from tests.cloud.ledger.fake_station import RULES_TEXT

from .conftest import MemberApp

__all__ = ["CHECKIN", "member_sales", "publish_checkin", "sale_of", "sale_rows"]

CHECKIN: dict[str, Any] = {
    "points": 5,
    "streak": [{"days": 3, "bonus": 20}, {"days": 6, "bonus": 100}],
    "daily_cap": 1,
}


def publish_checkin(
    mapp: MemberApp, section: dict[str, Any] | None = None, version: int = 4
) -> None:
    """Rules v`version` (the sample plus a check-in section), in force since yesterday."""
    document = json.loads(RULES_TEXT)
    document.update(
        version=version,
        name="with check-in",
        effective_from=(mapp.clock() - timedelta(days=1)).isoformat(),
        checkin=CHECKIN if section is None else section,
    )
    text = json.dumps(document, ensure_ascii=False)
    mapp.ledger.publish_ruleset(text, "c2lnbmF0dXJl", "test-key", mapp.clock())


def sale_rows(ledger: CloudLedger, member_id: str) -> list[Any]:
    """The member's sales in the ledger (recorded and reversed), oldest first."""
    return ledger.db.read(
        lambda conn: list(
            conn.execute(
                select(sales).where(sales.c.member_id == member_id).order_by(sales.c.ended_at)
            )
        )
    )


def member_sales(mapp: MemberApp, member_id: str) -> list[Any]:
    return sale_rows(mapp.ledger, member_id)


def sale_of(mapp: MemberApp, member_id: str, status: str = "recorded") -> Any:
    return next(s for s in member_sales(mapp, member_id) if s.status == status)
