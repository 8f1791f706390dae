"""The station's SQLite store: the only place station SQL lives.

`Store` opens the file and hands out transactions; the sibling modules (`members`,
`sales`, `ledger`, `outbox`, `rulesets`, `users`, `audit`, `meta`, `keys`) are the
queries, each taking the open transaction as its first argument.
"""

from .database import SchemaTooNewError, Store, StoreError, StoreMissingError, Tx

__all__ = ["SchemaTooNewError", "Store", "StoreError", "StoreMissingError", "Tx"]
