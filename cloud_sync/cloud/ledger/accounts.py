"""The ledger's non-member accounts: every journal moves points between these and members.

Kept apart from postings.py so the report aggregates (which the Book feeds) can name them
without importing the postings (which import the Book).
"""

from __future__ import annotations

__all__ = ["ADJUSTMENTS", "EXPIRED", "ISSUED", "REDEEMED", "VARIANCE", "WRITTEN_OFF"]

ISSUED = "points_issued"
REDEEMED = "points_redeemed"
EXPIRED = "points_expired"
ADJUSTMENTS = "adjustments"
VARIANCE = "variance"
WRITTEN_OFF = "written_off"
