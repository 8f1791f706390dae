"""A fresh ledger per test on both backends, as the ledger's own tests have it."""

from __future__ import annotations

from tests.cloud.ledger.conftest import chain_keys, ledger

__all__ = ["chain_keys", "ledger"]
